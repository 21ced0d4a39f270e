/* Address prefixes for the throttling allow-list, IPv4 and IPv6. */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[64], *slash, *end;
	long prefix;
	int maxbits;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	prefix = maxbits;
	if (slash != NULL) {
		prefix = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || prefix < 0 ||
		    prefix > maxbits)
			return -1;
	}
	c->prefix = prefix;
	return 0;
}

static int
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int bytes = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = 0xff << (8 - rest);
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* In any of n prefixes (an allow-list, the trusted PROXY senders)? */
int
cidr_match_any(const struct cidr *list, uint32_t n,
    const struct sockaddr_storage *ss)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (cidr_match(&list[i], ss))
			return 1;
	return 0;
}

int
cidr_match(const struct cidr *c, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	uint8_t v4[4];

	if (ss->ss_family == AF_INET && c->family == AF_INET)
		return prefix_equal(c->addr, (const uint8_t *)&sin->sin_addr,
		    c->prefix);
	if (ss->ss_family == AF_INET6 && c->family == AF_INET6)
		return prefix_equal(c->addr, sin6->sin6_addr.s6_addr,
		    c->prefix);
	/* an IPv4-mapped IPv6 client matches IPv4 prefixes */
	if (ss->ss_family == AF_INET6 && c->family == AF_INET &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memcpy(v4, sin6->sin6_addr.s6_addr + 12, 4);
		return prefix_equal(c->addr, v4, c->prefix);
	}
	return 0;
}
