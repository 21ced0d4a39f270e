/*
 * HTTP in relay: one exchange for each request authproc hands over.
 * The route is found as for a mail login (cache, lookup handlers, the
 * static table), or by the client-IP hash over the fallback pool when
 * the request names nobody.  relay writes the head authproc serialised,
 * streams the body by the framing authproc decided (re-chunking what it
 * de-frames, so only postern's own framing reaches the upstream), parses
 * the upstream's response head, rewrites what names the upstream, and
 * streams the response back.  Then the client goes back to authproc for
 * its next request and the upstream connection, if it may, waits in an
 * idle list for the next exchange to the same server.  A 101 answer to a
 * WebSocket upgrade turns the exchange into a spliced byte relay.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <fcntl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "relay.h"

#define HX_OUT_HIWAT	 (256 * 1024) /* the other side waits above */
#define HX_RESP_HEAD_MAX (16 * 1024)
#define HX_PAGE_MAX	 1024
#define HX_AUTH_MAX	 264 /* a TLS name, or an address and port */
#define HX_INTERIM_MAX	 16  /* 1xx answers to one request */
#define HX_KNOWN_MAX	 128 /* configured upstream names, for rewriting */
#define HX_SPLICE_MIN	 (64 * 1024) /* smaller bodies are not worth it */
#define HX_SPLICE_CHUNK	 (1 << 20)

struct hconn;

struct hexchange {
	struct rsession *rs;
	struct hconn *hc; /* the kept client connection it runs on */
	struct http_request_rec rec;
	char *head; /* as authproc serialised it; kept for one retry */
	size_t headlen;
	unsigned char *early; /* what authproc had read past the head */
	size_t earlylen;
	size_t early_wait; /* of it, still to come in IMSG_HTTP_BODY */
	struct bufferevent *cbev;
	struct bufferevent *ubev;
	struct tlsbridge *bridge; /* a TLS upstream, through a socketpair */
	int bridge_ended;
	/* the request body, client to upstream */
	uint64_t req_left;
	struct http_chunked req_chunk;
	int req_done;
	int req_consumed;     /* client bytes beyond the early ones were read */
	uint64_t body_seen;   /* de-framed request body bytes, for the limit */
	int early_placed;     /* early bytes past the body went back in line */
	unsigned int interim; /* 1xx answers so far */
	/* the response, upstream to client */
	int resp_started;
	int head_done;
	enum http_framing resp_in;
	enum http_framing resp_out;
	uint64_t resp_left;
	struct http_chunked resp_chunk;
	int resp_done;
	int resp_close; /* the upstream will not keep the connection */
	int status;
	int client_close;
	int client_eof;
	int reused;	  /* the upstream connection came from the idle list */
	int retried;	  /* once, when a reused connection was found dead */
	int fell_back;	  /* on the client-IP hash after a failed lookup */
	int finishing;	  /* waiting for the client to take the last bytes */
	int ended;	  /* the exchange is over; nothing may touch it */
	int audited;	  /* a login attempt's record went out */
	int verdict_told; /* authproc has the login's verdict already */
	int own_page;	  /* the answer is postern's, not an upstream's */
	int login_cookie; /* the answer set the auth cookie */
	uint32_t verdict; /* the login's audit result */
	uint64_t up;
	uint64_t down;
	/* a large Content-Length body, upstream to client, spliced */
	int splice_wait; /* for the client to take the head first */
	int splicing;
	int spipe[2];
	size_t sinpipe;
	uint64_t sunread; /* body bytes still in the upstream socket */
	struct event srev;
	struct event swev;
};

/*
 * An idle upstream connection keeps its bufferevent, reading, so that
 * taking it for the next exchange and putting it back touch no epoll
 * registration.
 */
/*
 * An idle upstream connection.  One to a TLS upstream keeps its bridge
 * running (fd is our end of the socketpair): it is reused only for the
 * same TLS configuration and name, so a connection checked one way never
 * serves a request that asked for another.
 */
struct idle_conn {
	TAILQ_ENTRY(idle_conn) entry;
	int fd;
	struct bufferevent *bev;
	struct sockaddr_storage addr;
	struct tlsbridge *bridge;
	const struct tls_config *tlscfg;
	char servername[256];
};

/* What a connection must match to be reused. */
struct idle_key {
	const struct sockaddr_storage *addr;
	const struct tls_config *tlscfg; /* NULL: plain */
	const char *servername;
};

/*
 * A client connection whose socket authproc handed over with its first
 * request: relay keeps the socket, and its bufferevent, between
 * requests, so the next ones come without a descriptor to pass, check
 * and close.  authproc says when the client is gone (IMSG_HTTP_RELEASE);
 * an exchange that ends the connection drops it.
 */
struct hconn {
	TAILQ_ENTRY(hconn) entry;
	struct imsgev *chan;
	uint32_t id; /* authproc's session id */
	int fd;
	struct bufferevent *bev;
	struct rsession *rs; /* the exchange on it, or NULL between */
	int released;	     /* authproc is done with it */
};

#define HCONN_BUCKETS 4096
TAILQ_HEAD(hconn_list, hconn);

static struct hconn_list hconns[HCONN_BUCKETS];
static int hconns_made;

static struct conf_http http_conf;
static int http_configured;
static struct event_base *http_base;
static TAILQ_HEAD(idle_list_head, idle_conn) idle = TAILQ_HEAD_INITIALIZER(
    idle);
static unsigned int nidle;
static struct http_response resp; /* one parse at a time; large */
/* what a head being rewritten must not name; one head at a time too */
static char internal[2][HX_AUTH_MAX];
static const char *internal_ptr[2 + HX_KNOWN_MAX];
static size_t ninternal;
/* every configured upstream's address and TLS name: none may leak */
static char known[HX_KNOWN_MAX][HX_AUTH_MAX];
static size_t nknown;
static int known_made;

static void hx_finish(struct rsession *);
static void bev_free(struct bufferevent *);
static void hx_maybe_finish(struct rsession *);
static void hx_upstream_read(struct bufferevent *, void *);
static void hx_client_read(struct bufferevent *, void *);
static void hx_splice_begin(struct rsession *);
static void hx_internal_names(struct rsession *);

void
relay_http_init(const struct conf_http *conf, struct event_base *base)
{
	http_conf = *conf;
	http_base = base;
	http_configured = 1;
}

int
relay_http_configured(void)
{
	return http_configured;
}

/*
 * Freed from inside one of its own callbacks, a bufferevent leaves its
 * epoll registration to be dropped later, after we have closed the
 * descriptor; authproc still holds the socket, so the stale registration
 * would wake relay for nothing, again and again.  Disabled first, it is
 * dropped now.
 */
static void
bev_free(struct bufferevent *bev)
{
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_free(bev);
}

/* ---- kept client connections ---- */

static struct hconn_list *
hconn_bucket(uint32_t id)
{
	uint32_t i;

	if (!hconns_made) {
		for (i = 0; i < HCONN_BUCKETS; i++)
			TAILQ_INIT(&hconns[i]);
		hconns_made = 1;
	}
	return &hconns[id % HCONN_BUCKETS];
}

static struct hconn *
hconn_find(struct imsgev *chan, uint32_t id)
{
	struct hconn *hc;

	TAILQ_FOREACH(hc, hconn_bucket(id), entry)
	if (hc->id == id && hc->chan == chan)
		return hc;
	return NULL;
}

static struct hconn *
hconn_new(struct imsgev *chan, uint32_t id, int fd, struct bufferevent *bev)
{
	struct hconn *hc;

	if ((hc = calloc(1, sizeof(*hc))) == NULL)
		fatal("calloc");
	hc->chan = chan;
	hc->id = id;
	hc->fd = fd;
	hc->bev = bev;
	TAILQ_INSERT_TAIL(hconn_bucket(id), hc, entry);
	return hc;
}

/* Forgotten; its socket and bufferevent stay with whoever has them. */
static void
hconn_drop(struct hconn *hc)
{
	TAILQ_REMOVE(hconn_bucket(hc->id), hc, entry);
	free(hc);
}

/* Forgotten with its socket: nobody else has it. */
static void
hconn_close(struct hconn *hc)
{
	bev_free(hc->bev);
	close(hc->fd);
	hconn_drop(hc);
}

/* The exchange is over and the connection stays for the next one. */
static void
hconn_keep(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct hconn *hc = hx->hc;

	bufferevent_setcb(hc->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(hc->bev, EV_READ | EV_WRITE);
	bufferevent_set_timeouts(hc->bev, NULL, NULL);
	bufferevent_setwatermark(hc->bev, EV_WRITE, HX_OUT_HIWAT / 2, 0);
	hc->rs = NULL;
	hx->hc = NULL;
	hx->cbev = NULL;
	rs->cfd = -1;
}

static void hx_abort(struct rsession *, uint32_t, const char *);

void
relay_http_release(struct imsgev *chan, uint32_t id)
{
	struct hconn *hc;

	if ((hc = hconn_find(chan, id)) == NULL)
		return;
	if (hc->rs != NULL && hc->rs->hx != NULL &&
	    hc->rs->hx->early_wait > 0) {
		/* the rest of its body is never coming: nothing was started */
		hc->released = 1;
		hx_abort(hc->rs, HTTP_DONE_CLIENT_GONE,
		    "client gone before its body was whole");
	} else if (hc->rs != NULL)
		hc->released = 1; /* its exchange ends the connection */
	else
		hconn_close(hc);
}

/* authproc is gone: so are its clients (their exchanges went first). */
void
relay_http_channel_lost(struct imsgev *chan)
{
	struct hconn *hc, *next;
	uint32_t i;

	for (i = 0; hconns_made && i < HCONN_BUCKETS; i++)
		for (hc = TAILQ_FIRST(&hconns[i]); hc != NULL; hc = next) {
			next = TAILQ_NEXT(hc, entry);
			if (hc->chan == chan)
				hconn_close(hc);
		}
}

/* ---- idle upstream connections ---- */

static void
idle_drop(struct idle_conn *ic)
{
	if (ic->bridge != NULL) {
		/* it owns the upstream socket and our pair's other end */
		tlsbridge_stop(ic->bridge);
		free(ic->bridge);
	}
	bev_free(ic->bev);
	close(ic->fd);
	TAILQ_REMOVE(&idle, ic, entry);
	nidle--;
	free(ic);
}

/* An idle connection that says anything was closed, or misbehaves. */
static void
idle_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	idle_drop(arg);
}

static void
idle_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	idle_drop(arg);
}

/* The upstream closed, or its TLS broke, while the connection was idle. */
static void
idle_bridge_done(struct tlsbridge *b, void *arg)
{
	(void)b;
	idle_drop(arg);
}

static void
idle_put(int fd, struct bufferevent *bev, const struct idle_key *k,
    struct tlsbridge *bridge)
{
	struct timeval tv = {http_conf.upstream_idle, 0};
	struct idle_conn *ic;

	if (http_conf.upstream_keep == 0 || relay_draining() ||
	    (ic = calloc(1, sizeof(*ic))) == NULL) {
		if (bridge != NULL) {
			tlsbridge_stop(bridge);
			free(bridge);
		}
		bev_free(bev);
		close(fd);
		return;
	}
	while (nidle >= http_conf.upstream_keep)
		idle_drop(TAILQ_LAST(&idle, idle_list_head));
	ic->fd = fd;
	ic->bev = bev;
	ic->addr = *k->addr;
	ic->tlscfg = k->tlscfg;
	snprintf(ic->servername, sizeof(ic->servername), "%s",
	    k->servername ? k->servername : "");
	if ((ic->bridge = bridge) != NULL) {
		bridge->done = idle_bridge_done;
		bridge->arg = ic;
	}
	bufferevent_setcb(bev, idle_read, NULL, idle_event, ic);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_enable(bev, EV_READ);
	TAILQ_INSERT_HEAD(&idle, ic, entry);
	nidle++;
}

/* A reload: the new generation keeps its own idle connections. */
void
relay_http_drain(void)
{
	while (!TAILQ_EMPTY(&idle))
		idle_drop(TAILQ_FIRST(&idle));
}

static int
idle_matches(const struct idle_conn *ic, const struct idle_key *k)
{
	return sockaddr_same_host(&ic->addr, k->addr) &&
	    sockaddr_port(&ic->addr) == sockaddr_port(k->addr) &&
	    ic->tlscfg == k->tlscfg &&
	    strcmp(ic->servername, k->servername ? k->servername : "") == 0;
}

/*
 * The connection's descriptor, its bufferevent in *bev and its bridge
 * (a TLS upstream's) in *bridge, or -1.
 */
static int
idle_take(const struct idle_key *k, struct bufferevent **bev,
    struct tlsbridge **bridge)
{
	struct idle_conn *ic;
	int fd;

	TAILQ_FOREACH(ic, &idle, entry)
	if (idle_matches(ic, k)) {
		fd = ic->fd;
		*bev = ic->bev;
		*bridge = ic->bridge;
		TAILQ_REMOVE(&idle, ic, entry);
		nidle--;
		free(ic);
		return fd;
	}
	return -1;
}

/* The key an exchange's upstream connection is kept and found by. */
static void
idle_key_of(struct rsession *rs, struct idle_key *k)
{
	const struct upstream_ctx *u = rs->lg->upstream;

	k->addr = &rs->lg->uaddr;
	k->tlscfg = NULL;
	k->servername = NULL;
	if (upstream_tls(u, PROTO_HTTP)) {
		k->tlscfg = u->tlscfg;
		k->servername = u->conf.servername;
	}
}

/* ---- ending an exchange ---- */

/* Milliseconds since authproc had the whole request head. */
static uint32_t
hx_elapsed_ms(const struct hexchange *hx, uint64_t now)
{
	return hx->rec.start_ms && now > hx->rec.start_ms
	    ? now - hx->rec.start_ms
	    : 0;
}

/*
 * A request with Basic credentials was a login attempt: the upstream's
 * answer decides it (401 and 403 are failures), or postern's own page
 * says why no upstream answered.  Never the password or the header.
 */
static void
hx_audit(struct rsession *rs, uint32_t result, const char *why)
{
	struct hexchange *hx = rs->hx;
	struct audit_record a;
	struct login_request creq;
	uint64_t now = wallclock_ms();

	if (!hx->rec.attempt || hx->audited)
		return;
	hx->audited = 1;
	hx->verdict = result;
	if (result == AUDIT_BAD_CREDENTIALS && relay_policy.shared) {
		creq = rs->lg->req;
		memcpy(creq.user, hx->rec.login_user, sizeof(creq.user));
		counter_failure(&creq);
		explicit_bzero(&creq, sizeof(creq));
	}
	if (result < AUDIT_RESULT_MAX)
		proc_stats.attempts[PROTO_HTTP][result]++;
	if (!relay_conf.audit)
		return;
	memset(&a, 0, sizeof(a));
	a.time_ms = now;
	a.sid = rs->sid;
	a.duration_ms = hx_elapsed_ms(hx, now);
	a.listener_id = hx->rec.listener_id;
	a.proto = PROTO_HTTP;
	a.result = result;
	a.tls = hx->rec.tls;
	a.facts = hx->rec.facts;
	a.client = hx->rec.client;
	memcpy(a.user, hx->rec.login_user, sizeof(a.user));
	snprintf(a.mech, sizeof(a.mech), "%s",
	    login_mech_name(hx->rec.attempt >= 2 ? MECH_FORM : MECH_BASIC));
	snprintf(a.reason, sizeof(a.reason), "%s", why);
	/* the operator's record names the upstream that failed, too */
	if (rs->lg->upstream != NULL)
		snprintf(a.upstream, sizeof(a.upstream), "%s",
		    rs->lg->upstream->conf.name);
	a.http_status = hx->status;
	memcpy(a.path_class, hx->rec.path_class, sizeof(a.path_class));
	relay_send_audit(&a);
}

/* One line of the access log, if there is one: never a credential. */
static void
hx_access(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct access_record a;
	uint64_t now = wallclock_ms();

	if (!http_conf.access_log)
		return;
	memset(&a, 0, sizeof(a));
	a.time_ms = now;
	a.sid = rs->sid;
	a.bytes_up = hx->up;
	a.bytes_down = hx->down;
	a.duration_ms = hx_elapsed_ms(hx, now);
	a.status = hx->status;
	a.client = hx->rec.client;
	memcpy(a.method, hx->rec.method, sizeof(a.method));
	memcpy(a.path, hx->rec.path, sizeof(a.path));
	if (rs->lg != NULL && rs->lg->upstream != NULL)
		snprintf(a.upstream, sizeof(a.upstream), "%s",
		    rs->lg->upstream->conf.name);
	if (hx->rec.attempt)
		memcpy(a.user, hx->rec.login_user, sizeof(a.user));
	else if (hx->rec.key_kind == HTTP_KEY_USER)
		memcpy(a.user, hx->rec.key, sizeof(a.user));
	relay_send_access(&a);
}

/*
 * A login's result from the upstream's answer: for Basic, 401 and 403
 * are failures; for a form, only the auth cookie set means success; for
 * a SOAP login, a 2xx answer (a two-factor first step or a JWT login
 * sets no cookie, and the admin console's cookie has a name of its own).
 * An upstream that could not answer (502, 503, 504) is no failure.
 */
static uint32_t
hx_verdict(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	int ok;

	if (hx->rec.attempt >= 2) {
		ok = hx->rec.attempt == 2
		    ? hx->login_cookie
		    : hx->status >= 200 && hx->status < 300;
		if (ok)
			return AUDIT_OK;
		return hx->status >= 502 && hx->status <= 504
		    ? AUDIT_UPSTREAM_UNAVAILABLE
		    : AUDIT_BAD_CREDENTIALS;
	}
	return hx->status == 401 || hx->status == 403 ? AUDIT_BAD_CREDENTIALS
						      : AUDIT_OK;
}

/*
 * The answer's head decides a login: authproc settles the attempt now,
 * not when the body ends (an ActiveSync Ping holds its answer for up to
 * an hour, and a pending attempt counts against the failure limits).
 */
static void
hx_tell_verdict(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct http_verdict v;
	uint32_t r;

	if (!hx->rec.attempt || hx->verdict_told)
		return;
	hx->verdict_told = 1;
	if ((r = hx_verdict(rs)) != AUDIT_OK && r != AUDIT_BAD_CREDENTIALS)
		return; /* no answer from the upstream: at the end, as none */
	v.login = r == AUDIT_OK ? 1 : 2;
	rsession_tell_authproc(rs, IMSG_HTTP_VERDICT, &v, sizeof(v));
}

static void
hx_log(struct rsession *rs, const char *what)
{
	struct hexchange *hx = rs->hx;
	char addr[128];

	/* not the path: it may name the user, and logs name no users */
	log_info("session %016llx: http %s from %s -> %s: %s %d, %llu up, "
		 "%llu down",
	    (unsigned long long)rs->sid, hx->rec.method,
	    sockaddr_str(&rs->client, addr, sizeof(addr)),
	    rs->lg->upstream != NULL ? rs->lg->upstream->conf.name : "-", what,
	    hx->status, (unsigned long long)hx->up,
	    (unsigned long long)hx->down);
}

static void
hx_report(struct rsession *rs, uint32_t result)
{
	struct hexchange *hx = rs->hx;
	struct {
		struct http_done d;
		unsigned char left[HTTP_LEFTOVER_MAX];
	} m;
	struct evbuffer *in;
	size_t n = 0;

	memset(&m.d, 0, sizeof(m.d));
	if (result == HTTP_DONE_KEEPALIVE && hx->cbev != NULL) {
		in = bufferevent_get_input(hx->cbev);
		if ((n = evbuffer_get_length(in)) > sizeof(m.left))
			result = HTTP_DONE_CLOSE, n = 0;
		else
			evbuffer_remove(in, m.left, n);
	}
	m.d.result = result;
	m.d.status = hx->status;
	m.d.login = hx->verdict == AUDIT_OK	   ? 1
	    : hx->verdict == AUDIT_BAD_CREDENTIALS ? 2
						   : 0;
	m.d.leftover = n;
	m.d.bytes_up = hx->up;
	m.d.bytes_down = hx->down;
	proc_stats.bytes_up[PROTO_HTTP] += hx->up;
	proc_stats.bytes_down[PROTO_HTTP] += hx->down;
	proc_stats.http_requests++;
	rsession_tell_authproc(rs, IMSG_HTTP_DONE, &m, sizeof(m.d) + n);
}

/* The exchange ends without a whole answer: the client is cut off. */
static void
hx_abort(struct rsession *rs, uint32_t result, const char *why)
{
	struct hexchange *hx = rs->hx;

	hx->ended = 1;
	hx_log(rs, why);
	hx_access(rs);
	/*
	 * Once the upstream has answered, its answer is the verdict, even
	 * if the client leaves before the end of it: leaving must not
	 * cancel a failure.
	 */
	hx_audit(rs,
	    hx->head_done && !hx->own_page	  ? hx_verdict(rs)
		: result == HTTP_DONE_CLIENT_GONE ? AUDIT_ABORTED
						  : AUDIT_UPSTREAM_UNAVAILABLE,
	    why);
	if (rs->cfd != -1)
		shutdown(rs->cfd, SHUT_RDWR);
	hx_report(rs, result);
	rsession_free(rs);
}

/*
 * A page of postern's own, when the upstream has said nothing to the
 * client yet.  The connection ends after it: a body may be unread.
 */
static void
hx_page(struct rsession *rs, int status, const char *why)
{
	struct hexchange *hx = rs->hx;
	char page[HX_PAGE_MAX];
	int n;

	if (hx->head_done) {
		hx_abort(rs, HTTP_DONE_CLOSE, why);
		return;
	}
	if (hx->ubev != NULL) {
		/* nothing more of this request may reach the upstream */
		evbuffer_drain(bufferevent_get_output(hx->ubev),
		    evbuffer_get_length(bufferevent_get_output(hx->ubev)));
		bufferevent_disable(hx->ubev, EV_READ | EV_WRITE);
	}
	hx->status = status;
	hx->own_page = 1;
	hx_audit(rs,
	    status == 404 ? AUDIT_NO_ROUTE : AUDIT_UPSTREAM_UNAVAILABLE, why);
	hx->head_done = hx->resp_done = 1;
	hx->client_close = 1;
	hx->resp_close = 1;
	hx_log(rs, why);
	if ((n = http_error_page(page, sizeof(page), status, 1, NULL)) > 0)
		bufferevent_write(hx->cbev, page, n);
	hx_maybe_finish(rs);
}

/*
 * Writes what is queued at once and arms the write event only for what
 * the socket would not take: a small answer then costs one writev and
 * no epoll_ctl.  A bufferevent whose write event is armed already is
 * left to it; so is an error, which its callback reports.
 */
static void
hx_flush(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	int n;

	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(bev) & EV_WRITE))
		return;
	/* a bufferevent's output is frozen at its start to all but it */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if ((n == -1 && errno != EAGAIN && errno != EINTR) ||
	    evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
}

/* A drained output disarms, so that the next answer is flushed first. */
static void
hx_drained(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* Once the response is out and the request in, or on an early answer. */
static void
hx_maybe_finish(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	if (hx->ended || !hx->resp_done)
		return;
	if (!hx->req_done)
		hx->client_close = 1; /* its body is unread: no next request */
	hx->finishing = 1;
	/*
	 * The upstream stays read: what it says now makes its connection
	 * unfit for reuse, and a kept connection is watched while idle.
	 * The client's own bytes after this request wait in its buffer.
	 */
	bufferevent_setwatermark(hx->cbev, EV_WRITE, 0, 0);
	hx_flush(hx->cbev);
	if (evbuffer_get_length(bufferevent_get_output(hx->cbev)) == 0)
		hx_finish(rs);
}

static int
hx_upstream_reusable(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	return hx->ubev != NULL && !hx->bridge_ended && !hx->resp_close &&
	    hx->resp_in != HTTP_BODY_CLOSE && hx->req_done &&
	    evbuffer_get_length(bufferevent_get_input(hx->ubev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(hx->ubev)) == 0 &&
	    rs->ufd != -1 && rs->lg->upstream != NULL &&
	    (rs->lg->pool == NULL || !rs->lg->pool->conf.proxy_v2);
}

static void
hx_finish(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	int keep = !hx->client_close && !hx->client_eof;

	hx->ended = 1;
	if (hx->hc != NULL && hx->hc->released)
		keep = 0;
	if (hx_upstream_reusable(rs)) {
		struct idle_key k;

		idle_key_of(rs, &k);
		idle_put(rs->ufd, hx->ubev, &k, hx->bridge);
		hx->ubev = NULL;
		hx->bridge = NULL;
		rs->ufd = -1;
	}
	/* one line per request is the access log's job; the log has them
	 * at -v */
	if (log_getverbose() > 0)
		hx_log(rs, "done");
	hx_access(rs);
	hx_audit(rs, hx_verdict(rs), "");
	if (!keep)
		shutdown(rs->cfd, SHUT_WR);
	hx_report(rs, keep ? HTTP_DONE_KEEPALIVE : HTTP_DONE_CLOSE);
	if (keep && hx->hc != NULL)
		hconn_keep(rs);
	rsession_free(rs);
}

void
relay_http_free(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	if (hx->splicing) {
		event_del(&hx->srev);
		event_del(&hx->swev);
		splice_pipe_put(hx->spipe, hx->sinpipe);
	}
	/* an exchange that did not keep its connection ends it */
	if (hx->hc != NULL)
		hconn_drop(hx->hc);
	if (hx->cbev != NULL)
		bev_free(hx->cbev);
	if (hx->ubev != NULL)
		bev_free(hx->ubev);
	if (hx->bridge != NULL) {
		/* it owns the upstream socket and our pair's other end */
		if (!hx->bridge_ended)
			tlsbridge_stop(hx->bridge);
		free(hx->bridge);
	}
	/* a login's password may be in either */
	if (hx->head != NULL)
		explicit_bzero(hx->head, hx->headlen);
	free(hx->head);
	if (hx->early != NULL)
		explicit_bzero(hx->early, hx->earlylen);
	free(hx->early);
	explicit_bzero(hx, sizeof(*hx));
	free(hx);
	rs->hx = NULL;
}

/* ---- the request body, client to upstream ---- */

static void
hx_add_chunk(struct evbuffer *out, const char *data, size_t len)
{
	char hdr[32];
	size_t n;

	n = http_chunk_header(hdr, sizeof(hdr), len);
	evbuffer_add(out, hdr, n);
	evbuffer_add(out, data, len);
	evbuffer_add(out, "\r\n", 2);
}

/*
 * Body bytes in the client's framing, to the upstream in ours.  Returns
 * how many were taken (the rest is the client's next request), -1 for
 * a malformed chunked body, -2 for one over limit http-body.
 */
static ssize_t
hx_body_in(struct rsession *rs, const char *p, size_t len)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *out = bufferevent_get_output(hx->ubev);
	size_t off = 0, used;

	if (hx->rec.framing == HTTP_BODY_LENGTH) {
		used = len < hx->req_left ? len : hx->req_left;
		evbuffer_add(out, p, used);
		hx->req_left -= used;
		hx->up += used;
		if (hx->req_left == 0)
			hx->req_done = 1;
		return used;
	}
	while (off < len && !hx->req_done) {
		switch (http_chunked_step(&hx->req_chunk, p + off, len - off,
		    &used)) {
		case HTTP_CHUNK_DATA:
			/* authproc held a Content-Length to the limit */
			hx->body_seen += used;
			if (http_conf.max_body != 0 &&
			    hx->body_seen > http_conf.max_body)
				return -2;
			hx_add_chunk(out, p + off, used);
			hx->up += used;
			break;
		case HTTP_CHUNK_MORE:
			if (used == 0)
				return off;
			break;
		case HTTP_CHUNK_DONE:
			evbuffer_add(out, "0\r\n\r\n", 5);
			hx->req_done = 1;
			break;
		case HTTP_CHUNK_ERROR:
			log_info("session %016llx: bad chunked body: %s",
			    (unsigned long long)rs->sid, hx->req_chunk.reason);
			return -1;
		}
		off += used;
	}
	return off;
}

/*
 * While the body comes, it must keep coming and the upstream must keep
 * taking it; once it is in, the client may be silent and the upstream
 * has timeout http-response to answer (an upload may take longer).
 */
static void
hx_timeouts(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct timeval stall = {relay_conf.timeout_stall, 0};
	struct timeval answer = {http_conf.timeout_response, 0};

	bufferevent_set_timeouts(hx->cbev, hx->req_done ? NULL : &stall,
	    &stall);
	if (hx->ubev != NULL)
		bufferevent_set_timeouts(hx->ubev,
		    hx->req_done ? &answer : NULL, &stall);
}

/* Feed what the client sent to the body, chunk of buffer by chunk. */
static int
hx_client_body(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *in = bufferevent_get_input(hx->cbev);
	struct evbuffer_iovec v;
	ssize_t n;

	while (!hx->req_done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 &&
	    v.iov_len > 0) {
		if ((n = hx_body_in(rs, v.iov_base, v.iov_len)) < 0)
			return n;
		evbuffer_drain(in, n);
		hx->req_consumed = 1;
		if ((size_t)n < v.iov_len)
			break;
	}
	if (hx->req_done)
		hx_timeouts(rs);
	hx_flush(hx->ubev);
	if (!hx->req_done &&
	    evbuffer_get_length(bufferevent_get_output(hx->ubev)) >
		HX_OUT_HIWAT)
		bufferevent_disable(hx->cbev, EV_READ);
	return 0;
}

static void
hx_client_read(struct bufferevent *bev, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;

	if (hx->ended || hx->req_done || hx->ubev == NULL) {
		/*
		 * The next request's bytes wait as leftover.  A full buffer
		 * stops reading: libevent would otherwise call us again and
		 * again, a busy loop, until the exchange ends.
		 */
		if (evbuffer_get_length(bufferevent_get_input(bev)) >=
		    HTTP_LEFTOVER_MAX)
			bufferevent_disable(bev, EV_READ);
		return;
	}
	switch (hx_client_body(rs)) {
	case -1:
		hx_page(rs, 400, "malformed request body");
		return;
	case -2:
		hx_page(rs, 413, "request body over the limit");
		return;
	}
	if (hx->req_done)
		hx_maybe_finish(rs);
}

static void
hx_client_write(struct bufferevent *bev, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;

	(void)bev;
	if (hx->ended)
		return;
	if (hx->finishing) {
		if (evbuffer_get_length(bufferevent_get_output(hx->cbev)) == 0)
			hx_finish(rs);
		return;
	}
	hx_drained(hx->cbev);
	if (hx->splice_wait) {
		if (evbuffer_get_length(bufferevent_get_output(hx->cbev)) == 0)
			hx_splice_begin(rs);
		return;
	}
	if (hx->splicing)
		return;
	/* the client took enough: read the upstream again */
	if (hx->ubev != NULL && !hx->resp_done)
		bufferevent_enable(hx->ubev, EV_READ);
}

static void
hx_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;

	(void)bev;
	if (hx->ended)
		return;
	if ((what & BEV_EVENT_EOF) && hx->req_done) {
		/* a half-close: it still gets its answer, then the end */
		hx->client_eof = 1;
		bufferevent_disable(hx->cbev, EV_READ);
		return;
	}
	hx_abort(rs, HTTP_DONE_CLIENT_GONE,
	    what & BEV_EVENT_TIMEOUT ? "client stalled" : "client gone");
}

/* ---- the response, upstream to client ---- */

/* Does the answer set the auth cookie (a form login's success)? */
static int
hx_sets_auth_cookie(void)
{
	const struct http_field *f;
	size_t i, n = strlen(http_conf.route.cookie);

	for (i = 0; i < resp.nfields; i++) {
		f = &resp.fields[i];
		if (http_field_is(f, "Set-Cookie") && n > 0 &&
		    f->valuelen > n + 1 &&
		    memcmp(f->value, http_conf.route.cookie, n) == 0 &&
		    f->value[n] == '=' && f->value[n + 1] != ';' &&
		    f->value[n + 1] != '"')
			return 1;
	}
	return 0;
}

/* Is a field of this name in the response head? */
static int
hx_has_field(const char *name)
{
	size_t i;

	for (i = 0; i < resp.nfields; i++)
		if (http_field_is(&resp.fields[i], name))
			return 1;
	return 0;
}

static void
hx_response_framing(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	int http10 = (hx->rec.flags & HTTP_REQ_HTTP10) != 0;

	hx->resp_in = resp.framing;
	hx->resp_left = resp.content_length;
	hx->resp_close = resp.close;
	http_chunked_init(&hx->resp_chunk);
	switch (resp.framing) {
	case HTTP_BODY_NONE:
	case HTTP_BODY_LENGTH:
		hx->resp_out = resp.framing;
		break;
	case HTTP_BODY_CHUNKED:
	case HTTP_BODY_CLOSE:
		/* an HTTP/1.1 client keeps its connection through chunks */
		hx->resp_out = http10 ? HTTP_BODY_CLOSE : HTTP_BODY_CHUNKED;
		break;
	}
	/* draining (a reload): the client's next request is for the new
	 * generation, and it must know to open a new connection */
	if (hx->resp_out == HTTP_BODY_CLOSE ||
	    (hx->rec.flags & HTTP_REQ_CLOSE) || hx->client_eof ||
	    relay_draining())
		hx->client_close = 1;
}

static int
hx_send_head(struct rsession *rs, int websocket)
{
	struct hexchange *hx = rs->hx;
	char hsts[64];
	struct http_rewrite rw;
	char out[HX_RESP_HEAD_MAX + 1024];
	ssize_t n;

	memset(&rw, 0, sizeof(rw));
	rw.public_scheme = hx->rec.tls ? "https" : "http";
	rw.public_host = hx->rec.host;
	/* only Location, Content-Location and Refresh are rewritten */
	ninternal = 0;
	if (hx_has_field("Location") || hx_has_field("Content-Location") ||
	    hx_has_field("Refresh"))
		hx_internal_names(rs);
	rw.internal = internal_ptr;
	rw.ninternal = ninternal;
	rw.close = hx->client_close;
	rw.out_framing = hx->resp_out;
	rw.out_length = hx->resp_left;
	rw.websocket = websocket;
	if (hx->rec.tls && (hx->rec.flags & HTTP_REQ_HSTS)) {
		snprintf(hsts, sizeof(hsts), "max-age=%u",
		    http_conf.hsts_max_age);
		rw.hsts = hsts;
	}
	if ((n = http_response_serialize(&resp, &rw, out, sizeof(out))) < 0)
		return -1;
	bufferevent_write(hx->cbev, out, n);
	return 0;
}

/* The upstream agreed to a WebSocket: bytes both ways from now on. */
static void
hx_websocket(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *uin = bufferevent_get_input(hx->ubev);
	struct evbuffer *cin = bufferevent_get_input(hx->cbev);
	struct evbuffer *cout = bufferevent_get_output(hx->cbev);
	unsigned char *toc, *tou;
	size_t nc, nu;

	if (hx->bridge != NULL || !(hx->rec.flags & HTTP_REQ_WEBSOCKET)) {
		hx_page(rs, 502, "unexpected 101 from the upstream");
		return;
	}
	hx->status = 101;
	hx->client_close = 0;
	hx->resp_out = HTTP_BODY_NONE;
	/* the parsed head points into uin: serialise, then drain */
	if (hx_send_head(rs, 1) == -1) {
		hx_page(rs, 502, "upstream head too large");
		return;
	}
	evbuffer_drain(uin, resp.headlen);
	/* what is buffered either way goes first, then splice takes over */
	evbuffer_add_buffer(cout, uin);
	nc = evbuffer_get_length(cout);
	nu = evbuffer_get_length(cin);
	toc = evbuffer_pullup(cout, -1);
	tou = evbuffer_pullup(cin, -1);
	hx->ended = 1;
	hx_log(rs, "websocket");
	hx_access(rs);
	hx_audit(rs, AUDIT_OK, "");
	hx_report(rs, HTTP_DONE_TAKEN);
	if (splice_start(rs, toc, nc, tou, nu) == -1) {
		rsession_free(rs);
		return;
	}
	rs->splicing = 1;
	rs->state = R_RELAYING;
	relay_http_free(rs);
	rsession_keep_info(rs);
	rsession_login_free(rs);
}

/* A head from the upstream: 1xx pass, 101 may upgrade, then the one. */
static int
hx_response_head(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *in = bufferevent_get_input(hx->ubev);
	size_t len = evbuffer_get_length(in);
	size_t take = len < HX_RESP_HEAD_MAX ? len : HX_RESP_HEAD_MAX;
	const char *p = (const char *)evbuffer_pullup(in, take);

	switch (http_response_parse(p, take, HX_RESP_HEAD_MAX,
	    (hx->rec.flags & HTTP_REQ_HEAD) != 0, &resp)) {
	case HTTP_PARSE_INCOMPLETE:
		if (len >= HX_RESP_HEAD_MAX) {
			hx_page(rs, 502, "upstream head too large");
			return -1;
		}
		return 0;
	case HTTP_PARSE_ERROR:
		log_info("session %016llx: bad response head: %s",
		    (unsigned long long)rs->sid, resp.reason);
		hx_page(rs, 502, "bad upstream response");
		return -1;
	case HTTP_PARSE_OK:
		break;
	}
	if (resp.status == 101) {
		hx_websocket(rs);
		return -1;
	}
	if (resp.status < 200) {
		/* a few are normal; a stream of them is an attack on memory */
		if (++hx->interim > HX_INTERIM_MAX) {
			hx_page(rs, 502, "too many interim answers");
			return -1;
		}
		/* Continue and friends, for HTTP/1.1 clients only */
		hx->resp_out = HTTP_BODY_NONE;
		if (!(hx->rec.flags & HTTP_REQ_HTTP10) &&
		    hx_send_head(rs, 0) == -1) {
			hx_page(rs, 502, "upstream head too large");
			return -1;
		}
		evbuffer_drain(in, resp.headlen);
		return 1;
	}
	if (resp.framing == HTTP_BODY_CLOSE &&
	    hx_has_field("Transfer-Encoding")) {
		/* a coding we would pass on unlabelled */
		hx_page(rs, 502, "upstream transfer coding not chunked");
		return -1;
	}
	hx->status = resp.status;
	hx->login_cookie = hx->rec.attempt == 2 && hx_sets_auth_cookie();
	hx_tell_verdict(rs);
	hx_response_framing(rs);
	if (hx_send_head(rs, 0) == -1) {
		hx_page(rs, 502, "upstream head too large");
		return -1;
	}
	evbuffer_drain(in, resp.headlen);
	hx->head_done = 1;
	if (hx->resp_in == HTTP_BODY_NONE ||
	    (hx->resp_in == HTTP_BODY_LENGTH && hx->resp_left == 0))
		hx->resp_done = 1;
	return 1;
}

static void
hx_body_out(struct rsession *rs, const char *data, size_t len)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *out = bufferevent_get_output(hx->cbev);

	if (hx->resp_out == HTTP_BODY_CHUNKED)
		hx_add_chunk(out, data, len);
	else
		evbuffer_add(out, data, len);
	hx->down += len;
}

static void
hx_body_end(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	if (hx->resp_out == HTTP_BODY_CHUNKED)
		evbuffer_add(bufferevent_get_output(hx->cbev), "0\r\n\r\n", 5);
	hx->resp_done = 1;
}

/* Response body bytes, de-framed as the upstream framed them. */
static int
hx_response_body(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct evbuffer *in = bufferevent_get_input(hx->ubev);
	struct evbuffer_iovec v;
	size_t n, used;

	while (!hx->resp_done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 &&
	    v.iov_len > 0) {
		n = v.iov_len;
		switch (hx->resp_in) {
		case HTTP_BODY_LENGTH:
			if (n > hx->resp_left)
				n = hx->resp_left;
			hx_body_out(rs, v.iov_base, n);
			if ((hx->resp_left -= n) == 0)
				hx->resp_done = 1;
			break;
		case HTTP_BODY_CLOSE:
			hx_body_out(rs, v.iov_base, n);
			break;
		case HTTP_BODY_CHUNKED:
			switch (http_chunked_step(&hx->resp_chunk, v.iov_base,
			    v.iov_len, &used)) {
			case HTTP_CHUNK_DATA:
				hx_body_out(rs, v.iov_base, used);
				break;
			case HTTP_CHUNK_MORE:
				break;
			case HTTP_CHUNK_DONE:
				hx_body_end(rs);
				break;
			case HTTP_CHUNK_ERROR:
				log_info("session %016llx: bad chunked "
					 "response: %s",
				    (unsigned long long)rs->sid,
				    hx->resp_chunk.reason);
				return -1;
			}
			n = used;
			break;
		default:
			return -1;
		}
		evbuffer_drain(in, n);
		if (n == 0)
			break;
	}
	return 0;
}

/* ---- a large response body, spliced ---- */

/*
 * A body of known length that only has to be copied: splice(2) moves it
 * socket to pipe to socket and it never enters user space.  Chunked and
 * read-to-close bodies, and anything through the TLS bridge, stay on the
 * buffered path, which re-frames.
 */
static int
hx_splice_eligible(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	return hx->head_done && !hx->resp_done && hx->req_done &&
	    hx->resp_in == HTTP_BODY_LENGTH &&
	    hx->resp_out == HTTP_BODY_LENGTH && hx->bridge == NULL &&
	    hx->resp_left >= HX_SPLICE_MIN && rs->ufd != -1 &&
	    evbuffer_get_length(bufferevent_get_input(hx->ubev)) == 0;
}

static void hx_splice_event(int, short, void *);

/* Both descriptors as far as they go; then wait for the one that hung. */
static void
hx_splice_run(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	struct timeval answer = {http_conf.timeout_response, 0};
	struct timeval stall = {relay_conf.timeout_stall, 0};
	ssize_t n;
	int moved;

	do {
		moved = 0;
		if (hx->sunread > 0) {
			n = splice(rs->ufd, NULL, hx->spipe[1], NULL,
			    hx->sunread < HX_SPLICE_CHUNK ? hx->sunread
							  : HX_SPLICE_CHUNK,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n == 0 || (n == -1 && errno != EAGAIN)) {
				hx_abort(rs, HTTP_DONE_CLOSE,
				    "upstream closed mid-response");
				return;
			}
			if (n > 0) {
				hx->sunread -= n;
				hx->sinpipe += n;
				moved = 1;
			}
		}
		if (hx->sinpipe > 0) {
			n = splice(hx->spipe[0], NULL, rs->cfd, NULL,
			    hx->sinpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n == -1 && errno != EAGAIN) {
				hx_abort(rs, HTTP_DONE_CLIENT_GONE,
				    "client gone");
				return;
			}
			if (n > 0) {
				hx->sinpipe -= n;
				hx->resp_left -= n;
				hx->down += n;
				moved = 1;
			}
		}
	} while (moved);
	if (hx->resp_left == 0) {
		hx->splicing = 0;
		splice_pipe_put(hx->spipe, 0);
		hx->resp_done = 1;
		hx_maybe_finish(rs);
		return;
	}
	/* a pipe with bytes in it makes a read's EAGAIN ambiguous */
	if (hx->sinpipe > 0)
		event_add(&hx->swev, &stall);
	else
		event_add(&hx->srev, &answer);
}

static void
hx_splice_event(int fd, short event, void *arg)
{
	struct rsession *rs = arg;

	if (event & EV_TIMEOUT) {
		if (fd == rs->cfd)
			hx_abort(rs, HTTP_DONE_CLIENT_GONE, "client stalled");
		else
			hx_abort(rs, HTTP_DONE_CLOSE, "upstream stalled");
		return;
	}
	hx_splice_run(rs);
}

static void
hx_splice_begin(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	hx->splice_wait = 0;
	if (splice_pipe_get(hx->spipe) == -1) {
		bufferevent_enable(hx->ubev, EV_READ);
		return;
	}
	hx->splicing = 1;
	hx->sinpipe = 0;
	hx->sunread = hx->resp_left;
	bufferevent_disable(hx->ubev, EV_READ | EV_WRITE);
	event_set(&hx->srev, rs->ufd, EV_READ, hx_splice_event, rs);
	event_set(&hx->swev, rs->cfd, EV_WRITE, hx_splice_event, rs);
	hx_splice_run(rs);
}

/* The head and what came with it go out first, through the buffer. */
static void
hx_splice_offer(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	bufferevent_disable(hx->ubev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(hx->cbev)) == 0) {
		hx_splice_begin(rs);
		return;
	}
	hx->splice_wait = 1;
	bufferevent_setwatermark(hx->cbev, EV_WRITE, 0, 0);
}

static void
hx_upstream_read(struct bufferevent *bev, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;
	int r;

	(void)bev;
	if (hx->ended)
		return;
	hx->resp_started = 1;
	while (!hx->head_done) {
		if ((r = hx_response_head(rs)) < 0)
			return; /* the exchange ended */
		if (r == 0) {
			hx_flush(hx->cbev); /* a 100 Continue, say */
			return;
		}
	}
	if (hx_response_body(rs) == -1) {
		hx_abort(rs, HTTP_DONE_CLOSE, "bad upstream body");
		return;
	}
	hx_flush(hx->cbev);
	if (hx_splice_eligible(rs)) {
		hx_splice_offer(rs);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(hx->cbev)) >
	    HX_OUT_HIWAT)
		bufferevent_disable(hx->ubev, EV_READ);
	hx_maybe_finish(rs);
}

static void
hx_upstream_write(struct bufferevent *bev, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;

	hx_drained(bev);
	/* the upstream took enough: read the client's body again */
	if (!hx->ended && !hx->req_done)
		bufferevent_enable(hx->cbev, EV_READ);
}

static void hx_start_upstream(struct rsession *, struct bufferevent *);

static int
hx_safe_method(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
	    strcmp(m, "OPTIONS") == 0 || strcmp(m, "PROPFIND") == 0 ||
	    strcmp(m, "REPORT") == 0;
}

/*
 * An idle connection may have been closed by the upstream just as it
 * was taken: if nothing of the exchange was lost yet, try a fresh one.
 */
static int
hx_retry(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;

	/*
	 * Only a request without a body whose method is safe: the upstream
	 * may have read and acted on it before it closed.
	 */
	if (!hx->reused || hx->retried || hx->resp_started ||
	    hx->req_consumed || hx->rec.framing != HTTP_BODY_NONE ||
	    !hx_safe_method(hx->rec.method))
		return 0;
	hx->retried = 1;
	hx->reused = 0;
	bev_free(hx->ubev);
	hx->ubev = NULL;
	if (hx->bridge != NULL) {
		if (!hx->bridge_ended)
			tlsbridge_stop(hx->bridge);
		free(hx->bridge);
		hx->bridge = NULL;
		hx->bridge_ended = 0;
	}
	close(rs->ufd);
	rs->ufd = -1;
	log_debug("session %016llx: idle upstream connection was closed; "
		  "reconnecting",
	    (unsigned long long)rs->sid);
	rsession_reconnect(rs);
	return 1;
}

static void
hx_upstream_event(struct bufferevent *bev, short what, void *arg)
{
	struct rsession *rs = arg;
	struct hexchange *hx = rs->hx;

	(void)bev;
	if (hx->ended)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		hx_page(rs, 504, "upstream response timeout");
		return;
	}
	if (hx_retry(rs))
		return;
	/*
	 * Every byte read before the close has been through
	 * hx_upstream_read() already; what it left is an unfinished head
	 * or chunk.  (Calling it again here could free the session under
	 * us.)
	 */
	if (!hx->head_done) {
		hx_page(rs, 502, "upstream closed without an answer");
		return;
	}
	if (hx->resp_in == HTTP_BODY_CLOSE && !hx->resp_done) {
		hx->resp_close = 1;
		hx_body_end(rs);
		hx_maybe_finish(rs);
		return;
	}
	if (!hx->resp_done)
		hx_abort(rs, HTTP_DONE_CLOSE, "upstream closed mid-response");
	else
		hx->resp_close = 1; /* it is not coming back */
}

/* ---- starting an exchange ---- */

static void
hx_bridge_done(struct tlsbridge *b, void *arg)
{
	struct rsession *rs = arg;

	(void)b;
	rs->hx->bridge_ended = 1;
}

/* A TLS upstream: the bridge encrypts, we speak plain to a socketpair. */
static int
hx_bridge_upstream(struct rsession *rs)
{
	struct hexchange *hx = rs->hx;
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sp) == -1)
		return -1;
	if ((hx->bridge = calloc(1, sizeof(*hx->bridge))) == NULL)
		fatal("calloc");
	hx->bridge->upstream_net = 1;
	hx->bridge->linger_sec = relay_conf.timeout_linger;
	hx->bridge->stall_sec = relay_conf.timeout_stall;
	if (tlsbridge_start(hx->bridge, rs->utls, rs->ufd, sp[0], NULL, 0, NULL,
		0, hx_bridge_done, rs) == -1) {
		close(sp[1]);
		return -1;
	}
	rs->utls = NULL;
	rs->ufd = sp[1];
	return 0;
}

/* "host:port" and "host" of an address, as URIs write them. */
static void
authority(const struct sockaddr_storage *ss, char *withport, char *bare)
{
	char host[INET6_ADDRSTRLEN];
	int v6 = ss->ss_family == AF_INET6;

	sockaddr_host(ss, host, sizeof(host));
	snprintf(withport, HX_AUTH_MAX, v6 ? "[%s]:%u" : "%s:%u", host,
	    sockaddr_port(ss));
	snprintf(bare, HX_AUTH_MAX, v6 ? "[%s]" : "%s", host);
}

static void
known_add(const struct upstream_ctx *u, void *arg)
{
	(void)arg;
	if (u->conf.has_http && nknown + 2 <= HX_KNOWN_MAX) {
		authority(&u->conf.http, known[nknown], known[nknown + 1]);
		nknown += 2;
	}
	if (u->conf.servername[0] != '\0' && nknown < HX_KNOWN_MAX)
		snprintf(known[nknown++], HX_AUTH_MAX, "%s",
		    u->conf.servername);
	/* the name `host' gave, with the web port and without */
	if (u->conf.hostname[0] != '\0' && u->conf.has_http &&
	    nknown + 2 <= HX_KNOWN_MAX) {
		snprintf(known[nknown++], HX_AUTH_MAX, "%s:%u",
		    u->conf.hostname, sockaddr_port(&u->conf.http));
		snprintf(known[nknown++], HX_AUTH_MAX, "%s", u->conf.hostname);
	}
}

/*
 * What the client must never see: the address this exchange went to
 * (a handler's route may name any server) and every configured one.
 */
static void
hx_internal_names(struct rsession *rs)
{
	size_t i;

	if (!known_made) {
		route_foreach_upstream(known_add, NULL);
		known_made = 1;
	}
	authority(&rs->lg->uaddr, internal[0], internal[1]);
	internal_ptr[0] = internal[0];
	internal_ptr[1] = internal[1];
	for (i = 0; i < nknown; i++)
		internal_ptr[2 + i] = known[i];
	ninternal = 2 + nknown;
}

/* Head and the body bytes authproc had, then whatever else comes. */
static void
hx_start_upstream(struct rsession *rs, struct bufferevent *kept)
{
	struct hexchange *hx = rs->hx;
	ssize_t n = 0;

	/* a reused connection comes here with the route's timer running */
	evtimer_del(&rs->lg->timer);
	if ((hx->ubev = kept) == NULL &&
	    (hx->ubev = bufferevent_socket_new(http_base, rs->ufd, 0)) == NULL)
		fatalx("bufferevent_socket_new failed");
	/* born with writing enabled; hx_flush() arms it when needed */
	bufferevent_disable(hx->ubev, EV_WRITE);
	bufferevent_setcb(hx->ubev, hx_upstream_read, hx_upstream_write,
	    hx_upstream_event, rs);
	bufferevent_setwatermark(hx->ubev, EV_WRITE, HX_OUT_HIWAT / 2, 0);
	hx->req_left = hx->rec.content_length;
	hx->req_done = hx->rec.framing == HTTP_BODY_NONE ||
	    (hx->rec.framing == HTTP_BODY_LENGTH && hx->req_left == 0);
	http_chunked_init(&hx->req_chunk);
	hx->up = 0;
	rs->state = R_RELAYING;
	bufferevent_write(hx->ubev, hx->head, hx->headlen);
	if (hx->earlylen > 0 && !hx->req_done &&
	    (n = hx_body_in(rs, (const char *)hx->early, hx->earlylen)) < 0) {
		hx_page(rs, n == -1 ? 400 : 413,
		    n == -1 ? "malformed request body"
			    : "request body over the limit");
		return;
	}
	/*
	 * authproc sent all it had read: past the body is the client's
	 * next request, in front of anything read since.  Once only: a
	 * retry starts here again.
	 */
	if ((size_t)n < hx->earlylen && !hx->early_placed)
		evbuffer_prepend(bufferevent_get_input(hx->cbev), hx->early + n,
		    hx->earlylen - n);
	hx->early_placed = 1;
	if (hx->rec.framing != HTTP_BODY_NONE && hx->early != NULL) {
		/*
		 * A request with a body is never retried: a body read whole
		 * (up to "http form-login scan") need not stay for one.
		 */
		explicit_bzero(hx->early, hx->earlylen);
		free(hx->early);
		hx->early = NULL;
		hx->earlylen = 0;
	}
	bufferevent_enable(hx->ubev, EV_READ);
	hx_timeouts(rs);
	/*
	 * The client is ours to read only for a body or a WebSocket; past a
	 * bodiless head authproc keeps what comes (http_forward()).
	 */
	if (!hx->req_done || (hx->rec.flags & HTTP_REQ_WEBSOCKET))
		bufferevent_enable(hx->cbev, EV_READ);
	hx_flush(hx->ubev);
	if (!hx->req_done &&
	    evbuffer_get_length(bufferevent_get_input(hx->cbev)) > 0)
		hx_client_read(hx->cbev, rs);
}

static void
http_upstream_ready(struct rsession *rs)
{
	if (rs->utls != NULL && hx_bridge_upstream(rs) == -1) {
		hx_page(rs, 502, "cannot bridge the upstream's TLS");
		return;
	}
	hx_start_upstream(rs, NULL);
}

static int
http_reuse(struct rsession *rs)
{
	struct bufferevent *bev;
	int fd;

	struct tlsbridge *bridge = NULL;
	struct idle_key k;

	/* a PROXY header spoke for another client */
	if (rs->hx->retried ||
	    (rs->lg->pool != NULL && rs->lg->pool->conf.proxy_v2))
		return 0;
	idle_key_of(rs, &k);
	if (k.tlscfg == NULL && upstream_tls(rs->lg->upstream, PROTO_HTTP))
		return 0; /* no CA: the connect path says so */
	if ((fd = idle_take(&k, &bev, &bridge)) == -1)
		return 0;
	rs->ufd = fd;
	rs->hx->reused = 1;
	if ((rs->hx->bridge = bridge) != NULL) {
		bridge->done = hx_bridge_done;
		bridge->arg = rs;
		rs->hx->bridge_ended = 0;
	}
	hx_start_upstream(rs, bev);
	return 1;
}

static int
http_failure_status(const char *text)
{
	if (strstr(text, "timeout") != NULL)
		return 504;
	if (strstr(text, "no route") != NULL)
		return 404;
	return 503;
}

/* No upstream could be had for this request. */
static void
http_failed(struct rsession *rs, uint32_t status, const char *text)
{
	struct hexchange *hx = rs->hx;
	struct pool_ctx *fb;

	(void)status;
	/* a lookup that found nothing: any server can serve (Zimbra) */
	if (rs->lg->upstream == NULL && !rs->lg->route_refused &&
	    !hx->fell_back && !http_conf.lookup_fail_503 &&
	    hx->rec.key_kind != HTTP_KEY_NONE &&
	    (fb = route_pool_by_id(http_conf.fallback_id)) != NULL) {
		log_info("session %016llx: no route for the request's user "
			 "(%s); using the client-IP hash",
		    (unsigned long long)rs->sid, text);
		hx->fell_back = 1;
		rsession_connect_pool(rs, fb, ROUTE_SRC_STATIC);
		return;
	}
	if (rs->lg->upstream == NULL && !rs->lg->route_refused &&
	    hx->rec.key_kind != HTTP_KEY_NONE && http_conf.lookup_fail_503) {
		hx_page(rs, 503, text);
		return;
	}
	hx_page(rs, http_failure_status(text), text);
}

/* What authproc sent: the record, the head, the early body bytes. */
static void
hx_copy_request(struct rsession *rs, const struct http_request_rec *rec)
{
	struct hexchange *hx;
	struct login_request *req = &rs->lg->req;

	if ((hx = calloc(1, sizeof(*hx))) == NULL)
		fatal("calloc");
	hx->rs = rs;
	hx->rec = *rec;
	hx->headlen = rec->headlen;
	hx->earlylen = rec->bodylen;
	hx->early_wait = rec->bodymore;
	if ((hx->head = malloc(hx->headlen)) == NULL ||
	    (hx->early = malloc(hx->earlylen + hx->early_wait + 1)) == NULL)
		fatal("malloc");
	memcpy(hx->head, rec + 1, hx->headlen);
	memcpy(hx->early, (const char *)(rec + 1) + hx->headlen, hx->earlylen);
	rs->hx = hx;
	rs->sid = rec->sid;
	rs->client = rec->client;
	req->listener_id = rec->listener_id;
	req->attempt = 1;
	req->mech = rec->key_kind == HTTP_KEY_ACCOUNT_ID ? MECH_ID : MECH_NAME;
	req->client = rec->client;
	req->local = rec->local;
	req->tls = rec->tls;
	req->facts = rec->facts;
	req->sid = rec->sid;
	req->start_ms = rec->start_ms;
	memcpy(req->user, rec->key, sizeof(req->user));
	rs->lg->auth_method =
	    rec->key_kind == HTTP_KEY_ACCOUNT_ID ? "zimbraId" : "username";
	rs->lg->auth_protocol = rec->tls ? "httpssl" : "http";
	rs->lg->proxy_host = hx->rec.host;
}

/* The whole request is here: count its login, route it. */
static void
hx_begin(struct rsession *rs)
{
	const struct http_request_rec *rec = &rs->hx->rec;
	struct pool_ctx *fb;

	if (rec->attempt && relay_policy.shared) {
		/* the shared counters count the attempt when relay takes it */
		struct login_request creq = rs->lg->req;

		memcpy(creq.user, rec->login_user, sizeof(creq.user));
		counter_attempt(&creq);
		explicit_bzero(&creq, sizeof(creq));
	}
	if (rec->key_kind != HTTP_KEY_NONE) {
		rsession_route(rs);
		return;
	}
	if ((fb = route_pool_by_id(http_conf.fallback_id)) == NULL) {
		hx_page(rs, 404, "no route for a request without a user");
		return;
	}
	rsession_arm_login_timer(rs);
	rsession_connect_pool(rs, fb, ROUTE_SRC_STATIC);
}

void
relay_http_request(struct imsgev *iev, struct imsg *imsg)
{
	const struct http_request_rec *rec = imsg->data;
	struct http_done d;
	struct rsession *rs = NULL;
	struct hconn *hc;

	hc = hconn_find(iev, imsg->hdr.peerid);
	if (imsg->fd == -1) {
		/* a later request on a connection whose socket we keep */
		if (hc != NULL && hc->rs == NULL && !hc->released)
			rs = rsession_new_fd(iev, imsg, PROTO_HTTP, hc->fd);
	} else if (hc == NULL || hc->rs == NULL) {
		/* a first request; what we kept under its id is stale */
		if (hc != NULL)
			hconn_close(hc);
		hc = NULL;
		rs = rsession_new(iev, imsg, PROTO_HTTP);
	}
	if (rs == NULL) {
		log_warnx("session %016llx: %s", (unsigned long long)rec->sid,
		    imsg->fd == -1 ? "no client socket kept for it"
				   : "unusable client socket");
		memset(&d, 0, sizeof(d));
		d.result = HTTP_DONE_CLOSE;
		imsgev_compose(iev, IMSG_HTTP_DONE, imsg->hdr.peerid, -1, &d,
		    sizeof(d));
		return;
	}
	hx_copy_request(rs, rec);
	if (hc == NULL) {
		if ((rs->hx->cbev = bufferevent_socket_new(http_base, rs->cfd,
			 0)) == NULL)
			fatalx("bufferevent_socket_new failed");
		/* born with writing enabled; hx_flush() arms it when needed */
		bufferevent_disable(rs->hx->cbev, EV_WRITE);
		/* beyond the body: the next request, for authproc, bounded */
		bufferevent_setwatermark(rs->hx->cbev, EV_READ, 0,
		    HTTP_LEFTOVER_MAX);
		bufferevent_setwatermark(rs->hx->cbev, EV_WRITE,
		    HX_OUT_HIWAT / 2, 0);
		hc = hconn_new(iev, imsg->hdr.peerid, rs->cfd, rs->hx->cbev);
	} else
		rs->hx->cbev = hc->bev;
	hc->rs = rs;
	rs->hx->hc = hc;
	bufferevent_setcb(rs->hx->cbev, hx_client_read, hx_client_write,
	    hx_client_event, rs);
	/* a body read whole in authproc may still be on its way */
	if (rs->hx->early_wait == 0)
		hx_begin(rs);
}

/*
 * More of a body authproc read whole (to look for a login in it), in
 * order, right behind its request.  More than was announced is a
 * broken authproc.
 */
int
relay_http_body(struct imsgev *iev, struct imsg *imsg)
{
	struct hconn *hc;
	struct hexchange *hx;

	/* an exchange relay ended meanwhile (a reload) wants no more */
	if ((hc = hconn_find(iev, imsg->hdr.peerid)) == NULL ||
	    hc->rs == NULL || hc->rs->hx == NULL)
		return 0;
	hx = hc->rs->hx;
	if (imsg->datalen == 0 || imsg->datalen > hx->early_wait)
		return -1;
	memcpy(hx->early + hx->earlylen, imsg->data, imsg->datalen);
	hx->earlylen += imsg->datalen;
	hx->early_wait -= imsg->datalen;
	if (hx->early_wait == 0)
		hx_begin(hc->rs);
	return 0;
}

const struct relay_engine relay_http_engine = {
    .proto = PROTO_HTTP,
    .client_first = 1,
    .upstream_ready = http_upstream_ready,
    .failed = http_failed,
    .reuse = http_reuse,
};
