/*
 * Logging in to an IMAP upstream on the client's behalf.  The upstream
 * is trusted more than the client but its lines are still bounded and
 * checked: a PREAUTH greeting is refused (it would skip our login and
 * hand the client someone's session).
 */
#include <ctype.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "relay.h"

#define UTAG_CAPA  "P1"
#define UTAG_ID	   "P3"
#define UTAG_LOGIN "P2"

/* Copy upstream text for a client or a log: printable ASCII only. */
void
upstream_text(char *dst, size_t dstsz, const char *src, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 1 < dstsz; i++) {
		unsigned char c = src[i];

		dst[o++] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	dst[o] = '\0';
}

/* Look for capability words in a CAPABILITY list. */
static void
imap_parse_caps(struct rsession *rs, const char *list)
{
	char buf[UPSTREAM_LINE_MAX], *p, *word, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	if ((p = strchr(buf, ']')) != NULL)
		*p = '\0';
	rs->lg->caps = CAP_SEEN;
	for (word = strtok_r(buf, " ", &save); word != NULL;
	     word = strtok_r(NULL, " ", &save)) {
		if (strcasecmp(word, "SASL-IR") == 0)
			rs->lg->caps |= CAP_SASL_IR;
		else if (strcasecmp(word, "AUTH=PLAIN") == 0)
			rs->lg->caps |= CAP_AUTH_PLAIN;
		else if (strcasecmp(word, "LOGINDISABLED") == 0)
			rs->lg->caps |= CAP_LOGINDISABLED;
		else if (strcasecmp(word, "ID") == 0)
			rs->lg->caps |= CAP_ID;
	}
}

static int
plain_b64(struct rsession *rs, char *out, size_t outsz)
{
	unsigned char raw[USER_MAX_LEN * 2 + PASS_MAX_LEN + 3];
	size_t zl = strlen(rs->lg->req.authzid);
	size_t ul = strlen(rs->lg->account);
	size_t pl = strlen(rs->lg->req.pass);
	int n;

	memcpy(raw, rs->lg->req.authzid, zl);
	raw[zl] = '\0';
	memcpy(raw + zl + 1, rs->lg->account, ul);
	raw[zl + 1 + ul] = '\0';
	memcpy(raw + zl + ul + 2, rs->lg->req.pass, pl);
	n = b64_ntop(raw, zl + ul + pl + 2, out, outsz);
	explicit_bzero(raw, sizeof(raw));
	return n < 0 ? -1 : 0;
}

/* A quoted string is possible only without CR, LF, NUL or 8-bit bytes. */
static int
imap_quote(char *dst, size_t dstsz, const char *src)
{
	size_t o = 0;

	if (o + 1 >= dstsz)
		return -1;
	dst[o++] = '"';
	for (; *src != '\0'; src++) {
		unsigned char c = *src;

		if (c == '\r' || c == '\n' || c >= 0x80)
			return -1;
		if (c == '"' || c == '\\') {
			if (o + 1 >= dstsz)
				return -1;
			dst[o++] = '\\';
		}
		if (o + 1 >= dstsz)
			return -1;
		dst[o++] = c;
	}
	if (o + 2 >= dstsz)
		return -1;
	dst[o++] = '"';
	dst[o] = '\0';
	return 0;
}

static int
imap_send_login(struct rsession *rs)
{
	char b64[((USER_MAX_LEN * 2 + PASS_MAX_LEN + 3) / 3 + 1) * 4 + 1];
	char quser[USER_MAX_LEN * 2 + 3], qpass[PASS_MAX_LEN * 2 + 3];
	int rv = 1;

	if (rs->lg->caps & CAP_AUTH_PLAIN) {
		if (plain_b64(rs, b64, sizeof(b64)) == -1) {
			rsession_login_unsendable(rs, "encoding");
			return 0;
		}
		if (rs->lg->caps & CAP_SASL_IR) {
			rsession_printf(rs,
			    UTAG_LOGIN " AUTHENTICATE PLAIN %s\r\n", b64);
			rs->state = R_LOGIN;
		} else {
			rsession_printf(rs,
			    UTAG_LOGIN " AUTHENTICATE PLAIN\r\n");
			rs->state = R_AUTH_CONTINUE;
		}
	} else if (!(rs->lg->caps & CAP_LOGINDISABLED) &&
	    rs->lg->req.authzid[0] == '\0' &&
	    imap_quote(quser, sizeof(quser), rs->lg->account) == 0 &&
	    imap_quote(qpass, sizeof(qpass), rs->lg->req.pass) == 0) {
		rsession_printf(rs, UTAG_LOGIN " LOGIN %s %s\r\n", quser,
		    qpass);
		rs->state = R_LOGIN;
	} else if (rs->lg->caps & CAP_LOGINDISABLED) {
		/* the upstream's own doing (plain text where it wants TLS?) */
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "upstream offers no usable login method");
		rv = 0;
	} else {
		/* an authzid, or bytes LOGIN cannot quote */
		rsession_login_unsendable(rs,
		    "this login needs AUTH=PLAIN, which the upstream does "
		    "not offer");
		rv = 0;
	}
	explicit_bzero(b64, sizeof(b64));
	explicit_bzero(qpass, sizeof(qpass));
	return rv;
}

static int
id_append(char *buf, size_t len, size_t *off, const char *name,
    const char *value)
{
	char qn[64], qv[ID_MAX_LEN * 2 + 3];
	int n;

	if (imap_quote(qn, sizeof(qn), name) == -1 ||
	    imap_quote(qv, sizeof(qv), value) == -1)
		return 0; /* not quotable: left out, never mangled */
	n = snprintf(buf + *off, len - *off, "%s%s %s", *off > 0 ? " " : "", qn,
	    qv);
	if (n < 0 || (size_t)n >= len - *off)
		return -1;
	*off += n;
	return 0;
}

/*
 * Tell the upstream who the client really is (RFC 2971 ID with the
 * x-originating-* fields Dovecot and others trust from a proxy in their
 * trusted networks), followed by the client's own ID fields.  Any x-*
 * field the client sent is dropped, here as in authproc, so no client
 * can forge its address.
 */
static int
imap_send_id(struct rsession *rs)
{
	char buf[4096], host[64], port[16], sid[32];
	const char *p, *name, *value;
	size_t off = 0;
	int ok = 0;

	sockaddr_host(&rs->lg->req.client, host, sizeof(host));
	snprintf(port, sizeof(port), "%u", sockaddr_port(&rs->lg->req.client));
	ok |= id_append(buf, sizeof(buf), &off, "x-originating-ip", host);
	ok |= id_append(buf, sizeof(buf), &off, "x-originating-port", port);
	sockaddr_host(&rs->lg->req.local, host, sizeof(host));
	snprintf(port, sizeof(port), "%u", sockaddr_port(&rs->lg->req.local));
	ok |= id_append(buf, sizeof(buf), &off, "x-connected-ip", host);
	ok |= id_append(buf, sizeof(buf), &off, "x-connected-port", port);
	snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)rs->sid);
	ok |= id_append(buf, sizeof(buf), &off, "x-session-id", sid);
	for (p = rs->lg->req.idfields;
	     ok == 0 && p < rs->lg->req.idfields + rs->lg->req.idlen;) {
		name = p;
		value = name + strlen(name) + 1;
		if (value >= rs->lg->req.idfields + rs->lg->req.idlen)
			break;
		p = value + strlen(value) + 1;
		if (strncasecmp(name, "x-", 2) != 0)
			ok |= id_append(buf, sizeof(buf), &off, name, value);
	}
	if (ok != 0) {
		rsession_login_unsendable(rs, "ID too long");
		return 0;
	}
	rsession_printf(rs, UTAG_ID " ID (%s)\r\n", buf);
	rs->state = R_ID;
	return 1;
}

/*
 * After the capabilities: ID first where the upstream knows it, and the
 * login right behind it without waiting for ID's answer (commands are
 * taken in order, so the upstream knows the client before it checks the
 * login; the answer to ID changes nothing).  One round trip less.
 */
static int
imap_after_caps(struct rsession *rs)
{
	int more;

	rsession_cork(rs);
	if ((rs->lg->caps & CAP_ID) && !imap_send_id(rs))
		return 0;
	more = imap_send_login(rs);
	/* a refusal above has freed or reset the session (a pool's next
	 * member), which uncorks it */
	if (more)
		rsession_uncork(rs);
	return more;
}

static int
imap_greeting(struct rsession *rs, const char *line)
{
	if (strncasecmp(line, "* PREAUTH", 9) == 0) {
		log_warnx("session %016llx: upstream %s sent PREAUTH; refused",
		    (unsigned long long)rs->sid, rs->lg->upstream->conf.name);
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "upstream greeting was PREAUTH");
		return 0;
	}
	if (strncasecmp(line, "* OK", 4) != 0) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "upstream refused the connection");
		return 0;
	}
	if (strncasecmp(line, "* OK [CAPABILITY ", 17) == 0)
		imap_parse_caps(rs, line + 17);
	if (!(rs->lg->caps & CAP_SEEN)) {
		rsession_printf(rs, UTAG_CAPA " CAPABILITY\r\n");
		rs->state = R_CAPABILITY;
		return 1;
	}
	return imap_after_caps(rs);
}

/* The tagged answer to our login: finish one way or the other. */
static int
imap_login_answer(struct rsession *rs, const char *line, size_t len)
{
	const char *rest = line + strlen(UTAG_LOGIN " ");
	size_t restlen = len - strlen(UTAG_LOGIN " ");

	if ((restlen >= 3 && strncasecmp(rest, "OK ", 3) == 0) ||
	    (restlen == 2 && strncasecmp(rest, "OK", 2) == 0)) {
		char ok[UPSTREAM_LINE_MAX + TAG_MAX_LEN + 4];

		/* the client's tag on the upstream's words and capabilities */
		snprintf(ok, sizeof(ok), "%s %.*s\r\n", rs->lg->req.tag,
		    (int)restlen, rest);
		rsession_login_done(rs, LOGIN_OK, ok);
		return 0;
	}
	if (restlen >= 3 && strncasecmp(rest, "NO ", 3) == 0) {
		/* "try later" from the upstream is not a wrong password */
		rsession_login_done(rs,
		    strncasecmp(rest + 3, "[UNAVAILABLE]", 13) == 0
			? LOGIN_TEMPFAIL
			: LOGIN_FAILED,
		    rest + 3);
		return 0;
	}
	rsession_login_done(rs, LOGIN_FAILED,
	    "[AUTHENTICATIONFAILED] Authentication failed");
	return 0;
}

static int
imap_upstream_line(struct rsession *rs, char *line, size_t len)
{
	char b64[((USER_MAX_LEN * 2 + PASS_MAX_LEN + 3) / 3 + 1) * 4 + 1];

	if (memchr(line, '\0', len) != NULL) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "upstream sent a NUL byte");
		return 0;
	}
	switch (rs->state) {
	case R_GREETING:
		return imap_greeting(rs, line);
	case R_CAPABILITY:
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0) {
			imap_parse_caps(rs, line + 13);
			return 1;
		}
		if (strncmp(line, UTAG_CAPA " ", 3) == 0) {
			if (!(rs->lg->caps & CAP_SEEN))
				rs->lg->caps = CAP_SEEN;
			return imap_after_caps(rs);
		}
		return 1;
	case R_ID:
		/* the answer does not matter: log in either way */
		if (strncmp(line, UTAG_ID " ", 3) == 0)
			return imap_send_login(rs);
		return 1;
	case R_AUTH_CONTINUE:
		if (line[0] == '+') {
			if (plain_b64(rs, b64, sizeof(b64)) == -1) {
				rsession_login_done(rs, LOGIN_TEMPFAIL,
				    "encoding");
				return 0;
			}
			rsession_printf(rs, "%s\r\n", b64);
			explicit_bzero(b64, sizeof(b64));
			rs->state = R_LOGIN;
			return 1;
		}
		if (strncmp(line, UTAG_LOGIN " ", 3) == 0)
			return imap_login_answer(rs, line, len);
		return 1;
	case R_LOGIN:
		if (strncmp(line, UTAG_LOGIN " ", 3) == 0)
			return imap_login_answer(rs, line, len);
		/* untagged data before the answer is not the client's */
		return 1;
	default:
		return 0;
	}
}

const struct relay_engine relay_imap_engine = {
    .proto = PROTO_IMAP,
    .upstream_line = imap_upstream_line,
};
