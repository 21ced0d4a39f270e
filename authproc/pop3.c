/*
 * POP3 before login: greeting, CAPA, USER, PASS, AUTH PLAIN, NOOP, QUIT.
 * Everything else gets -ERR.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "authproc.h"
#include "log.h"

static char sasl_line[PIPELINE_MAX];

static void pop3_input(struct session *);

static void
pop3_greet(struct session *s)
{
	session_printf(s, "+OK %s\r\n", authproc_conf.greeting);
}

static void
pop3_timeout(struct session *s)
{
	session_printf(s, "-ERR Timeout, closing connection\r\n");
	session_close_after_write(s);
}

static void
pop3_too_many_bad(struct session *s)
{
	session_printf(s,
	    "-ERR Too many invalid commands, closing "
	    "connection\r\n");
	session_close_after_write(s);
}

static void
pop3_err(struct session *s, const char *text)
{
	session_printf(s, "-ERR %s\r\n", text);
	session_bad_command(s);
}

static void
pop3_sasl_response(struct session *s, const char *line, size_t len)
{
	s->req.mech = MECH_PLAIN;
	if (len == 1 && line[0] == '*') {
		session_audit(s, AUDIT_ABORTED, "cancelled by client");
		session_printf(s, "-ERR Authentication cancelled\r\n");
		session_reset_attempt(s);
		return;
	}
	if (sasl_plain_decode(line, len, s->req.authzid, sizeof(s->req.authzid),
		s->req.user, sizeof(s->req.user), s->req.pass,
		sizeof(s->req.pass)) == -1) {
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "invalid SASL PLAIN response");
		session_reset_attempt(s);
		pop3_err(s, "Invalid SASL PLAIN response");
		return;
	}
	s->req.mech = MECH_PLAIN;
	session_login(s);
}

static void
pop3_cmd_auth(struct session *s, const char *arg)
{
	const char *sp, *ir;
	size_t mechlen;

	if (arg == NULL) {
		session_printf(s, "+OK\r\nPLAIN\r\n.\r\n");
		return;
	}
	sp = strchr(arg, ' ');
	mechlen = sp ? (size_t)(sp - arg) : strlen(arg);
	if (mechlen != 5 || strncasecmp(arg, "PLAIN", 5) != 0) {
		session_reset_attempt(s);
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "unsupported SASL mechanism");
		session_printf(s,
		    "-ERR Unsupported authentication "
		    "mechanism\r\n");
		return;
	}
	session_reset_attempt(s);
	if (sp != NULL) {
		ir = sp + 1;
		pop3_sasl_response(s, ir,
		    strcmp(ir, "=") == 0 ? 0 : strlen(ir));
		return;
	}
	s->state = S_SASL;
	session_printf(s, "+ \r\n");
}

static void
pop3_command(struct session *s, const struct pop3_command *c)
{
	const char *arg = c->hasarg ? c->arg : NULL;

	if (strcmp(c->name, "CAPA") == 0 && arg == NULL) {
		session_printf(s,
		    "+OK Capability list follows\r\n%s%s"
		    "PIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n",
		    session_login_allowed(s) ? "USER\r\nSASL PLAIN\r\n" : "",
		    session_can_starttls(s) ? "STLS\r\n" : "");
	} else if (strcmp(c->name, "STLS") == 0 && arg == NULL) {
		if (!session_can_starttls(s)) {
			pop3_err(s, "STLS not available");
			return;
		}
		session_printf(s, "+OK Begin TLS negotiation\r\n");
		session_starttls(s);
	} else if ((strcmp(c->name, "USER") == 0 ||
		       strcmp(c->name, "PASS") == 0 ||
		       strcmp(c->name, "AUTH") == 0) &&
	    !session_login_allowed(s)) {
		session_reset_attempt(s);
		session_audit(s, AUDIT_PROTOCOL_ERROR, "TLS required");
		session_printf(s,
		    "-ERR [AUTH] TLS is required: use STLS "
		    "first\r\n");
	} else if (strcmp(c->name, "NOOP") == 0 && arg == NULL) {
		session_printf(s, "+OK\r\n");
	} else if (strcmp(c->name, "QUIT") == 0 && arg == NULL) {
		session_printf(s, "+OK Logging out\r\n");
		session_close_after_write(s);
	} else if (strcmp(c->name, "USER") == 0 && arg != NULL &&
	    arg[0] != '\0') {
		if (strlen(arg) > USER_MAX_LEN) {
			session_reset_attempt(s);
			pop3_err(s, "User name too long");
			return;
		}
		session_reset_attempt(s);
		memcpy(s->req.user, arg, strlen(arg) + 1);
		s->has_user = 1;
		session_printf(s, "+OK\r\n");
	} else if (strcmp(c->name, "PASS") == 0 && arg != NULL) {
		if (!s->has_user) {
			pop3_err(s, "USER first");
			return;
		}
		if (arg[0] == '\0' || strlen(arg) > PASS_MAX_LEN) {
			s->req.mech = MECH_USERPASS;
			session_audit(s, AUDIT_PROTOCOL_ERROR,
			    "empty or over-long password");
			session_reset_attempt(s);
			session_printf(s,
			    "-ERR [AUTH] Authentication "
			    "failed\r\n");
			return;
		}
		memcpy(s->req.pass, arg, strlen(arg) + 1);
		s->req.mech = MECH_USERPASS;
		session_login(s);
	} else if (strcmp(c->name, "AUTH") == 0) {
		pop3_cmd_auth(s, arg);
	} else if (strcmp(c->name, "APOP") == 0) {
		pop3_err(s, "APOP is not supported");
	} else
		pop3_err(s, "Command unknown or not allowed before login");
}

static void
pop3_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct pop3_command c;
	enum pop3_parse_status st;
	const char *p;
	size_t len, consumed;
	ssize_t n;

	while (s->state == S_PREAUTH || s->state == S_SASL) {
		if ((len = evbuffer_get_length(in)) == 0 ||
		    session_output_full(s))
			return;
		p = (const char *)evbuffer_pullup(in, -1);
		if (s->state == S_SASL) {
			if ((n = line_find(p, len, &consumed)) == -1) {
				/* + 1: a CR whose LF is still on its way */
				if (len <= authproc_conf.max_line + 1)
					return;
				n = authproc_conf.max_line + 1;
			}
			if ((size_t)n > authproc_conf.max_line) {
				session_audit(s, AUDIT_PROTOCOL_ERROR,
				    "line too long");
				session_printf(s, "-ERR Line too long\r\n");
				session_close_after_write(s);
				return;
			}
			/* out of the buffer first: the rest is pipelined */
			memcpy(sasl_line, p, n);
			explicit_bzero((char *)p, consumed);
			evbuffer_drain(in, consumed);
			s->state = S_PREAUTH;
			pop3_sasl_response(s, sasl_line, n);
			explicit_bzero(sasl_line, n);
			continue;
		}
		st = pop3_parse(p, len, authproc_conf.max_line, &c);
		switch (st) {
		case POP3_PARSE_INCOMPLETE:
			return;
		case POP3_PARSE_TOO_LONG:
			session_audit(s, AUDIT_PROTOCOL_ERROR, "line too long");
			session_printf(s, "-ERR Line too long\r\n");
			session_close_after_write(s);
			return;
		case POP3_PARSE_BAD:
			explicit_bzero((char *)p, c.consumed);
			evbuffer_drain(in, c.consumed);
			pop3_err(s, "Invalid command");
			break;
		case POP3_PARSE_OK:
			explicit_bzero((char *)p, c.consumed);
			evbuffer_drain(in, c.consumed);
			pop3_command(s, &c);
			break;
		}
		explicit_bzero(&c, sizeof(c));
	}
}

static void
pop3_throttled(struct session *s, const struct login_result *res)
{
	session_printf(s, "-ERR [SYS/TEMP] %s\r\n", res->text);
	session_reset_attempt(s);
	bufferevent_enable(s->bev, EV_READ);
}

static void
pop3_login_result(struct session *s, const struct login_result *res)
{
	switch (res->status) {
	case LOGIN_FAILED:
		session_printf(s, "-ERR %s\r\n",
		    res->text[0] ? res->text : "[AUTH] Authentication failed");
		break;
	case LOGIN_TEMPFAIL:
	default:
		log_info("session %016llx: login unavailable: %s",
		    (unsigned long long)s->sid, res->text);
		session_printf(s,
		    "-ERR [SYS/TEMP] Service temporarily "
		    "unavailable, try again later\r\n");
		break;
	}
	session_reset_attempt(s);
	bufferevent_enable(s->bev, EV_READ);
	pop3_input(s);
}

static void
pop3_too_many_attempts(struct session *s)
{
	session_printf(s, "-ERR [SYS/TEMP] Too many login attempts\r\n");
}

const struct proto_engine pop3_engine = {
    .proto = PROTO_POP3,
    .greet = pop3_greet,
    .input = pop3_input,
    .login_result = pop3_login_result,
    .timeout = pop3_timeout,
    .throttled = pop3_throttled,
    .too_many_bad = pop3_too_many_bad,
    .too_many_attempts = pop3_too_many_attempts,
    .busy = "-ERR [SYS/TEMP] Too many connections from your address\r\n",
    .audit_timeouts = 1,
    .send_login = session_send_login,
    .attempts_limited = 1,
};
