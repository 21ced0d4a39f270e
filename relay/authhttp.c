/*
 * Reading a lookup handler's answer (nginx auth_http).  Everything in it
 * is untrusted: a handler may be misconfigured or compromised, so each
 * header is checked on its own and anything odd makes the whole answer
 * invalid (relay then tries the next handler) rather than half-used.
 *
 *   Auth-Status: OK               route follows
 *   Auth-Status: <text>           login refused, <text> for the client
 *   Auth-Server: <IP address>     where (an address, never a host name
 *                                 to resolve), or the exact name of a
 *                                 configured upstream or pool
 *   Auth-Port: <port>             with an address; ignored with a name
 *   Auth-User: <account>          the canonical account for an alias
 *   Auth-Wait: <seconds>          hold the refusal back this long
 *   Auth-Error-Code: <code>       SMTP code; kept, unused for IMAP/POP3
 *
 * The route cache's value is here too (authhttp_cache_format/parse): a
 * route written down for memcached, and read back as untrusted text.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authhttp.h"

void
authhttp_reply_init(struct authhttp_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->status = AUTHHTTP_INVALID;
}

/* Printable ASCII, no more than max bytes; copied into dst. */
static int
copy_printable(char *dst, size_t dstsz, const char *src, int allow_space)
{
	size_t i;

	for (i = 0; src[i] != '\0'; i++) {
		unsigned char c = src[i];

		if (i + 1 >= dstsz || c < 0x20 || c > 0x7e ||
		    (c == ' ' && !allow_space))
			return -1;
		dst[i] = c;
	}
	dst[i] = '\0';
	return 0;
}

static int
parse_number(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 10)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

void
authhttp_reply_header(struct authhttp_reply *r, const char *name,
    const char *value)
{
	uint32_t n;

	if (strlen(value) > AUTHHTTP_VALUE_MAX) {
		r->bad = 1;
		return;
	}
	if (strcasecmp(name, "Auth-Status") == 0) {
		if (r->seen_status++ ||
		    copy_printable(r->text, sizeof(r->text), value, 1) == -1 ||
		    r->text[0] == '\0')
			r->bad = 1;
	} else if (strcasecmp(name, "Auth-Server") == 0) {
		if (r->seen_server++ ||
		    copy_printable(r->server_text, sizeof(r->server_text),
			value, 0) == -1)
			r->bad = 1;
	} else if (strcasecmp(name, "Auth-Port") == 0) {
		if (r->seen_port++ || parse_number(value, 65535, &n) == -1 ||
		    n == 0)
			r->bad = 1;
		else
			r->port = n;
	} else if (strcasecmp(name, "Auth-User") == 0) {
		if (r->user[0] != '\0' ||
		    copy_printable(r->user, sizeof(r->user), value, 0) == -1)
			r->bad = 1;
	} else if (strcasecmp(name, "Auth-Wait") == 0) {
		if (parse_number(value, 0xffffffffu, &n) == -1)
			r->bad = 1;
		else
			r->wait = n > AUTHHTTP_WAIT_MAX ? AUTHHTTP_WAIT_MAX : n;
	} else if (strcasecmp(name, "Auth-Error-Code") == 0) {
		if (copy_printable(r->error_code, sizeof(r->error_code), value,
			0) == -1)
			r->bad = 1;
	}
	/* other headers (Date, Server, Auth-Pass, ...) are not ours */
}

void
authhttp_reply_field(struct authhttp_reply *r, const char *name, size_t namelen,
    const char *value, size_t valuelen)
{
	char n[64], v[AUTHHTTP_VALUE_MAX + 1];

	/* a NUL would cut the copy short: the header would read otherwise */
	if (memchr(name, '\0', namelen) != NULL ||
	    memchr(value, '\0', valuelen) != NULL ||
	    valuelen > AUTHHTTP_VALUE_MAX) {
		r->bad = 1;
		return;
	}
	if (namelen >= sizeof(n))
		return; /* longer than any name of ours */
	memcpy(n, name, namelen);
	n[namelen] = '\0';
	memcpy(v, value, valuelen);
	v[valuelen] = '\0';
	authhttp_reply_header(r, n, v);
}

static int
server_address(struct authhttp_reply *r)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->server;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->server;

	memset(&r->server, 0, sizeof(r->server));
	if (inet_pton(AF_INET, r->server_text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(r->port);
		return 0;
	}
	if (inet_pton(AF_INET6, r->server_text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(r->port);
		return 0;
	}
	return -1;
}

enum authhttp_status
authhttp_reply_finish(struct authhttp_reply *r)
{
	r->status = AUTHHTTP_INVALID;
	r->named = 0;
	if (r->bad || !r->seen_status)
		return r->status;
	if (strcmp(r->text, "OK") == 0) {
		if (!r->seen_server)
			return r->status;
		/* a configured name first: its own ports, TLS and pool */
		if (r->server_text[0] != '\0' && r->name_known != NULL &&
		    r->name_known(r->server_text))
			r->named = 1;
		else if (!r->seen_port || server_address(r) == -1)
			return r->status;
		r->text[0] = '\0';
		r->status = AUTHHTTP_OK;
	} else
		r->status = AUTHHTTP_REFUSED;
	return r->status;
}

/*
 * User names and passwords go into header values URL-escaped, as nginx
 * sends them: space, '%', control bytes and non-ASCII become %XX, so no
 * value can end a header or start another.  Returns the length, or 0 if
 * dst is too small (never a cut value).
 */
size_t
authhttp_escape(char *dst, size_t dstsz, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, i;

	for (i = 0; src[i] != '\0'; i++) {
		unsigned char c = src[i];

		if (c <= 0x20 || c >= 0x7f || c == '%') {
			if (o + 3 >= dstsz)
				return 0;
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		} else {
			if (o + 1 >= dstsz)
				return 0;
			dst[o++] = c;
		}
	}
	if (o >= dstsz)
		return 0;
	dst[o] = '\0';
	return o;
}

/* One field of a cached route: 1 to max bytes, none a space or control. */
static int
cache_token(const char *s, size_t len, size_t max, int ascii)
{
	size_t i;

	if (len == 0 || len > max)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c <= 0x20 || c == 0x7f || (ascii && c > 0x7e))
			return 0;
	}
	return 1;
}

/* enum mail_proto's values, as the cache writes them */
static const char *const cache_protos[] = {NULL, "imap", "pop3", "http"};
#define CACHE_NPROTOS (sizeof(cache_protos) / sizeof(cache_protos[0]))

int
authhttp_cache_format(char *out, size_t outsz, const char *check,
    const struct authhttp_route *rt)
{
	const struct sockaddr_in *sin = (const void *)&rt->addr;
	const struct sockaddr_in6 *sin6 = (const void *)&rt->addr;
	char host[INET6_ADDRSTRLEN];
	unsigned int port;
	int n;

	if (strlen(check) < AUTHHTTP_CHECK_LEN ||
	    !cache_token(rt->account, strlen(rt->account), AUTHHTTP_USER_MAX,
		0))
		return -1;
	if (rt->named) {
		if (!cache_token(rt->name, strlen(rt->name), AUTHHTTP_NAME_MAX,
			1))
			return -1;
		n = snprintf(out, outsz, "2 %.16s %s %s", check, rt->name,
		    rt->account);
	} else {
		if (rt->addr.ss_family == AF_INET) {
			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
			port = ntohs(sin->sin_port);
		} else if (rt->addr.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &sin6->sin6_addr, host,
			    sizeof(host));
			port = ntohs(sin6->sin6_port);
		} else
			return -1;
		if (port == 0 || rt->proto == 0 || rt->proto >= CACHE_NPROTOS)
			return -1;
		n = snprintf(out, outsz, "3 %.16s %s %s %u %s", check,
		    cache_protos[rt->proto], host, port, rt->account);
	}
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	return n;
}

int
authhttp_cache_parse(const char *v, size_t len, const char *check,
    struct authhttp_route *rt)
{
	const char *f[6];
	size_t flen[6], nf = 0, i, start = 0;
	char host[INET6_ADDRSTRLEN];
	struct sockaddr_in *sin = (struct sockaddr_in *)&rt->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rt->addr;
	uint32_t port;

	memset(rt, 0, sizeof(*rt));
	if (memchr(v, '\0', len) != NULL || strlen(check) < AUTHHTTP_CHECK_LEN)
		return -1;
	/* fields apart by one space each, none empty */
	for (i = 0; i <= len; i++) {
		if (i < len && v[i] != ' ')
			continue;
		if (i == start || nf == sizeof(f) / sizeof(f[0]))
			return -1;
		f[nf] = v + start;
		flen[nf++] = i - start;
		start = i + 1;
	}
	if (nf < 4 || flen[0] != 1 || flen[1] != AUTHHTTP_CHECK_LEN ||
	    memcmp(f[1], check, AUTHHTTP_CHECK_LEN) != 0)
		return -1;
	if (f[0][0] == '3' && nf == 6) {
		for (i = 1; i < CACHE_NPROTOS; i++)
			if (strlen(cache_protos[i]) == flen[2] &&
			    memcmp(f[2], cache_protos[i], flen[2]) == 0)
				rt->proto = i;
		if (rt->proto == 0)
			return -1;
		/* the rest as an address route's fields, one to the left */
		for (i = 2; i < 5; i++) {
			f[i] = f[i + 1];
			flen[i] = flen[i + 1];
		}
		if (flen[2] >= sizeof(host) || flen[3] > 5 ||
		    (flen[3] > 1 && f[3][0] == '0'))
			return -1;
		memcpy(host, f[2], flen[2]);
		host[flen[2]] = '\0';
		for (i = 0, port = 0; i < flen[3]; i++) {
			if (f[3][i] < '0' || f[3][i] > '9')
				return -1;
			port = port * 10 + (f[3][i] - '0');
		}
		if (port == 0 || port > 65535 ||
		    !cache_token(f[4], flen[4], AUTHHTTP_USER_MAX, 0))
			return -1;
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
		} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
		} else
			return -1;
		memcpy(rt->account, f[4], flen[4]);
		return 0;
	}
	if (f[0][0] == '2' && nf == 4) {
		if (!cache_token(f[2], flen[2], AUTHHTTP_NAME_MAX, 1) ||
		    !cache_token(f[3], flen[3], AUTHHTTP_USER_MAX, 0))
			return -1;
		rt->named = 1;
		memcpy(rt->name, f[2], flen[2]);
		memcpy(rt->account, f[3], flen[3]);
		return 0;
	}
	return -1;
}
