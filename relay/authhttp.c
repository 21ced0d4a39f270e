/*
 * Reading a lookup handler's answer (nginx auth_http).  Everything in it
 * is untrusted: a handler may be misconfigured or compromised, so each
 * header is checked on its own and anything odd makes the whole answer
 * invalid (relay then tries the next handler) rather than half-used.
 *
 *   Auth-Status: OK               route follows
 *   Auth-Status: <text>           login refused, <text> for the client
 *   Auth-Server: <IP address>     where (an address, never a name)
 *   Auth-Port: <port>
 *   Auth-User: <account>          the canonical account for an alias
 *   Auth-Wait: <seconds>          hold the refusal back this long
 *   Auth-Error-Code: <code>       SMTP code; kept, unused for IMAP/POP3
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
	if (r->bad || !r->seen_status)
		return r->status;
	if (strcmp(r->text, "OK") == 0) {
		if (!r->seen_server || !r->seen_port || server_address(r) == -1)
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
