/*
 * Where a user's mailbox lives, when lookup handlers are configured:
 * first the route cache in memcached, then the HTTP handlers (nginx
 * auth_http, round robin, each request bounded by a time-out, a failing
 * handler left alone for a while), then the static table.  A route names
 * one server by its address, which must lie inside the configured
 * upstream networks or relay will not connect there, or a configured
 * upstream or pool by its name, which brings that upstream's TLS and
 * the pool's failover with it.
 *
 * http:// handlers are asked with libevent's HTTP client.  https://
 * handlers with a client of our own: libevent's cannot be handed a
 * connection that is already open (it closes it and connects afresh),
 * so relay connects, verifies the handler's certificate with libtls,
 * writes the request and reads the answer's head (http_response_parse)
 * itself, bounded by "lookup timeout" from connect to the last byte.
 *
 * The route cache's values are authhttp_cache_format()'s: the key check
 * (the first 16 hex digits of the key's hash) ties a value to its key,
 * so a reply meant for another key is never used.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <tls.h>

#include "authhttp.h"
#include "http.h"
#include "log.h"
#include "mcache.h"
#include "relay.h"

enum https_state { HS_CONNECT, HS_HANDSHAKE, HS_WRITE, HS_READ };

struct lookup_http {
	struct rsession *rs; /* NULL once the session has gone */
	int handler;
	/* http://: libevent's client */
	struct evhttp_connection *conn;
	int sending;	 /* inside evhttp_make_request() */
	int sync_failed; /* libevent failed it from there */
	/* https://: our own, one connection per request */
	int fd;
	struct tls *tls;
	enum https_state state;
	struct event ev;
	struct event timer; /* the whole request */
	char *out;	    /* the request, wiped once sent */
	size_t outlen;
	size_t outoff;
	char *in; /* the answer's head, LOOKUP_MAX_HEADERS at most */
	size_t inlen;
	uint64_t started_us;
};

/* A handler answers in headers; nothing large is ever expected. */
#define LOOKUP_MAX_HEADERS 16384
#define LOOKUP_MAX_BODY	   4096
#define LOOKUP_MAX_FIELDS  12 /* the request's header fields */

struct handler_state {
	uint64_t down_until; /* ms */
	int reported;
};

/* An https:// handler's trust: its CA bundle, then its TLS settings. */
struct handler_tls {
	unsigned char *ca;
	size_t calen;
	size_t cagot;
	struct tls_config *cfg;
};

static struct conf_lookup lk;
static struct handler_state hstate[LOOKUP_MAX_HANDLERS];
static uint64_t handler_errors[LOOKUP_MAX_HANDLERS];
static struct handler_tls htls[LOOKUP_MAX_HANDLERS];
static uint32_t handler_rr;
static struct event_base *lookup_base;

static void lookup_handlers(struct rsession *);
static uint64_t route_epoch; /* see epoch_poll() */
static int epoch_known;
static struct event epoch_ev;
#define ROUTE_EPOCH_POLL_S 10

static void
flush_deleted(struct mc_job *job)
{
	lookup_ctl_done(job->cookie, job->ok, job->ok);
}

void
lookup_init(const struct conf_lookup *conf, struct event_base *base)
{
	lk = *conf;
	lookup_base = base;
}

int
lookup_configured(void)
{
	return lk.nhandlers > 0;
}

/*
 * An https:// handler's CA bundle, in chunks from the parent, before the
 * sandbox closes; complete, it becomes the handler's TLS settings (the
 * versions of "tls protocols").  Returns -1 for a blob that makes no
 * sense: not an https:// handler's, or out of order.
 */
int
lookup_handler_ca(const struct conf_blob *b, const unsigned char *data,
    const struct conf_tls_global *g)
{
	struct handler_tls *t;
	uint32_t h;
	int r;

	if (b->owner_id < LOOKUP_BLOB_OWNER ||
	    (h = b->owner_id - LOOKUP_BLOB_OWNER) >= lk.nhandlers ||
	    !lk.handlers[h].tls || htls[h].cfg != NULL)
		return -1;
	t = &htls[h];
	if ((r = blob_store(&t->ca, &t->calen, &t->cagot, b, data)) != 1)
		return r;
	if ((t->cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new failed");
	if (tls_config_set_protocols(t->cfg, g->protocols) == -1 ||
	    tls_config_set_ca_mem(t->cfg, t->ca, t->calen) == -1) {
		/* no CA, no trust: the handler is never asked, loudly */
		log_warnx("lookup handler %s%s: %s", lk.handlers[h].host,
		    lk.handlers[h].path, tls_config_error(t->cfg));
		tls_config_free(t->cfg);
		t->cfg = NULL;
	}
	free(t->ca);
	t->ca = NULL;
	return 0;
}

static int
network_match(const struct conf_upstream_network *n,
    const struct sockaddr_storage *ss)
{
	struct cidr c;

	c.family = n->family;
	c.prefix = n->prefix;
	memcpy(c.addr, n->addr, sizeof(c.addr));
	return cidr_match(&c, ss) &&
	    (n->port == 0 || n->port == sockaddr_port(ss));
}

/* May relay connect where a handler or the cache says? */
int
lookup_upstream_allowed(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	uint32_t i;

	/* an IPv4 host dressed as IPv6 would slip past IPv6 networks */
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return 0;
	if (sockaddr_port(ss) == 0)
		return 0;
	for (i = 0; i < lk.nnetworks; i++)
		if (network_match(&lk.networks[i], ss))
			return 1;
	return 0;
}

/*
 * The cache key: the lower-cased user, hashed; one for every protocol,
 * so that a route found for an IMAP login serves the user's web
 * requests and the other way round.
 */
static int
user_route_key(int by_id, const char *user, char *key, size_t keysz)
{
	unsigned char raw[1 + USER_MAX_LEN + sizeof(uint64_t)];
	size_t i, len = 0;

	/* an account id and a name never share a key */
	raw[len++] = by_id ? 0x80 : 0;
	for (i = 0; user[i] != '\0' && i < USER_MAX_LEN; i++)
		raw[len++] = tolower((unsigned char)user[i]);
	/* after "route flush all": every earlier key is out of reach */
	if (route_epoch != 0) {
		memcpy(raw + len, &route_epoch, sizeof(route_epoch));
		len += sizeof(route_epoch);
	}
	return mckey_derive(key, keysz, 'r', raw, len);
}

static int
route_key(const struct rsession *rs, char *key, size_t keysz)
{
	return user_route_key(rs->lg->req.mech == MECH_ID, rs->lg->req.user,
	    key, keysz);
}

/*
 * The route cache's generation, a number in memcached that "route flush
 * all" replaces with a random one: memcached cannot list keys, so
 * flushing every route means deriving different keys from then on.  A
 * random number never comes back, even if the key is lost and flushed
 * again.  Each relay reads it now and then, so all nodes follow within
 * ROUTE_EPOCH_POLL_S, and uses no cached route until it has read it
 * once (a missing key means generation 0, the keys before any flush).
 */
static int
epoch_key(char *key, size_t keysz)
{
	static const char name[] = "route-epoch";

	return mckey_derive(key, keysz, 'e', name, sizeof(name) - 1);
}

static int ready_said = 1;

static void
epoch_read(struct mc_job *job)
{
	/* relay is ready once it knows which cached routes to use */
	if (!ready_said) {
		ready_said = 1;
		log_info("ready");
	}
	if (!job->ok)
		return;
	if (job->values[0] != route_epoch)
		log_info("route cache generation %016llx",
		    (unsigned long long)job->values[0]);
	route_epoch = job->values[0];
	epoch_known = 1;
}

/* Returns 1 if a read is under way. */
static int
epoch_ask(void)
{
	struct mc_job *job;

	if (!mcache_configured() || lk.cache_ttl == 0)
		return 0;
	job = mcache_job(MC_COUNTER_GET, epoch_read, NULL);
	job->stamp_ms = wallclock_ms();
	job->nkeys = 1;
	if (epoch_key(job->keys[0], sizeof(job->keys[0])) == -1) {
		free(job);
		return 0;
	}
	return mcache_submit(job) == 0;
}

static void
epoch_poll(int fd, short event, void *arg)
{
	struct timeval tv = {ROUTE_EPOCH_POLL_S, 0};

	(void)fd;
	(void)event;
	(void)arg;
	evtimer_add(&epoch_ev, &tv);
	(void)epoch_ask();
}

/*
 * After the sandbox, once memcached may be asked.  Returns 1 if relay
 * says "ready" only when the first read of the generation is done.
 */
int
lookup_start(void)
{
	struct timeval tv = {ROUTE_EPOCH_POLL_S, 0};

	evtimer_set(&epoch_ev, epoch_poll, NULL);
	evtimer_add(&epoch_ev, &tv);
	ready_said = !epoch_ask();
	return !ready_said;
}

static void
epoch_bumped(struct mc_job *job)
{
	if (job->ok) {
		route_epoch = strtoull(job->value, NULL, 10);
		epoch_known = 1;
	}
	lookup_ctl_done(job->cookie, job->ok, job->ok);
}

/*
 * posternctl route flush: one user's routes (by name and, should the
 * name be an account id, by id), or all of them.  The answer goes to
 * lookup_ctl_done() when memcached has taken it.  Returns -1 if there
 * is no route cache to flush.
 */
int
lookup_flush(const char *user, uint64_t query)
{
	struct mc_job *job;

	if (!mcache_configured() || lk.cache_ttl == 0)
		return -1;
	if (user == NULL) {
		uint64_t gen;

		do
			arc4random_buf(&gen, sizeof(gen));
		while (gen == 0 || gen == route_epoch);
		job = mcache_job(MC_SET, epoch_bumped, NULL);
		job->ttl = 0;
		job->nkeys = 1;
		job->valuelen = snprintf(job->value, sizeof(job->value), "%llu",
		    (unsigned long long)gen);
		if (epoch_key(job->keys[0], sizeof(job->keys[0])) == -1) {
			free(job);
			return -1;
		}
	} else {
		job = mcache_job(MC_DELETE, flush_deleted, NULL);
		job->nkeys = 2;
		if (user_route_key(0, user, job->keys[0], MC_KEY_MAX) == -1 ||
		    user_route_key(1, user, job->keys[1], MC_KEY_MAX) == -1) {
			free(job);
			return -1;
		}
	}
	job->cookie = query;
	return mcache_submit(job);
}

/* posternctl show lookup */
void
lookup_ctl_handlers(void (*fn)(const struct ctl_handler *, void *), void *arg)
{
	struct ctl_handler c;
	uint64_t now = wallclock_ms();
	uint32_t h;

	for (h = 0; h < lk.nhandlers; h++) {
		memset(&c, 0, sizeof(c));
		snprintf(c.url, sizeof(c.url), "%s://%s%s",
		    lk.handlers[h].tls ? "https" : "http", lk.handlers[h].host,
		    lk.handlers[h].path);
		c.down = hstate[h].down_until > now;
		c.errors = handler_errors[h];
		fn(&c, arg);
	}
}

static int
cache_usable(void)
{
	return lk.cache_ttl > 0 && mcache_configured() && mcache_available() &&
	    epoch_known;
}

static const char *
key_check(const char *key)
{
	/* the hash's first 16 hex digits, after "postern:r:" */
	return key + strlen(MCKEY_PREFIX) + 2;
}

/* Remember a handler's route for this key. */
static void
cache_store(struct rsession *rs, const struct authhttp_route *rt)
{
	struct mc_job *job;
	int n;

	if (!cache_usable() || rs->lg->cachekey[0] == '\0')
		return;
	job = mcache_job(MC_SET, NULL, NULL);
	/* a field the value cannot hold (a space in the account): not kept */
	if ((n = authhttp_cache_format(job->value, sizeof(job->value),
		 key_check(rs->lg->cachekey), rt)) == -1) {
		free(job);
		return;
	}
	snprintf(job->keys[0], sizeof(job->keys[0]), "%s", rs->lg->cachekey);
	job->nkeys = 1;
	job->ttl = lk.cache_ttl;
	job->valuelen = n;
	(void)mcache_submit(job);
}

struct upstream_match {
	const struct sockaddr_storage *addr;
	uint32_t proto;
	const char *name;
};

static void
upstream_match(const struct upstream_ctx *u, void *arg)
{
	struct upstream_match *m = arg;
	const struct sockaddr_storage *ua;

	if (m->name != NULL || !upstream_has(u, m->proto))
		return;
	ua = upstream_addr(u, m->proto);
	if (sockaddr_same_host(ua, m->addr) &&
	    sockaddr_port(ua) == sockaddr_port(m->addr))
		m->name = u->conf.name;
}

/*
 * The route to one server, rs->lg->uaddr, for rs->lg->account.  An
 * address that is a configured upstream's port for this protocol is
 * kept as that upstream's name, which every protocol can use; any
 * other address serves this protocol only.
 */
void
lookup_cache_store(struct rsession *rs)
{
	struct authhttp_route rt;
	struct upstream_match m = {&rs->lg->uaddr, rs->lg->req.proto, NULL};

	memset(&rt, 0, sizeof(rt));
	route_foreach_upstream(upstream_match, &m);
	if (m.name != NULL && route_pool_by_name(m.name) != NULL) {
		rt.named = 1;
		snprintf(rt.name, sizeof(rt.name), "%s", m.name);
	} else {
		rt.proto = rs->lg->req.proto;
		rt.addr = rs->lg->uaddr;
	}
	snprintf(rt.account, sizeof(rt.account), "%s", rs->lg->account);
	cache_store(rs, &rt);
}

/* The upstream refused a login on a cached route: forget the route. */
void
lookup_forget(struct rsession *rs)
{
	struct mc_job *job;

	if (!cache_usable() || rs->lg->cachekey[0] == '\0')
		return;
	job = mcache_job(MC_DELETE, NULL, NULL);
	snprintf(job->keys[0], sizeof(job->keys[0]), "%s", rs->lg->cachekey);
	job->nkeys = 1;
	(void)mcache_submit(job);
}

/* Does a handler's Auth-Server name a configured upstream or pool? */
static int
name_known(const char *name)
{
	return route_pool_by_name(name) != NULL;
}

/*
 * A cached name serves this protocol if one of its members has a port
 * for it; else the handlers are asked, as for a miss.
 */
static int
name_serves(const char *name, uint32_t proto)
{
	const struct pool_ctx *p;
	uint32_t i;

	if ((p = route_pool_by_name(name)) == NULL)
		return 0;
	for (i = 0; i < p->conf.nmembers; i++)
		if (upstream_has(p->members[i].u, proto))
			return 1;
	return 0;
}

/*
 * A route to a configured upstream or pool, named by a handler or the
 * cache: its members' ports, TLS and PROXY settings, and failover
 * between them, as a static route to it would have.
 */
static void
route_named(struct rsession *rs, const char *name, const char *account,
    enum route_source src)
{
	struct pool_ctx *p;
	struct authhttp_route rt;
	const struct sockaddr_storage *ua;
	uint32_t i;

	if ((p = route_pool_by_name(name)) == NULL) {
		/* the callers asked first; nothing is ever removed */
		rsession_login_done(rs, LOGIN_TEMPFAIL, "no such upstream");
		return;
	}
	if (rs->lg->relooked) {
		/* the server that refused is in it: its refusal stands */
		for (i = 0; i < p->conf.nmembers; i++) {
			if (!upstream_has(p->members[i].u, rs->lg->req.proto))
				continue;
			ua = upstream_addr(p->members[i].u, rs->lg->req.proto);
			if (sockaddr_same_host(ua, &rs->lg->failed_addr) &&
			    sockaddr_port(ua) ==
				sockaddr_port(&rs->lg->failed_addr)) {
				rsession_login_done(rs, LOGIN_FAILED,
				    rs->lg->refusal);
				return;
			}
		}
	}
	log_debug("session %016llx: %s route to %s",
	    (unsigned long long)rs->sid,
	    src == ROUTE_SRC_CACHE ? "cached" : "handler's", name);
	snprintf(rs->lg->account, sizeof(rs->lg->account), "%s", account);
	rs->lg->tried = 0;
	rs->lg->upstream = NULL;
	if (src == ROUTE_SRC_HANDLER) {
		memset(&rt, 0, sizeof(rt));
		rt.named = 1;
		snprintf(rt.name, sizeof(rt.name), "%s", name);
		snprintf(rt.account, sizeof(rt.account), "%s", account);
		cache_store(rs, &rt);
	}
	rsession_connect_pool(rs, p, src);
}

static void
cache_done(struct mc_job *job)
{
	struct rsession *rs = job->arg;
	struct authhttp_route rt;

	rs->lg->mcjob = NULL;
	/* a value this node cannot use is a miss: the handlers decide */
	if (job->ok && job->found &&
	    authhttp_cache_parse(job->value, job->valuelen,
		key_check(rs->lg->cachekey), &rt) == 0 &&
	    strlen(rt.account) < sizeof(rs->lg->account)) {
		if (!rt.named && rt.proto == rs->lg->req.proto) {
			rsession_route_to(rs, &rt.addr, rt.account,
			    ROUTE_SRC_CACHE);
			return;
		}
		if (rt.named && name_serves(rt.name, rs->lg->req.proto)) {
			route_named(rs, rt.name, rt.account, ROUTE_SRC_CACHE);
			return;
		}
	}
	lookup_handlers(rs);
}

/* Cache, then handlers, then the static table. */
void
lookup_route(struct rsession *rs)
{
	struct mc_job *job;

	rs->lg->cachekey[0] = '\0';
	if (lk.cache_ttl > 0 && mcache_configured() &&
	    route_key(rs, rs->lg->cachekey, sizeof(rs->lg->cachekey)) == -1)
		rs->lg->cachekey[0] = '\0';
	if (!rs->lg->relooked && rs->lg->cachekey[0] != '\0' &&
	    cache_usable()) {
		job = mcache_job(MC_GET, cache_done, rs);
		snprintf(job->keys[0], sizeof(job->keys[0]), "%s",
		    rs->lg->cachekey);
		job->nkeys = 1;
		if (mcache_submit(job) == 0) {
			rs->lg->mcjob = job;
			rs->state = R_LOOKUP;
			return;
		}
	}
	lookup_handlers(rs);
}

static void
handler_failed(int h, const char *why)
{
	uint64_t now = wallclock_ms();

	handler_errors[h]++;
	proc_stats.lookup.errors++;
	if (!hstate[h].reported)
		log_warnx("lookup handler %s%s: %s; not asked for %u s",
		    lk.handlers[h].host, lk.handlers[h].path, why, lk.retry_s);
	hstate[h].reported = 1;
	hstate[h].down_until = now + (uint64_t)lk.retry_s * 1000;
}

static void
handler_ok(int h)
{
	if (hstate[h].reported)
		log_info("lookup handler %s%s answers again",
		    lk.handlers[h].host, lk.handlers[h].path);
	hstate[h].reported = 0;
	hstate[h].down_until = 0;
}

/*
 * A handler's answer, or why there is none (why != NULL): the handler's
 * health, then the session, if it is still there.
 */
static void
lookup_answered(struct rsession *rs, int h, const char *why,
    const struct authhttp_reply *r)
{
	if (why != NULL) {
		handler_failed(h, why);
		if (rs != NULL)
			lookup_handlers(rs);
		return;
	}
	handler_ok(h);
	if (rs == NULL)
		return;
	if (r->status == AUTHHTTP_REFUSED) {
		rsession_refused(rs, r->text, r->wait);
		return;
	}
	if (r->named) {
		route_named(rs, r->server_text,
		    r->user[0] ? r->user : rs->lg->req.user, ROUTE_SRC_HANDLER);
		return;
	}
	rsession_route_to(rs, &r->server,
	    r->user[0] ? r->user : rs->lg->req.user, ROUTE_SRC_HANDLER);
}

/* ---- http:// through libevent ---- */

static void
free_connection(evutil_socket_t fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	evhttp_connection_free(arg);
}

static void
lookup_http_done(struct lookup_http *lh)
{
	struct timeval now = {0, 0};

	/* not from inside its own callback */
	event_base_once(lookup_base, -1, EV_TIMEOUT, free_connection, lh->conn,
	    &now);
	if (lh->rs != NULL)
		lh->rs->lg->http = NULL;
	free(lh);
}

static enum authhttp_status
read_reply(struct evhttp_request *req, struct authhttp_reply *r)
{
	struct evkeyvalq *hdrs;
	struct evkeyval *kv;

	authhttp_reply_init(r);
	r->name_known = name_known;
	if (req == NULL || evhttp_request_get_response_code(req) != 200)
		return AUTHHTTP_INVALID;
	hdrs = evhttp_request_get_input_headers(req);
	TAILQ_FOREACH(kv, hdrs, next)
	authhttp_reply_header(r, kv->key, kv->value);
	return authhttp_reply_finish(r);
}

static void
lookup_http_cb(struct evhttp_request *req, void *arg)
{
	struct lookup_http *lh = arg;
	struct rsession *rs = lh->rs;
	struct authhttp_reply r;
	int h = lh->handler;

	if (lh->sending) {
		/*
		 * A connect that failed at once is reported from inside
		 * evhttp_make_request(): send_http() takes it from here.
		 */
		lh->sync_failed = 1;
		return;
	}
	ctl_hist_observe(&proc_stats.lookup, monotonic_us() - lh->started_us);
	lookup_http_done(lh);
	if (read_reply(req, &r) == AUTHHTTP_INVALID) {
		lookup_answered(rs, h,
		    req == NULL || evhttp_request_get_response_code(req) == 0
			? "no answer"
			: "unusable answer",
		    NULL);
		return;
	}
	lookup_answered(rs, h, NULL, &r);
}

/* The request's header fields, for either client. */
struct lookup_fields {
	size_t n;
	const char *name[LOOKUP_MAX_FIELDS];
	const char *value[LOOKUP_MAX_FIELDS];
};

static void
field_add(struct lookup_fields *f, const char *name, const char *value)
{
	if (f->n == LOOKUP_MAX_FIELDS)
		fatalx("lookup: too many request fields");
	f->name[f->n] = name;
	f->value[f->n++] = value;
}

static int
send_http(struct rsession *rs, int h, const struct lookup_fields *f)
{
	const struct conf_lookup_handler *hd = &lk.handlers[h];
	struct lookup_http *lh;
	struct evhttp_request *req;
	struct evkeyvalq *out;
	struct timeval tv;
	char host[64];
	size_t i;

	if ((lh = calloc(1, sizeof(*lh))) == NULL)
		return -1;
	lh->rs = rs;
	lh->handler = h;
	lh->started_us = monotonic_us();
	lh->fd = -1;
	sockaddr_host(&hd->addr, host, sizeof(host));
	lh->conn = evhttp_connection_base_new(lookup_base, NULL, host,
	    sockaddr_port(&hd->addr));
	if (lh->conn == NULL ||
	    (req = evhttp_request_new(lookup_http_cb, lh)) == NULL) {
		if (lh->conn != NULL)
			evhttp_connection_free(lh->conn);
		free(lh);
		return -1;
	}
	evhttp_connection_set_max_headers_size(lh->conn, LOOKUP_MAX_HEADERS);
	evhttp_connection_set_max_body_size(lh->conn, LOOKUP_MAX_BODY);
	tv.tv_sec = lk.timeout_ms / 1000;
	tv.tv_usec = (lk.timeout_ms % 1000) * 1000;
	evhttp_connection_set_timeout_tv(lh->conn, &tv);
	evhttp_connection_set_retries(lh->conn, 0);
	out = evhttp_request_get_output_headers(req);
	for (i = 0; i < f->n; i++)
		if (evhttp_add_header(out, f->name[i], f->value[i]) == -1) {
			evhttp_request_free(req);
			evhttp_connection_free(lh->conn);
			free(lh);
			return -1;
		}
	lh->sending = 1;
	if (evhttp_make_request(lh->conn, req, EVHTTP_REQ_GET, hd->path) ==
	    -1) {
		/* libevent freed the request */
		evhttp_connection_free(lh->conn);
		free(lh);
		return -1;
	}
	lh->sending = 0;
	if (lh->sync_failed) {
		handler_failed(h, "cannot connect");
		lh->rs = NULL;
		lookup_http_done(lh);
		return -1;
	}
	rs->lg->http = lh;
	rs->state = R_LOOKUP;
	return 0;
}

/* ---- https:// : connect, libtls, one request, the answer's head ---- */

/* Every path ends here: events, TLS, socket and buffers all go. */
static void
https_free(struct lookup_http *lh)
{
	if (event_initialized(&lh->ev))
		event_del(&lh->ev);
	if (evtimer_initialized(&lh->timer))
		evtimer_del(&lh->timer);
	if (lh->tls != NULL) {
		(void)tls_close(lh->tls); /* best effort close_notify */
		tls_free(lh->tls);
	}
	if (lh->fd != -1)
		close(lh->fd);
	if (lh->out != NULL) {
		explicit_bzero(lh->out, lh->outlen);
		free(lh->out);
	}
	free(lh->in);
	if (lh->rs != NULL)
		lh->rs->lg->http = NULL;
	free(lh);
}

static void
https_finish(struct lookup_http *lh, const char *why,
    const struct authhttp_reply *r)
{
	struct rsession *rs = lh->rs;
	int h = lh->handler;

	ctl_hist_observe(&proc_stats.lookup, monotonic_us() - lh->started_us);
	https_free(lh);
	lookup_answered(rs, h, why, r);
}

static void https_io(int, short, void *);

static void
https_wait(struct lookup_http *lh, short what)
{
	if (event_initialized(&lh->ev))
		event_del(&lh->ev);
	event_assign(&lh->ev, lookup_base, lh->fd, what, https_io, lh);
	event_add(&lh->ev, NULL);
}

static void
https_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	https_finish(arg, "no answer in time", NULL);
}

/* The head is whole: its status and Auth-* fields make the answer. */
static void
https_answer(struct lookup_http *lh, const struct http_response *resp)
{
	struct authhttp_reply r;
	char why[64];
	size_t i;

	if (resp->status != 200) {
		snprintf(why, sizeof(why), "unusable answer (HTTP status %d)",
		    resp->status);
		https_finish(lh, why, NULL);
		return;
	}
	authhttp_reply_init(&r);
	r.name_known = name_known;
	for (i = 0; i < resp->nfields; i++)
		authhttp_reply_field(&r, resp->fields[i].name,
		    resp->fields[i].namelen, resp->fields[i].value,
		    resp->fields[i].valuelen);
	if (authhttp_reply_finish(&r) == AUTHHTTP_INVALID) {
		https_finish(lh, "unusable answer", NULL);
		return;
	}
	https_finish(lh, NULL, &r);
}

/* Read until the head is whole; the body, if any, is never read. */
static void
https_read(struct lookup_http *lh)
{
	struct http_response resp;
	char why[160];
	ssize_t n;

	for (;;) {
		n = tls_read(lh->tls, lh->in + lh->inlen,
		    LOOKUP_MAX_HEADERS - lh->inlen);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			https_wait(lh,
			    n == TLS_WANT_POLLIN ? EV_READ : EV_WRITE);
			return;
		}
		if (n <= 0) {
			snprintf(why, sizeof(why), "no answer (%s)",
			    n == 0 ? "closed" : tls_error(lh->tls));
			https_finish(lh, why, NULL);
			return;
		}
		lh->inlen += n;
		switch (http_response_parse(lh->in, lh->inlen,
		    LOOKUP_MAX_HEADERS, 0, &resp)) {
		case HTTP_PARSE_OK:
			https_answer(lh, &resp);
			return;
		case HTTP_PARSE_ERROR:
			/* a head longer than LOOKUP_MAX_HEADERS too */
			snprintf(why, sizeof(why), "unusable answer (%s)",
			    resp.reason ? resp.reason : "malformed");
			https_finish(lh, why, NULL);
			return;
		case HTTP_PARSE_INCOMPLETE:
			break;
		}
	}
}

static void
https_io(int fd, short event, void *arg)
{
	struct lookup_http *lh = arg;
	const struct conf_lookup_handler *hd = &lk.handlers[lh->handler];
	char why[160];
	socklen_t len = sizeof(int);
	short want = 0;
	ssize_t n;
	int err = 0;

	(void)fd;
	(void)event;
	switch (lh->state) {
	case HS_CONNECT:
		if (getsockopt(lh->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			snprintf(why, sizeof(why), "cannot connect: %s",
			    strerror(err));
			https_finish(lh, why, NULL);
			return;
		}
		if ((lh->tls = tls_client()) == NULL ||
		    tls_configure(lh->tls, htls[lh->handler].cfg) == -1 ||
		    tls_connect_socket(lh->tls, lh->fd, hd->servername) == -1) {
			snprintf(why, sizeof(why), "TLS: %s",
			    lh->tls ? tls_error(lh->tls) : "tls_client failed");
			https_finish(lh, why, NULL);
			return;
		}
		lh->state = HS_HANDSHAKE;
		/* FALLTHROUGH */
	case HS_HANDSHAKE:
		switch (tlsbridge_handshake_events(lh->tls, lh->fd, &want)) {
		case 0:
			https_wait(lh, want);
			return;
		case -1:
			snprintf(why, sizeof(why), "TLS handshake failed: %s",
			    tls_error(lh->tls));
			https_finish(lh, why, NULL);
			return;
		}
		lh->state = HS_WRITE;
		/* FALLTHROUGH */
	case HS_WRITE:
		while (lh->outoff < lh->outlen) {
			n = tls_write(lh->tls, lh->out + lh->outoff,
			    lh->outlen - lh->outoff);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				https_wait(lh,
				    n == TLS_WANT_POLLIN ? EV_READ : EV_WRITE);
				return;
			}
			if (n < 0) {
				snprintf(why, sizeof(why),
				    "cannot send the request: %s",
				    tls_error(lh->tls));
				https_finish(lh, why, NULL);
				return;
			}
			lh->outoff += n;
		}
		/* it may carry the password */
		explicit_bzero(lh->out, lh->outlen);
		free(lh->out);
		lh->out = NULL;
		if ((lh->in = malloc(LOOKUP_MAX_HEADERS)) == NULL) {
			https_finish(lh, "out of memory", NULL);
			return;
		}
		lh->state = HS_READ;
		/* FALLTHROUGH */
	case HS_READ:
		https_read(lh);
		return;
	}
}

/*
 * "GET path HTTP/1.1", the fields, "Connection: close": a value with a
 * control byte is refused rather than sent.
 */
static char *
https_request(const char *path, const struct lookup_fields *f, size_t *lenp)
{
	static const char close_field[] = "Connection: close\r\n\r\n";
	size_t i, k, len;
	char *buf;
	int n;

	len = strlen("GET  HTTP/1.1\r\n") + strlen(path) + sizeof(close_field);
	for (i = 0; i < f->n; i++) {
		for (k = 0; f->value[i][k] != '\0'; k++)
			if ((unsigned char)f->value[i][k] < 0x20 ||
			    f->value[i][k] == 0x7f)
				return NULL;
		len += strlen(f->name[i]) + strlen(f->value[i]) + 4;
	}
	if ((buf = malloc(len)) == NULL)
		return NULL;
	n = snprintf(buf, len, "GET %s HTTP/1.1\r\n", path);
	for (i = 0; i < f->n; i++)
		n += snprintf(buf + n, len - n, "%s: %s\r\n", f->name[i],
		    f->value[i]);
	n += snprintf(buf + n, len - n, "%s", close_field);
	*lenp = n;
	return buf;
}

static int
send_https(struct rsession *rs, int h, const struct lookup_fields *f)
{
	const struct conf_lookup_handler *hd = &lk.handlers[h];
	struct lookup_http *lh;
	struct timeval tv;
	char why[160];

	if (htls[h].cfg == NULL) {
		handler_failed(h, "no usable CA for TLS");
		return -1;
	}
	if ((lh = calloc(1, sizeof(*lh))) == NULL)
		return -1;
	lh->handler = h;
	lh->fd = -1;
	lh->started_us = monotonic_us();
	if ((lh->out = https_request(hd->path, f, &lh->outlen)) == NULL) {
		https_free(lh);
		return -1;
	}
	lh->fd = socket(hd->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lh->fd == -1 ||
	    (connect(lh->fd, (const struct sockaddr *)&hd->addr,
		 sockaddr_len(&hd->addr)) == -1 &&
		errno != EINPROGRESS)) {
		snprintf(why, sizeof(why), "cannot connect: %s",
		    strerror(errno));
		https_free(lh);
		handler_failed(h, why);
		return -1;
	}
	lh->rs = rs;
	lh->state = HS_CONNECT;
	https_wait(lh, EV_WRITE);
	tv.tv_sec = lk.timeout_ms / 1000;
	tv.tv_usec = (lk.timeout_ms % 1000) * 1000;
	evtimer_assign(&lh->timer, lookup_base, https_timeout, lh);
	evtimer_add(&lh->timer, &tv);
	rs->lg->http = lh;
	rs->state = R_LOOKUP;
	return 0;
}

static int
lookup_send(struct rsession *rs, int h)
{
	const struct conf_lookup_handler *hd = &lk.handlers[h];
	struct lookup_fields f;
	char user[3 * USER_MAX_LEN + 1], pass[3 * PASS_MAX_LEN + 1];
	char client[64], attempt[16], proxy_ip[64];
	int rv;

	pass[0] = '\0';
	sockaddr_host(&rs->lg->req.local, proxy_ip, sizeof(proxy_ip));
	/* the web never has a password to give: Zimbra's placeholder */
	if (rs->lg->auth_method != NULL)
		snprintf(pass, sizeof(pass), "_password_");
	if (authhttp_escape(user, sizeof(user), rs->lg->req.user) == 0 ||
	    (lk.pass_password && rs->lg->req.pass[0] != '\0' &&
		authhttp_escape(pass, sizeof(pass), rs->lg->req.pass) == 0)) {
		explicit_bzero(pass, sizeof(pass));
		return -1;
	}
	snprintf(attempt, sizeof(attempt), "%u",
	    rs->lg->req.attempt ? rs->lg->req.attempt : 1);
	sockaddr_host(&rs->lg->req.client, client, sizeof(client));
	memset(&f, 0, sizeof(f));
	field_add(&f, "Host", hd->host);
	field_add(&f, "Auth-Method",
	    rs->lg->auth_method ? rs->lg->auth_method : "plain");
	field_add(&f, "Auth-User", user);
	if (lk.pass_password || rs->lg->auth_method != NULL)
		field_add(&f, "Auth-Pass", pass);
	field_add(&f, "Auth-Protocol",
	    rs->lg->auth_protocol ? rs->lg->auth_protocol
				  : mail_proto_name(rs->lg->req.proto));
	if (rs->lg->proxy_host != NULL) {
		field_add(&f, "X-Proxy-IP", proxy_ip);
		field_add(&f, "X-Proxy-Host", rs->lg->proxy_host);
	}
	field_add(&f, "Auth-Login-Attempt", attempt);
	field_add(&f, "Client-IP", client);
	field_add(&f, "Client-Host", "[UNAVAILABLE]");
	rv = hd->tls ? send_https(rs, h, &f) : send_http(rs, h, &f);
	explicit_bzero(pass, sizeof(pass));
	return rv;
}

/*
 * The next handler in turn that is neither down nor tried already for
 * this session; none left: the static table, else a temporary failure.
 */
static void
lookup_handlers(struct rsession *rs)
{
	uint64_t now = wallclock_ms();
	uint32_t k, start = handler_rr++;
	int h;

	for (k = 0; k < lk.nhandlers; k++) {
		h = (start + k) % lk.nhandlers;
		if ((rs->lg->handlers_tried & (1u << h)) ||
		    hstate[h].down_until > now)
			continue;
		rs->lg->handlers_tried |= 1u << h;
		if (lookup_send(rs, h) == 0)
			return;
	}
	log_info("session %016llx: no lookup handler answered",
	    (unsigned long long)rs->sid);
	rsession_route_static(rs, "no lookup handler available");
}

void
lookup_cancel(struct rsession *rs)
{
	if (rs->lg->mcjob != NULL) {
		mcache_cancel(rs->lg->mcjob);
		rs->lg->mcjob = NULL;
	}
	if (rs->lg->http != NULL) {
		rs->lg->http->rs = NULL;
		rs->lg->http = NULL;
	}
}
