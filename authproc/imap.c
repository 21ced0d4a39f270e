/*
 * IMAP before login: greeting, CAPABILITY, NOOP, ID, LOGOUT, LOGIN and
 * AUTHENTICATE PLAIN.  Everything else gets a tagged BAD.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "authproc.h"
#include "log.h"

#define IMAP_CAPA_BASE "IMAP4rev1 LITERAL+ SASL-IR ID"
#define ID_MAX_PAIRS   30

static struct imap_command cmd; /* one at a time; large */

static void imap_input(struct session *);
static char sasl_line[PIPELINE_MAX];

static void
imap_limits(struct imap_limits *lim)
{
	lim->max_line = authproc_conf.max_line;
	lim->max_literal = authproc_conf.max_literal;
}

/* What we offer depends on TLS: recomputed after STARTTLS. */
static const char *
imap_capabilities(const struct session *s)
{
	static char caps[128];

	snprintf(caps, sizeof(caps), "%s%s%s", IMAP_CAPA_BASE,
	    session_can_starttls(s) ? " STARTTLS" : "",
	    session_login_allowed(s) ? " AUTH=PLAIN" : " LOGINDISABLED");
	return caps;
}

static void
imap_greet(struct session *s)
{
	session_printf(s, "* OK [CAPABILITY %s] %s\r\n", imap_capabilities(s),
	    authproc_conf.greeting);
}

static void
imap_timeout(struct session *s)
{
	session_printf(s, "* BYE Timeout, closing connection\r\n");
	session_close_after_write(s);
}

static void
imap_too_many_bad(struct session *s)
{
	session_printf(s, "* BYE Too many invalid commands\r\n");
	session_close_after_write(s);
}

static void
imap_bad(struct session *s, const char *tag, const char *text)
{
	session_printf(s, "%s BAD %s\r\n", tag[0] ? tag : "*", text);
	session_bad_command(s);
}

/* Keep the client's ID fields, minus any x-* a client must not set. */
static int
imap_store_id(struct session *s)
{
	size_t i, npairs = 0, off = 0, flen, vlen;
	char buf[ID_MAX_LEN];

	if (cmd.ntok == 1 && cmd.tok[0].type == IMAP_TOK_ATOM &&
	    strcasecmp(imap_token_str(&cmd, 0), "NIL") == 0) {
		s->idlen = 0;
		return 0;
	}
	if (cmd.ntok < 2 || cmd.tok[0].type != IMAP_TOK_LPAREN ||
	    cmd.tok[cmd.ntok - 1].type != IMAP_TOK_RPAREN ||
	    (cmd.ntok - 2) % 2 != 0)
		return -1;
	for (i = 1; i < cmd.ntok - 1; i += 2) {
		if (cmd.tok[i].type == IMAP_TOK_ATOM ||
		    !imap_token_is_string(&cmd, i))
			return -1;
		if (cmd.tok[i + 1].type == IMAP_TOK_ATOM &&
		    strcasecmp(imap_token_str(&cmd, i + 1), "NIL") != 0)
			return -1;
		if (cmd.tok[i + 1].type != IMAP_TOK_ATOM &&
		    !imap_token_is_string(&cmd, i + 1))
			return -1;
		if (++npairs > ID_MAX_PAIRS)
			return -1;
		flen = cmd.tok[i].len;
		vlen = cmd.tok[i + 1].type == IMAP_TOK_ATOM
		    ? 0
		    : cmd.tok[i + 1].len;
		if (flen > 30 || vlen > 1024)
			return -1;
		if (strncasecmp(imap_token_str(&cmd, i), "x-", 2) == 0)
			continue;
		if (off + flen + vlen + 2 > sizeof(buf))
			continue; /* keep what fits */
		memcpy(buf + off, imap_token_str(&cmd, i), flen + 1);
		off += flen + 1;
		memcpy(buf + off, imap_token_str(&cmd, i + 1), vlen);
		buf[off + vlen] = '\0';
		off += vlen + 1;
	}
	memcpy(s->idfields, buf, off);
	s->idlen = off;
	return 0;
}

static void
imap_cmd_login(struct session *s)
{
	if (cmd.ntok != 2 || !imap_token_is_string(&cmd, 0) ||
	    !imap_token_is_string(&cmd, 1)) {
		imap_bad(s, cmd.tag, "Usage: LOGIN user password");
		return;
	}
	if (cmd.tok[0].len == 0 || cmd.tok[0].len > USER_MAX_LEN ||
	    cmd.tok[1].len == 0 || cmd.tok[1].len > PASS_MAX_LEN) {
		session_reset_attempt(s);
		s->req.mech = MECH_LOGIN;
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "empty or over-long credentials");
		session_printf(s,
		    "%s NO [AUTHENTICATIONFAILED] Invalid "
		    "credentials\r\n",
		    cmd.tag);
		return;
	}
	session_reset_attempt(s);
	snprintf(s->req.tag, sizeof(s->req.tag), "%s", cmd.tag);
	memcpy(s->req.user, imap_token_str(&cmd, 0), cmd.tok[0].len + 1);
	memcpy(s->req.pass, imap_token_str(&cmd, 1), cmd.tok[1].len + 1);
	s->req.mech = MECH_LOGIN;
	session_login(s);
}

static void
imap_sasl_response(struct session *s, const char *line, size_t len)
{
	s->req.mech = MECH_PLAIN;
	if (len == 1 && line[0] == '*') {
		session_audit(s, AUDIT_ABORTED, "cancelled by client");
		session_printf(s, "%s BAD Authentication cancelled\r\n",
		    s->req.tag);
		session_reset_attempt(s);
		return;
	}
	if (sasl_plain_decode(line, len, s->req.authzid, sizeof(s->req.authzid),
		s->req.user, sizeof(s->req.user), s->req.pass,
		sizeof(s->req.pass)) == -1) {
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "invalid SASL PLAIN response");
		session_printf(s, "%s BAD Invalid SASL PLAIN response\r\n",
		    s->req.tag);
		session_reset_attempt(s);
		session_bad_command(s);
		return;
	}
	s->req.mech = MECH_PLAIN;
	session_login(s);
}

static void
imap_cmd_authenticate(struct session *s)
{
	const char *ir;

	if (cmd.ntok < 1 || cmd.ntok > 2 || cmd.tok[0].type != IMAP_TOK_ATOM ||
	    (cmd.ntok == 2 && cmd.tok[1].type != IMAP_TOK_ATOM)) {
		imap_bad(s, cmd.tag, "Usage: AUTHENTICATE mechanism [ir]");
		return;
	}
	if (strcasecmp(imap_token_str(&cmd, 0), "PLAIN") != 0) {
		session_reset_attempt(s);
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "unsupported SASL mechanism");
		session_printf(s,
		    "%s NO Unsupported authentication "
		    "mechanism\r\n",
		    cmd.tag);
		return;
	}
	session_reset_attempt(s);
	snprintf(s->req.tag, sizeof(s->req.tag), "%s", cmd.tag);
	if (cmd.ntok == 2) {
		ir = imap_token_str(&cmd, 1);
		/* RFC 4959: "=" is an empty initial response */
		imap_sasl_response(s, ir,
		    strcmp(ir, "=") == 0 ? 0 : cmd.tok[1].len);
		return;
	}
	s->state = S_SASL;
	session_printf(s, "+ \r\n");
}

static void
imap_command(struct session *s)
{
	if (strcmp(cmd.name, "CAPABILITY") == 0 && cmd.ntok == 0) {
		session_printf(s,
		    "* CAPABILITY %s\r\n%s OK Capability "
		    "completed\r\n",
		    imap_capabilities(s), cmd.tag);
	} else if (strcmp(cmd.name, "NOOP") == 0 && cmd.ntok == 0) {
		session_printf(s, "%s OK NOOP completed\r\n", cmd.tag);
	} else if (strcmp(cmd.name, "LOGOUT") == 0 && cmd.ntok == 0) {
		session_printf(s,
		    "* BYE Logging out\r\n%s OK Logout "
		    "completed\r\n",
		    cmd.tag);
		session_close_after_write(s);
	} else if (strcmp(cmd.name, "ID") == 0) {
		if (imap_store_id(s) == -1) {
			imap_bad(s, cmd.tag, "Invalid ID parameters");
			return;
		}
		session_printf(s,
		    "* ID (\"name\" \"postern\")\r\n%s OK ID "
		    "completed\r\n",
		    cmd.tag);
	} else if (strcmp(cmd.name, "STARTTLS") == 0 && cmd.ntok == 0) {
		if (!session_can_starttls(s)) {
			imap_bad(s, cmd.tag, "STARTTLS not available");
			return;
		}
		session_printf(s, "%s OK Begin TLS negotiation now\r\n",
		    cmd.tag);
		session_starttls(s);
	} else if ((strcmp(cmd.name, "LOGIN") == 0 ||
		       strcmp(cmd.name, "AUTHENTICATE") == 0) &&
	    !session_login_allowed(s)) {
		session_reset_attempt(s);
		session_audit(s, AUDIT_PROTOCOL_ERROR, "TLS required");
		session_printf(s,
		    "%s NO [PRIVACYREQUIRED] Use STARTTLS "
		    "first\r\n",
		    cmd.tag);
	} else if (strcmp(cmd.name, "LOGIN") == 0) {
		imap_cmd_login(s);
	} else if (strcmp(cmd.name, "AUTHENTICATE") == 0) {
		imap_cmd_authenticate(s);
	} else
		imap_bad(s, cmd.tag,
		    "Command unknown or not allowed before "
		    "login");
}

/* Lines answering an AUTHENTICATE continuation are not commands. */
static int
imap_input_sasl(struct session *s, struct evbuffer *in)
{
	const char *p;
	size_t len, consumed;
	ssize_t n;

	len = evbuffer_get_length(in);
	p = (const char *)evbuffer_pullup(in, -1);
	if ((n = line_find(p, len, &consumed)) == -1) {
		/* + 1: a CR whose LF is still on its way */
		if (len > authproc_conf.max_line + 1) {
			session_audit(s, AUDIT_PROTOCOL_ERROR, "line too long");
			session_printf(s, "* BYE Line too long\r\n");
			session_close_after_write(s);
		}
		return 0;
	}
	if ((size_t)n > authproc_conf.max_line) {
		session_audit(s, AUDIT_PROTOCOL_ERROR, "line too long");
		session_printf(s, "* BYE Line too long\r\n");
		session_close_after_write(s);
		return 0;
	}
	/*
	 * Take the line out of the buffer before acting on it: whatever is
	 * left in the buffer is forwarded upstream as pipelined input.
	 */
	memcpy(sasl_line, p, n);
	explicit_bzero((char *)p, consumed);
	evbuffer_drain(in, consumed);
	s->state = S_PREAUTH;
	imap_sasl_response(s, sasl_line, n);
	explicit_bzero(sasl_line, n);
	return 1;
}

static void
imap_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct imap_limits lim;
	enum imap_parse_status st;
	const char *p;
	size_t len;

	imap_limits(&lim);
	while (s->state == S_PREAUTH || s->state == S_SASL) {
		if ((len = evbuffer_get_length(in)) == 0 ||
		    session_output_full(s))
			return;
		/*
		 * Every command ends in LF: until one more arrives, parsing
		 * again would only repeat the last (quadratic) work.
		 */
		if (s->scanned > 0 && s->scanned < len && len < PIPELINE_MAX &&
		    evbuffer_search(in, "\n", 1, NULL).pos == -1) {
			s->scanned = len;
			return;
		}
		s->scanned = 0;
		if (s->state == S_SASL) {
			if (!imap_input_sasl(s, in))
				return;
			continue;
		}
		p = (const char *)evbuffer_pullup(in, -1);
		st = imap_parse(p, len, s->acked_literals, &lim, &cmd);
		switch (st) {
		case IMAP_PARSE_INCOMPLETE:
			s->scanned = len;
			if (len >= PIPELINE_MAX) {
				session_audit(s, AUDIT_PROTOCOL_ERROR,
				    "command too long");
				session_printf(s, "* BYE Command too long\r\n");
				session_close_after_write(s);
			}
			return;
		case IMAP_PARSE_CONTINUE:
			s->acked_literals++;
			session_printf(s, "+ Ready for literal data\r\n");
			continue;
		case IMAP_PARSE_TOO_LONG:
			session_audit(s, AUDIT_PROTOCOL_ERROR,
			    "command line or literal too long");
			session_printf(s,
			    "* BYE Command line or literal too "
			    "long\r\n");
			session_close_after_write(s);
			return;
		case IMAP_PARSE_BAD:
			s->acked_literals = 0;
			explicit_bzero((char *)p, cmd.consumed);
			evbuffer_drain(in, cmd.consumed);
			imap_bad(s, cmd.tag, "Invalid command syntax");
			break;
		case IMAP_PARSE_OK:
			s->acked_literals = 0;
			explicit_bzero((char *)p, cmd.consumed);
			evbuffer_drain(in, cmd.consumed);
			imap_command(s);
			break;
		}
		explicit_bzero(cmd.buf, cmd.buflen);
	}
}

/* Refused by the throttling policy: a temporary failure, in our words. */
static void
imap_throttled(struct session *s, const struct login_result *res)
{
	session_printf(s, "%s NO [UNAVAILABLE] %s\r\n",
	    s->req.tag[0] ? s->req.tag : "*", res->text);
	session_reset_attempt(s);
	bufferevent_enable(s->bev, EV_READ);
}

static void
imap_login_result(struct session *s, const struct login_result *res)
{
	const char *tag = s->req.tag[0] ? s->req.tag : "*";

	switch (res->status) {
	case LOGIN_FAILED:
		session_printf(s, "%s NO %s\r\n", tag,
		    res->text[0] ? res->text
				 : "[AUTHENTICATIONFAILED] Authentication "
				   "failed");
		break;
	case LOGIN_TEMPFAIL:
	default:
		log_info("session %016llx: login unavailable: %s",
		    (unsigned long long)s->sid, res->text);
		session_printf(s,
		    "%s NO [UNAVAILABLE] Service temporarily "
		    "unavailable, try again later\r\n",
		    tag);
		break;
	}
	session_reset_attempt(s);
	bufferevent_enable(s->bev, EV_READ);
	/* commands pipelined behind the failed login are ours again */
	imap_input(s);
}

static void
imap_too_many_attempts(struct session *s)
{
	session_printf(s,
	    "%s NO [LIMIT] Too many login attempts\r\n"
	    "* BYE Too many login attempts\r\n",
	    s->req.tag[0] ? s->req.tag : "*");
}

const struct proto_engine imap_engine = {
    .proto = PROTO_IMAP,
    .greet = imap_greet,
    .input = imap_input,
    .login_result = imap_login_result,
    .timeout = imap_timeout,
    .throttled = imap_throttled,
    .too_many_bad = imap_too_many_bad,
    .too_many_attempts = imap_too_many_attempts,
    .busy = "* BYE [UNAVAILABLE] Too many connections from your "
	    "address\r\n",
    .audit_timeouts = 1,
    .send_login = session_send_login,
    .attempts_limited = 1,
};
