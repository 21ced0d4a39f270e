/*
 * Logging in to a POP3 upstream: USER/PASS, or AUTH PLAIN when the
 * credentials cannot travel on a plain command line or an authorization
 * identity was given.
 */
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "relay.h"

static int
pop3_line_safe(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

static int
pop3_send_login(struct rsession *rs)
{
	unsigned char raw[USER_MAX_LEN * 2 + PASS_MAX_LEN + 3];
	char b64[sizeof(raw) / 3 * 4 + 8];
	size_t zl, ul, pl;
	int n;

	if (rs->lg->req.authzid[0] == '\0' && pop3_line_safe(rs->lg->account) &&
	    pop3_line_safe(rs->lg->req.pass)) {
		rsession_printf(rs, "USER %s\r\n", rs->lg->account);
		rs->state = R_USER;
		return 1;
	}
	zl = strlen(rs->lg->req.authzid);
	ul = strlen(rs->lg->account);
	pl = strlen(rs->lg->req.pass);
	memcpy(raw, rs->lg->req.authzid, zl + 1);
	memcpy(raw + zl + 1, rs->lg->account, ul + 1);
	memcpy(raw + zl + ul + 2, rs->lg->req.pass, pl);
	n = b64_ntop(raw, zl + ul + pl + 2, b64, sizeof(b64));
	explicit_bzero(raw, sizeof(raw));
	if (n < 0) {
		rsession_login_unsendable(rs, "encoding");
		return 0;
	}
	rsession_printf(rs, "AUTH PLAIN %s\r\n", b64);
	explicit_bzero(b64, sizeof(b64));
	rs->state = R_LOGIN;
	return 1;
}

static int
pop3_upstream_line(struct rsession *rs, char *line, size_t len)
{
	int ok = len >= 3 && strncmp(line, "+OK", 3) == 0;

	if (memchr(line, '\0', len) != NULL) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "upstream sent a NUL byte");
		return 0;
	}
	switch (rs->state) {
	case R_GREETING:
		if (!ok) {
			rsession_login_done(rs, LOGIN_TEMPFAIL,
			    "upstream refused the connection");
			return 0;
		}
		/*
		 * An upstream that trusts us as a proxy says so in its
		 * greeting: tell it the client's real address first.
		 */
		if (len >= 13 && strncasecmp(line, "+OK [XCLIENT]", 13) == 0) {
			char host[64];

			sockaddr_host(&rs->lg->req.client, host, sizeof(host));
			rsession_printf(rs, "XCLIENT ADDR=%s PORT=%u\r\n", host,
			    sockaddr_port(&rs->lg->req.client));
			rs->state = R_XCLIENT;
			return 1;
		}
		return pop3_send_login(rs);
	case R_XCLIENT:
		/* refused or not, the login goes on */
		return pop3_send_login(rs);
	case R_USER:
		if (!ok) {
			rsession_login_done(rs, LOGIN_FAILED,
			    len > 5 ? line + 5
				    : "[AUTH] Authentication failed");
			return 0;
		}
		rsession_printf(rs, "PASS %s\r\n", rs->lg->req.pass);
		rs->state = R_LOGIN;
		return 1;
	case R_LOGIN:
		if (ok) {
			char okline[UPSTREAM_LINE_MAX + 3];

			snprintf(okline, sizeof(okline), "%.*s\r\n", (int)len,
			    line);
			rsession_login_done(rs, LOGIN_OK, okline);
			return 0;
		}
		rsession_login_done(rs,
		    len > 5 && strncmp(line + 5, "[SYS/TEMP]", 10) == 0
			? LOGIN_TEMPFAIL
			: LOGIN_FAILED,
		    len > 5 ? line + 5 : "[AUTH] Authentication failed");
		return 0;
	default:
		return 0;
	}
}

const struct relay_engine relay_pop3_engine = {
    .proto = PROTO_POP3,
    .upstream_line = pop3_upstream_line,
};
