/*
 * Where a user's mailbox lives, when lookup handlers are configured:
 * first the route cache in memcached, then the HTTP handlers (nginx
 * auth_http, round robin, each request bounded by a time-out, a failing
 * handler left alone for a while), then the static table.  Whatever a
 * handler or the cache names must lie inside the configured upstream
 * networks, or relay will not connect there.
 *
 * A cached route is "1 <key check> <address> <port> <account>": the key
 * check (the first 16 hex digits of the key's hash) ties the value to
 * the request, so a reply meant for another key is never used.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "authhttp.h"
#include "log.h"
#include "mcache.h"
#include "relay.h"

struct lookup_http {
	struct rsession *rs; /* NULL once the session has gone */
	struct evhttp_connection *conn;
	int handler;
	int sending;	 /* inside evhttp_make_request() */
	int sync_failed; /* libevent failed it from there */
};

/* A handler answers in headers; nothing large is ever expected. */
#define LOOKUP_MAX_HEADERS 16384
#define LOOKUP_MAX_BODY	   4096

struct handler_state {
	uint64_t down_until; /* ms */
	int reported;
};

static struct conf_lookup lk;
static struct handler_state hstate[LOOKUP_MAX_HANDLERS];
static uint32_t handler_rr;
static struct event_base *lookup_base;

static void lookup_handlers(struct rsession *);

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

/* The cache key: protocol and lower-cased user, hashed. */
static int
route_key(const struct rsession *rs, char *key, size_t keysz)
{
	unsigned char raw[1 + USER_MAX_LEN];
	size_t i, len = 0;

	/* an account id and a name never share a key */
	raw[len++] =
	    rs->lg->req.proto | (rs->lg->req.mech == MECH_ID ? 0x80 : 0);
	for (i = 0; rs->lg->req.user[i] != '\0' && i < USER_MAX_LEN; i++)
		raw[len++] = tolower((unsigned char)rs->lg->req.user[i]);
	return mckey_derive(key, keysz, 'r', raw, len);
}

static int
cache_usable(void)
{
	return lk.cache_ttl > 0 && mcache_configured() && mcache_available();
}

static const char *
key_check(const char *key)
{
	/* the hash's first 16 hex digits, after "postern:r:" */
	return key + strlen(MCKEY_PREFIX) + 2;
}

void
lookup_cache_store(struct rsession *rs)
{
	struct mc_job *job;
	char host[64];
	int n;

	/* the value is space-separated: such an account is not cached */
	if (!cache_usable() || rs->lg->cachekey[0] == '\0' ||
	    rs->lg->account[strcspn(rs->lg->account, " \t\r\n")] != '\0')
		return;
	job = mcache_job(MC_SET, NULL, NULL);
	snprintf(job->keys[0], sizeof(job->keys[0]), "%s", rs->lg->cachekey);
	job->nkeys = 1;
	job->ttl = lk.cache_ttl;
	n = snprintf(job->value, sizeof(job->value), "1 %.16s %s %u %s",
	    key_check(rs->lg->cachekey),
	    sockaddr_host(&rs->lg->uaddr, host, sizeof(host)),
	    sockaddr_port(&rs->lg->uaddr), rs->lg->account);
	if (n < 0 || (size_t)n >= sizeof(job->value)) {
		free(job);
		return;
	}
	job->valuelen = n;
	(void)mcache_submit(job);
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

/* "1 <check> <address> <port> <account>", checked field by field. */
static int
cache_parse(const struct rsession *rs, const char *v,
    struct sockaddr_storage *ss, char *account, size_t accountsz)
{
	char check[17], host[64], acct[USER_MAX_LEN + 1];
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	unsigned int port;

	if (sscanf(v, "1 %16s %63s %u %255s", check, host, &port, acct) != 4 ||
	    strncmp(check, key_check(rs->lg->cachekey), 16) != 0 || port == 0 ||
	    port > 65535 || strlen(acct) >= accountsz)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	} else
		return -1;
	snprintf(account, accountsz, "%s", acct);
	return 0;
}

static void
cache_done(struct mc_job *job)
{
	struct rsession *rs = job->arg;
	struct sockaddr_storage ss;
	char account[USER_MAX_LEN + 1];

	rs->lg->mcjob = NULL;
	if (job->ok && job->found &&
	    cache_parse(rs, job->value, &ss, account, sizeof(account)) == 0) {
		rsession_route_to(rs, &ss, account, ROUTE_SRC_CACHE);
		return;
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
		 * evhttp_make_request(): lookup_send() takes it from here.
		 */
		lh->sync_failed = 1;
		return;
	}
	lookup_http_done(lh);
	if (read_reply(req, &r) == AUTHHTTP_INVALID) {
		handler_failed(h,
		    req == NULL || evhttp_request_get_response_code(req) == 0
			? "no answer"
			: "unusable answer");
		if (rs != NULL)
			lookup_handlers(rs);
		return;
	}
	handler_ok(h);
	if (rs == NULL)
		return;
	if (r.status == AUTHHTTP_REFUSED) {
		rsession_refused(rs, r.text, r.wait);
		return;
	}
	rsession_route_to(rs, &r.server, r.user[0] ? r.user : rs->lg->req.user,
	    ROUTE_SRC_HANDLER);
}

static int
lookup_send(struct rsession *rs, int h)
{
	const struct conf_lookup_handler *hd = &lk.handlers[h];
	struct lookup_http *lh;
	struct evhttp_request *req;
	struct evkeyvalq *out;
	struct timeval tv;
	char host[64], user[3 * USER_MAX_LEN + 1], pass[3 * PASS_MAX_LEN + 1];
	char client[64], attempt[16], proxy_ip[64];

	pass[0] = '\0';
	sockaddr_host(&rs->lg->req.local, proxy_ip, sizeof(proxy_ip));
	/* the web never has a password to give: Zimbra's placeholder */
	if (rs->lg->auth_method != NULL)
		snprintf(pass, sizeof(pass), "_password_");
	if (authhttp_escape(user, sizeof(user), rs->lg->req.user) == 0 ||
	    (lk.pass_password && rs->lg->req.pass[0] != '\0' &&
		authhttp_escape(pass, sizeof(pass), rs->lg->req.pass) == 0) ||
	    (lh = calloc(1, sizeof(*lh))) == NULL) {
		explicit_bzero(pass, sizeof(pass));
		return -1;
	}
	lh->rs = rs;
	lh->handler = h;
	sockaddr_host(&hd->addr, host, sizeof(host));
	lh->conn = evhttp_connection_base_new(lookup_base, NULL, host,
	    sockaddr_port(&hd->addr));
	if (lh->conn == NULL ||
	    (req = evhttp_request_new(lookup_http_cb, lh)) == NULL) {
		if (lh->conn != NULL)
			evhttp_connection_free(lh->conn);
		free(lh);
		explicit_bzero(pass, sizeof(pass));
		return -1;
	}
	evhttp_connection_set_max_headers_size(lh->conn, LOOKUP_MAX_HEADERS);
	evhttp_connection_set_max_body_size(lh->conn, LOOKUP_MAX_BODY);
	tv.tv_sec = lk.timeout_ms / 1000;
	tv.tv_usec = (lk.timeout_ms % 1000) * 1000;
	evhttp_connection_set_timeout_tv(lh->conn, &tv);
	evhttp_connection_set_retries(lh->conn, 0);
	out = evhttp_request_get_output_headers(req);
	snprintf(attempt, sizeof(attempt), "%u",
	    rs->lg->req.attempt ? rs->lg->req.attempt : 1);
	sockaddr_host(&rs->lg->req.client, client, sizeof(client));
	if (evhttp_add_header(out, "Host", hd->host) == -1 ||
	    evhttp_add_header(out, "Auth-Method",
		rs->lg->auth_method ? rs->lg->auth_method : "plain") == -1 ||
	    evhttp_add_header(out, "Auth-User", user) == -1 ||
	    ((lk.pass_password || rs->lg->auth_method != NULL) &&
		evhttp_add_header(out, "Auth-Pass", pass) == -1) ||
	    evhttp_add_header(out, "Auth-Protocol",
		rs->lg->auth_protocol
		    ? rs->lg->auth_protocol
		    : mail_proto_name(rs->lg->req.proto)) == -1 ||
	    (rs->lg->proxy_host != NULL &&
		(evhttp_add_header(out, "X-Proxy-IP", proxy_ip) == -1 ||
		    evhttp_add_header(out, "X-Proxy-Host",
			rs->lg->proxy_host) == -1)) ||
	    evhttp_add_header(out, "Auth-Login-Attempt", attempt) == -1 ||
	    evhttp_add_header(out, "Client-IP", client) == -1 ||
	    evhttp_add_header(out, "Client-Host", "[UNAVAILABLE]") == -1) {
		evhttp_request_free(req);
		evhttp_connection_free(lh->conn);
		free(lh);
		explicit_bzero(pass, sizeof(pass));
		return -1;
	}
	explicit_bzero(pass, sizeof(pass));
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
