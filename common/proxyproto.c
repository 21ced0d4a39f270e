/*
 * PROXY protocol header parser.  A pure function of the bytes received
 * so far, re-run as more arrive; it never reads past the header, so the
 * client's own first bytes stay in the buffer behind it.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int
v1_port(const char *s, in_port_t *port)
{
	char *end;
	long n;

	/* decimal, no sign, no leading zero (the spec forbids them) */
	if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	n = strtol(s, &end, 10);
	if (*end != '\0' || n < 0 || n > 65535)
		return -1;
	*port = htons(n);
	return 0;
}

static int
v1_addr(int family, const char *a, const char *p, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, a, &sin->sin_addr) != 1)
			return -1;
		return v1_port(p, &sin->sin_port);
	}
	sin6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, a, &sin6->sin6_addr) != 1)
		return -1;
	return v1_port(p, &sin6->sin6_port);
}

static enum proxy_status
parse_v1(const unsigned char *in, size_t len, struct proxy_result *r)
{
	char line[PROXY_V1_MAX + 1], *f[6], *save = NULL, *tok;
	const unsigned char *lf;
	size_t n, nf = 0;
	int family;

	lf = memchr(in, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
	if (lf == NULL)
		return len >= PROXY_V1_MAX ? PROXY_BAD : PROXY_INCOMPLETE;
	n = lf - in + 1;
	if (n < 8 || in[n - 2] != '\r')
		return PROXY_BAD;
	memcpy(line, in, n - 2);
	line[n - 2] = '\0';
	if (memchr(line, '\0', n - 2) != NULL)
		return PROXY_BAD;
	r->consumed = n;
	for (tok = strtok_r(line, " ", &save); tok != NULL && nf < 6;
	     tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (tok != NULL || nf < 2 || strcmp(f[0], "PROXY") != 0)
		return PROXY_BAD;
	if (strcmp(f[1], "UNKNOWN") == 0) {
		r->has_addr = 0;
		return PROXY_OK;
	}
	if (strcmp(f[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return PROXY_BAD;
	if (nf != 6 || v1_addr(family, f[2], f[4], &r->src) == -1 ||
	    v1_addr(family, f[3], f[5], &r->dst) == -1)
		return PROXY_BAD;
	r->has_addr = 1;
	return PROXY_OK;
}

static enum proxy_status
parse_v2(const unsigned char *in, size_t len, struct proxy_result *r)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
	struct sockaddr_in *d4 = (struct sockaddr_in *)&r->dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&r->dst;
	size_t alen;
	unsigned int cmd, fam;

	if (len < 16)
		return PROXY_INCOMPLETE;
	if ((in[12] & 0xf0) != 0x20)
		return PROXY_BAD; /* version 2 only */
	cmd = in[12] & 0x0f;
	fam = in[13];
	alen = (size_t)in[14] << 8 | in[15];
	if (16 + alen > PROXY_V2_MAX)
		return PROXY_BAD;
	if (len < 16 + alen)
		return PROXY_INCOMPLETE;
	r->consumed = 16 + alen;
	if (cmd == 0x0) { /* LOCAL: health checks */
		r->has_addr = 0;
		return PROXY_OK;
	}
	if (cmd != 0x1)
		return PROXY_BAD;
	memset(&r->src, 0, sizeof(r->src));
	memset(&r->dst, 0, sizeof(r->dst));
	switch (fam) {
	case 0x11: /* TCP over IPv4 */
		if (alen < 12)
			return PROXY_BAD;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, in + 16, 4);
		memcpy(&d4->sin_addr, in + 20, 4);
		memcpy(&s4->sin_port, in + 24, 2);
		memcpy(&d4->sin_port, in + 26, 2);
		break;
	case 0x21: /* TCP over IPv6 */
		if (alen < 36)
			return PROXY_BAD;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, in + 16, 16);
		memcpy(&d6->sin6_addr, in + 32, 16);
		memcpy(&s6->sin6_port, in + 48, 2);
		memcpy(&d6->sin6_port, in + 50, 2);
		break;
	case 0x00: /* UNSPEC */
		r->has_addr = 0;
		return PROXY_OK;
	default:
		return PROXY_BAD; /* UDP, unix sockets */
	}
	r->has_addr = 1;
	return PROXY_OK;
}

enum proxy_status
proxy_parse(const unsigned char *in, size_t len, struct proxy_result *r)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	if (len == 0)
		return PROXY_INCOMPLETE;
	/* which version: decide on as few bytes as the data allows */
	n = len < sizeof(v2sig) ? len : sizeof(v2sig);
	if (memcmp(in, v2sig, n) == 0)
		return n < sizeof(v2sig) ? PROXY_INCOMPLETE
					 : parse_v2(in, len, r);
	n = len < 6 ? len : 6;
	if (memcmp(in, "PROXY ", n) == 0)
		return n < 6 ? PROXY_INCOMPLETE : parse_v1(in, len, r);
	return PROXY_BAD;
}

/*
 * A PROXY v2 header naming src as the client and dst as the address it
 * connected to, for an upstream that trusts us (Dovecot's haproxy
 * listeners).  Returns its length, or 0 if the families differ or buf
 * is too small.
 */
size_t
proxy_v2_build(unsigned char *buf, size_t bufsz,
    const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00,
	    0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	const struct sockaddr_in *s4 = (const void *)src,
				 *d4 = (const void *)dst;
	const struct sockaddr_in6 *s6 = (const void *)src,
				  *d6 = (const void *)dst;
	size_t alen;

	if (src->ss_family != dst->ss_family)
		return 0;
	alen = src->ss_family == AF_INET ? 12 : 36;
	if (src->ss_family != AF_INET && src->ss_family != AF_INET6)
		return 0;
	if (bufsz < 16 + alen)
		return 0;
	memcpy(buf, sig, sizeof(sig));
	buf[12] = 0x21; /* version 2, PROXY */
	buf[13] = src->ss_family == AF_INET ? 0x11 : 0x21; /* TCP */
	buf[14] = alen >> 8;
	buf[15] = alen & 0xff;
	if (src->ss_family == AF_INET) {
		memcpy(buf + 16, &s4->sin_addr, 4);
		memcpy(buf + 20, &d4->sin_addr, 4);
		memcpy(buf + 24, &s4->sin_port, 2);
		memcpy(buf + 26, &d4->sin_port, 2);
	} else {
		memcpy(buf + 16, &s6->sin6_addr, 16);
		memcpy(buf + 32, &d6->sin6_addr, 16);
		memcpy(buf + 48, &s6->sin6_port, 2);
		memcpy(buf + 50, &d6->sin6_port, 2);
	}
	return 16 + alen;
}
