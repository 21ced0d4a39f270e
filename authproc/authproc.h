/*
 * authproc: the only process that reads client bytes before login.  It
 * holds no keys and no routes and cannot open files or sockets; it turns
 * untrusted pre-auth input into bounded login requests for relay.
 */
#ifndef POSTERN_AUTHPROC_H
#define POSTERN_AUTHPROC_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "policy.h"
#include "proto.h"

/* ---- pure parsers (no process state; unit tested and fuzzed) ---- */

#define IMAP_MAX_TOKENS 64
#define IMAP_CMD_BUFSZ	(16384 + 2 * 1024)

enum imap_token_type {
	IMAP_TOK_ATOM,
	IMAP_TOK_QUOTED,
	IMAP_TOK_LITERAL,
	IMAP_TOK_LPAREN,
	IMAP_TOK_RPAREN
};

struct imap_token {
	enum imap_token_type type;
	size_t off; /* into imap_command.buf */
	size_t len; /* decoded length, no NUL */
};

struct imap_command {
	char tag[TAG_MAX_LEN + 1];
	char name[32]; /* upper case */
	size_t ntok;
	struct imap_token tok[IMAP_MAX_TOKENS];
	char buf[IMAP_CMD_BUFSZ];
	size_t buflen;
	size_t consumed;    /* input bytes used */
	unsigned int nsync; /* sync literals seen */
};

struct imap_limits {
	size_t max_line;
	size_t max_literal;
};

enum imap_parse_status {
	IMAP_PARSE_OK,	       /* a whole command */
	IMAP_PARSE_INCOMPLETE, /* need more input */
	IMAP_PARSE_CONTINUE,   /* a sync literal waits for "+" */
	IMAP_PARSE_BAD,	       /* syntax error; consumed skips the line */
	IMAP_PARSE_TOO_LONG    /* a limit was exceeded: end the session */
};

enum imap_parse_status imap_parse(const char *, size_t, unsigned int acked,
    const struct imap_limits *, struct imap_command *);
const char *imap_token_str(const struct imap_command *, size_t);
int imap_token_is_string(const struct imap_command *, size_t);

/* Find a line; returns its length without CRLF, or -1 if incomplete. */
ssize_t line_find(const char *, size_t, size_t *consumed);

#define POP3_MAX_ARG (PASS_MAX_LEN + 1)

struct pop3_command {
	char name[8];		    /* upper case */
	char arg[POP3_MAX_ARG + 1]; /* rest of the line, may be "" */
	int hasarg;
	size_t consumed;
};

enum pop3_parse_status {
	POP3_PARSE_OK,
	POP3_PARSE_INCOMPLETE,
	POP3_PARSE_BAD, /* consumed skips the line */
	POP3_PARSE_TOO_LONG
};

enum pop3_parse_status pop3_parse(const char *, size_t, size_t max_line,
    struct pop3_command *);

int sasl_plain_decode(const char *b64, size_t len, char *authzid,
    size_t authzidsz, char *authcid, size_t authcidsz, char *passwd,
    size_t passwdsz);

/* ---- the process ---- */

enum session_state {
	S_PROXY,	    /* reading a PROXY protocol header */
	S_PREAUTH,	    /* reading commands */
	S_SASL,		    /* waiting for a SASL response line */
	S_POLICY_WAIT,	    /* waiting for the shared throttle counters */
	S_LOGIN_PENDING,    /* waiting for output to drain, then relay */
	S_LOGIN_SENT,	    /* relay has the attempt */
	S_STARTTLS_PENDING, /* flushing "OK, begin TLS" */
	S_STARTTLS_SENT,    /* tlsproc is handshaking */
	S_DELAY,	    /* holding back a failure's answer */
	S_CLOSING,	    /* flushing a final reply */
	S_DRAIN		    /* written and shut: reading the client's rest */
};

struct listener_ctx {
	TAILQ_ENTRY(listener_ctx) entry;
	struct conf_listener conf;
	const struct proto_engine *engine;
	int fd;
	struct event ev;
};

struct session {
	TAILQ_ENTRY(session) entry;
	uint32_t id;	     /* key between processes */
	uint64_t sid;	     /* in logs and the audit */
	uint64_t started_ms; /* wall clock, for posternctl */
	int fd;
	int relay_has_fd; /* HTTP: s->relay keeps a copy of the socket */
	struct bufferevent *bev;
	struct listener_ctx *listener;
	const struct proto_engine *engine; /* the listener's */
	enum session_state state;
	struct sockaddr_storage client;
	struct sockaddr_storage local;
	unsigned int bad_commands;
	unsigned int acked_literals;
	/* the login attempt in progress, wiped after every attempt */
	struct login_request req;
	int has_user;	    /* POP3 USER seen */
	int http_checked;   /* HTTP: this request's login passed the policy */
	int http_counted;   /* HTTP: this request counted in its rate */
	int http_form;	    /* HTTP: a form login: 1 page, 2 SOAP (marker) */
	int http_continued; /* HTTP: this request got our 100 Continue */
	size_t http_scan_held; /* HTTP: a body held whole to look through */
	char http_class[HTTP_CLASS_MAX]; /* HTTP: the attempt's path class */
	int tls;			 /* the client side is TLS */
	int output_full;		 /* reading paused for output */
	int greeting;			 /* being written at once */
	struct event flush_ev;		 /* the replies, written once */
	int flush_armed;
	unsigned int attempts; /* logins on this connection */
	unsigned int logins;   /* of them, handed to relay */
	struct imsgev *relay;  /* the relay asked last for this session */
	uint32_t query_seq;    /* of the last shared counter query */
	int counted;	       /* attempt pending in policy */
	unsigned int failures;
	struct event delay_ev;
	struct login_result delayed;
	struct event total_ev; /* whole pre-auth time */
	size_t scanned;	       /* input seen without a LF */
	struct tls_facts facts;
	/* the tlsproc worker doing its STARTTLS, if any */
	struct imsgev *tlsproc;
	/* kept across attempts */
	char idfields[ID_MAX_LEN];
	uint32_t idlen;
};

extern struct conf_global authproc_conf;
extern struct conf_policy authproc_policy;

void authproc_main(void) __attribute__((noreturn));
int authproc_draining(void);
void session_write(struct session *, const char *, size_t);
void session_printf(struct session *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void session_close_after_write(struct session *);
void session_bad_command(struct session *);
void session_login(struct session *);
void session_reset_attempt(struct session *);
void session_audit(struct session *, enum audit_result, const char *);
void session_starttls(struct session *);
int session_output_full(struct session *);
int session_can_starttls(const struct session *);
int session_login_allowed(const struct session *);

/*
 * What a protocol does before login.  One table per protocol: a new
 * protocol is a file and an entry in engines[] (authproc.c), not a
 * branch in every function.
 */
struct proto_engine {
	enum mail_proto proto;
	void (*greet)(struct session *);
	void (*input)(struct session *);
	/* relay's answer (or a local failure) to the attempt sent */
	void (*login_result)(struct session *, const struct login_result *);
	void (*timeout)(struct session *);
	/* the policy refused the attempt; it never left authproc */
	void (*throttled)(struct session *, const struct login_result *);
	void (*too_many_bad)(struct session *);
	void (*too_many_attempts)(struct session *);
	/* the policy let the attempt through: on to relay */
	void (*send_login)(struct session *);
	/* HTTP: relay is done with one exchange; -1: the session is gone */
	int (*exchange_done)(struct session *, const struct http_done *,
	    const unsigned char *leftover);
	/* HTTP: a login's verdict, before its exchange is done */
	void (*exchange_verdict)(struct session *, uint32_t login);
	/* the session ends: what the protocol holds for it goes */
	void (*release)(struct session *);
	const char *busy;     /* to a client over the connection limit */
	int audit_timeouts;   /* a time-out ends a login attempt */
	int drain_on_close;   /* read what the client still sends, then close */
	int attempts_limited; /* limit attempts counts per connection */
};

extern const struct proto_engine imap_engine;
extern const struct proto_engine pop3_engine;
extern const struct proto_engine http_engine;
extern struct conf_http authproc_http;

void session_deadline(struct session *, unsigned int);
int session_deadline_armed(struct session *);
int session_send_relay(struct session *, uint32_t, const void *, size_t, int);
void session_send_login(struct session *);
void session_maybe_free(struct session *);
void session_attempt_done(struct session *, int failed);
void session_handed_off(struct session *);

#endif
