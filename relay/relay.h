/*
 * relay: finds each user's upstream, logs in there on the user's behalf
 * and then moves bytes both ways.  It never parses client input before
 * login: it works only from the bounded records authproc sends.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <sys/queue.h>

#include <event.h>

#include "policy.h"
#include "proto.h"
#include "tlsbridge.h"

#define UPSTREAM_LINE_MAX 8192

struct upstream_ctx {
	TAILQ_ENTRY(upstream_ctx) entry;
	struct conf_upstream conf;
	unsigned char *ca;
	size_t calen;
	size_t cagot;
	struct tls_config *tlscfg; /* if conf.tls */
	uint64_t connect_failures; /* for posternctl and the metrics */
};
TAILQ_HEAD(upstream_list, upstream_ctx);

struct pool_member {
	struct upstream_ctx *u;
	uint32_t fails;	     /* in a row */
	uint64_t down_until; /* ms, wall clock */
};

struct pool_ctx {
	TAILQ_ENTRY(pool_ctx) entry;
	struct conf_pool conf;
	int implicit; /* a route straight to one upstream */
	uint32_t rr;
	struct pool_member members[POOL_MAX_MEMBERS];
};
TAILQ_HEAD(pool_list, pool_ctx);

struct route_ctx {
	TAILQ_ENTRY(route_ctx) entry;
	struct conf_route conf;
	struct pool_ctx *pool;
};
TAILQ_HEAD(route_list, route_ctx);

enum rsession_state {
	R_LOOKUP, /* asking the route cache or a lookup handler */
	R_CONNECTING,
	R_TLS_HANDSHAKE,
	R_GREETING,
	R_CAPABILITY,
	R_ID,		 /* IMAP: waiting for the answer to our ID */
	R_XCLIENT,	 /* POP3: waiting for the answer to XCLIENT */
	R_AUTH_CONTINUE, /* IMAP: waiting for "+" */
	R_LOGIN,	 /* waiting for the login's answer */
	R_USER,		 /* POP3: waiting for USER's answer */
	R_RELAYING
};

#define CAP_SASL_IR	  0x01
#define CAP_AUTH_PLAIN	  0x02
#define CAP_LOGINDISABLED 0x04
#define CAP_SEEN	  0x08
#define CAP_ID		  0x10

struct splice_dir {
	struct rsession *rs;
	int from;
	int to;
	int pipefd[2];
	size_t inpipe;
	struct evbuffer *pending; /* written before any splicing */
	struct event rev;
	struct event wev;
	int eof;
	int discard;	    /* client to upstream only: the upstream is gone */
	uint64_t peer_mark; /* c2u: u2c's bytes when its wait began */
	uint64_t bytes;
};

enum route_source { ROUTE_SRC_STATIC, ROUTE_SRC_HANDLER, ROUTE_SRC_CACHE };

struct mc_job;
struct lookup_http;

/*
 * What only the login needs: the request (password included), the route
 * search and the upstream's login dialogue.  It is freed the moment bytes
 * start to flow, so an idle relayed session costs little more than its
 * two splice directions.
 */
struct rlogin {
	uint32_t id;	     /* authproc's session id */
	struct imsgev *chan; /* channel it came on */
	const struct relay_engine *engine;
	struct login_request req;
	unsigned char *pipelined;
	size_t pipelen;
	/* where to: a pool from the static table, or one server named by
	 * a lookup handler or the cache (dyn) */
	struct pool_ctx *pool;
	int member;
	uint32_t tried; /* pool members */
	uint32_t handlers_tried;
	enum route_source route_src;
	int relooked;	/* a cached route failed: looked up once more */
	int unsendable; /* the client's login cannot be put to this upstream */
	int route_refused; /* a handler's or the cache's route was refused */
	struct upstream_ctx dyn;
	struct sockaddr_storage failed_addr;
	char account[USER_MAX_LEN + 1]; /* the name we log in with */
	char cachekey[96];
	struct mc_job *mcjob;
	struct lookup_http *http;
	struct event wait_ev; /* Auth-Wait */
	char refusal[TEXT_MAX_LEN + 1];
	const char *auth_method;   /* for lookup handlers; NULL: "plain" */
	const char *auth_protocol; /* NULL: the protocol's name */
	const char *proxy_host;	   /* X-Proxy-Host, if any */
	const struct upstream_ctx *upstream;
	struct sockaddr_storage uaddr;
	struct event uev;  /* reading */
	struct event uwev; /* writing */
	short uevents;	   /* which of the two are added */
	struct event timer;
	struct evbuffer *uin;
	struct evbuffer *uout;
	unsigned int caps;
	int corked;	 /* commands wait for rsession_uncork() */
	uint32_t waited; /* s, plain upstream: connect time-out so far */
};

struct rinfo;
struct rsession {
	TAILQ_ENTRY(rsession) entry;
	struct rinfo *info; /* relaying: who it is, for posternctl */
	struct rlogin *lg;  /* NULL once relaying */
	enum rsession_state state;
	uint64_t sid; /* for the log line at the end */
	struct sockaddr_storage client;
	int cfd;
	int ufd;
	struct tls *utls; /* TLS to the upstream */
	int bridging;
	int splicing;
	struct tlsbridge *bridge; /* TLS upstreams only: 32 KiB of buffers */
	struct hexchange *hx;	  /* HTTP: the exchange in progress */
	struct splice_dir c2u;
	struct splice_dir u2c;
};

TAILQ_HEAD(rsession_list, rsession);

extern struct conf_global relay_conf;
extern struct conf_policy relay_policy;

void relay_main(void) __attribute__((noreturn));
struct rsession *rsession_new(struct imsgev *, struct imsg *, uint32_t);
struct rsession *rsession_new_fd(struct imsgev *, struct imsg *, uint32_t, int);
void rsession_free(struct rsession *);
void rsession_route(struct rsession *);
void relay_send_audit(const struct audit_record *);
void relay_send_access(const struct access_record *);
void rsession_reconnect(struct rsession *);
void rsession_login_free(struct rsession *);
void rsession_arm_login_timer(struct rsession *);
int rsession_tell_authproc(struct rsession *, uint32_t, const void *, size_t);
void rsession_connect_pool(struct rsession *, struct pool_ctx *,
    enum route_source);
void rsession_login_done(struct rsession *, uint32_t status, const char *text);
void rsession_login_unsendable(struct rsession *, const char *);
void rsession_send(struct rsession *, const char *, size_t);
void rsession_cork(struct rsession *);
void rsession_uncork(struct rsession *);
void rsession_printf(struct rsession *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

struct imsgev *relay_authproc_channel(uint64_t gen);
struct rsession_list *relay_sessions(void);

/* relay_ctl.c */
void relay_ctl_init(struct imsgev *parent);
void relay_ctl_query(struct imsg *);
void rsession_keep_info(struct rsession *);
void rsession_drop_info(struct rsession *);
void lookup_ctl_done(uint64_t query, int ok, uint32_t count);

/* counters.c */
struct counter_op;
void counter_query(uint32_t, uint64_t, const struct counter_op *);
void counter_attempt(const struct login_request *);
void counter_failure(const struct login_request *);
int counter_forget(const struct counter_forget *);

void rsession_route_to(struct rsession *, const struct sockaddr_storage *,
    const char *account, enum route_source);
void rsession_route_static(struct rsession *, const char *why);
void rsession_refused(struct rsession *, const char *text, uint32_t wait);

/* lookup.c */
void lookup_init(const struct conf_lookup *, struct event_base *);
int lookup_start(void);
int lookup_flush(const char *user, uint64_t query);
void lookup_ctl_handlers(void (*)(const struct ctl_handler *, void *), void *);
int lookup_configured(void);
int lookup_upstream_allowed(const struct sockaddr_storage *);
void lookup_route(struct rsession *);
void lookup_forget(struct rsession *);
void lookup_cache_store(struct rsession *);
void lookup_cancel(struct rsession *);
int lookup_handler_ca(const struct conf_blob *, const unsigned char *,
    const struct conf_tls_global *);

/* route.c */
void route_add_upstream(const struct conf_upstream *);
struct upstream_ctx *route_find_upstream(uint32_t);
void route_upstreams_tls(const struct conf_tls_global *);
int route_add(const struct conf_route *);
int route_add_pool(const struct conf_pool *);
struct pool_ctx *route_lookup(const char *user);
struct pool_ctx *route_pool_by_name(const char *);
int pool_pick(struct pool_ctx *, const struct sockaddr_storage *,
    enum mail_proto, uint32_t tried, uint64_t now);
int pool_has_untried(const struct pool_ctx *, enum mail_proto, uint32_t);
void pool_failed(struct pool_ctx *, int, uint64_t now);
void pool_succeeded(struct pool_ctx *, int);
void route_foreach_member(void (*)(const struct pool_ctx *,
			      const struct pool_member *, void *),
    void *);
const struct sockaddr_storage *upstream_addr(const struct upstream_ctx *,
    enum mail_proto);
int upstream_has(const struct upstream_ctx *, enum mail_proto);
int upstream_tls(const struct upstream_ctx *, enum mail_proto);
void upstream_set_addr(struct upstream_ctx *, enum mail_proto,
    const struct sockaddr_storage *);

/*
 * What a protocol does in relay: one table per protocol (relay_imap.c,
 * relay_pop3.c), found by relay_engine_find(), so a new protocol is a
 * file and an entry rather than a branch in every function.
 */
struct relay_engine {
	enum mail_proto proto;
	int client_first; /* the upstream waits for us to speak */
	/* one upstream line during login; 0 once the login is decided */
	int (*upstream_line)(struct rsession *, char *, size_t);
	/* the upstream is connected (and its TLS done): take over */
	void (*upstream_ready)(struct rsession *);
	/* no upstream could be used: answer the client */
	void (*failed)(struct rsession *, uint32_t status, const char *);
	/* 1 if an idle connection to the chosen upstream was taken */
	int (*reuse)(struct rsession *);
};

extern const struct relay_engine relay_imap_engine;
extern const struct relay_engine relay_pop3_engine;
extern const struct relay_engine relay_http_engine;
const struct relay_engine *relay_engine_find(uint32_t proto);
void upstream_text(char *dst, size_t dstsz, const char *src, size_t len);

/* relay_http.c */
struct hexchange;
void relay_http_init(const struct conf_http *, struct event_base *);
int relay_http_configured(void);
void relay_http_request(struct imsgev *, struct imsg *);
int relay_http_body(struct imsgev *, struct imsg *);
void relay_http_release(struct imsgev *, uint32_t);
void relay_http_channel_lost(struct imsgev *);
void relay_http_free(struct rsession *);
void relay_http_drain(void);
int relay_draining(void);
struct pool_ctx *route_pool_by_id(uint32_t);
void route_foreach_upstream(void (*)(const struct upstream_ctx *, void *),
    void *);

/* splice.c */
int splice_start(struct rsession *, const void *to_client, size_t,
    const void *to_upstream, size_t);
void splice_stop(struct rsession *);
int splice_pipe_get(int[2]);
void splice_pipe_put(int[2], size_t);
void relay_session_closed(struct rsession *);
/* Why a relayed session ends early: the same words for splice and TLS. */
void relay_log_stall(struct rsession *, int client);
void relay_log_linger(struct rsession *);
void relay_log_upstream_lost(struct rsession *, const char *why);

#endif
