/*
 * The static route table (exact user, then domain, then default) and
 * the pools routes lead to.  User names compare case-insensitively, as
 * mail servers treat them.  Every route leads to a pool; a route to a
 * single upstream gets a pool of one that is never marked down.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "relay.h"

#include <tls.h>

static struct upstream_list upstreams = TAILQ_HEAD_INITIALIZER(upstreams);
static struct route_list routes = TAILQ_HEAD_INITIALIZER(routes);
static struct pool_list pools = TAILQ_HEAD_INITIALIZER(pools);

static struct pool_ctx *
pool_find(uint32_t id)
{
	struct pool_ctx *p;

	TAILQ_FOREACH(p, &pools, entry)
	if (p->conf.id == id)
		return p;
	return NULL;
}

int
route_add_pool(const struct conf_pool *conf)
{
	struct pool_ctx *p;
	uint32_t i;

	if (conf->nmembers == 0 || conf->nmembers > POOL_MAX_MEMBERS ||
	    pool_find(conf->id) != NULL)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->conf = *conf;
	for (i = 0; i < conf->nmembers; i++)
		if ((p->members[i].u = route_find_upstream(conf->members[i])) ==
		    NULL) {
			free(p);
			return -1;
		}
	TAILQ_INSERT_TAIL(&pools, p, entry);
	return 0;
}

/* A route straight to an upstream: a pool of one, never marked down. */
static struct pool_ctx *
pool_of_one(struct upstream_ctx *u)
{
	struct pool_ctx *p;

	TAILQ_FOREACH(p, &pools, entry)
	if (p->implicit && p->members[0].u == u)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->implicit = 1;
	p->conf.nmembers = 1;
	p->conf.balance = POOL_ROUND_ROBIN;
	snprintf(p->conf.name, sizeof(p->conf.name), "%s", u->conf.name);
	p->members[0].u = u;
	TAILQ_INSERT_TAIL(&pools, p, entry);
	return p;
}

void
route_foreach_upstream(void (*fn)(const struct upstream_ctx *, void *),
    void *arg)
{
	const struct upstream_ctx *u;

	TAILQ_FOREACH(u, &upstreams, entry)
	fn(u, arg);
}

/* Does relay speak TLS to this upstream for this protocol? */
int
upstream_tls(const struct upstream_ctx *u, enum mail_proto proto)
{
	return u->conf.tls || (proto == PROTO_HTTP && u->conf.https);
}

/* A pool, or an upstream as a pool of one, by its configured id. */
struct pool_ctx *
route_pool_by_id(uint32_t id)
{
	struct upstream_ctx *u;

	if (id == 0)
		return NULL;
	if ((u = route_find_upstream(id)) != NULL)
		return pool_of_one(u);
	return pool_find(id);
}

/*
 * A pool, or an upstream as a pool of one, by its configured name
 * (exact; upstreams and pools share one name space), or NULL.
 */
struct pool_ctx *
route_pool_by_name(const char *name)
{
	struct upstream_ctx *u;
	struct pool_ctx *p;

	if (name[0] == '\0')
		return NULL;
	TAILQ_FOREACH(u, &upstreams, entry)
	if (strcmp(u->conf.name, name) == 0)
		return pool_of_one(u);
	/* an implicit pool carries its upstream's name: found above */
	TAILQ_FOREACH(p, &pools, entry)
	if (!p->implicit && strcmp(p->conf.name, name) == 0)
		return p;
	return NULL;
}

void
route_add_upstream(const struct conf_upstream *conf)
{
	struct upstream_ctx *u;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		fatal("calloc");
	u->conf = *conf;
	TAILQ_INSERT_TAIL(&upstreams, u, entry);
}

int
route_add(const struct conf_route *conf)
{
	struct route_ctx *r;
	struct upstream_ctx *u;
	struct pool_ctx *p;

	if ((u = route_find_upstream(conf->upstream_id)) != NULL)
		p = pool_of_one(u);
	else if ((p = pool_find(conf->upstream_id)) == NULL)
		return -1;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("calloc");
	r->conf = *conf;
	r->pool = p;
	TAILQ_INSERT_TAIL(&routes, r, entry);
	return 0;
}

static const struct route_ctx *
route_match(enum route_kind kind, const char *key)
{
	const struct route_ctx *r;

	TAILQ_FOREACH(r, &routes, entry)
	if (r->conf.kind == kind &&
	    (kind == ROUTE_DEFAULT || strcasecmp(r->conf.match, key) == 0))
		return r;
	return NULL;
}

/* The static table's pool for this user, or NULL. */
struct pool_ctx *
route_lookup(const char *user)
{
	const struct route_ctx *r;
	const char *at;

	r = route_match(ROUTE_USER, user);
	if (r == NULL && (at = strrchr(user, '@')) != NULL)
		r = route_match(ROUTE_DOMAIN, at + 1);
	if (r == NULL)
		r = route_match(ROUTE_DEFAULT, NULL);
	return r != NULL ? r->pool : NULL;
}

static uint32_t
client_hash(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	const unsigned char *b;
	uint32_t h = 2166136261u;
	size_t i, n;

	if (ss->ss_family == AF_INET6) {
		b = sin6->sin6_addr.s6_addr;
		n = 8; /* one client's /64 stays on one server */
	} else {
		b = (const unsigned char *)&sin->sin_addr;
		n = 4;
	}
	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static int
member_usable(const struct pool_ctx *p, int i, uint32_t tried,
    enum mail_proto proto, uint64_t now)
{
	const struct upstream_ctx *u = p->members[i].u;

	if (tried & (1u << i))
		return 0;
	if (!upstream_has(u, proto))
		return 0;
	return p->members[i].down_until <= now;
}

/*
 * The member to try next, skipping those tried already and those marked
 * down.  When every untried member is down, the one whose time is up
 * first gets a try: better a slow answer than none.
 */
int
pool_pick(struct pool_ctx *p, const struct sockaddr_storage *client,
    enum mail_proto proto, uint32_t tried, uint64_t now)
{
	uint32_t n = p->conf.nmembers, start, k;
	int i, best = -1;

	start = p->conf.balance == POOL_CLIENT_IP ? client_hash(client) % n
						  : p->rr++ % n;
	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if (member_usable(p, i, tried, proto, now))
			return i;
	}
	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if (member_usable(p, i, tried, proto, UINT64_MAX) &&
		    (best == -1 ||
			p->members[i].down_until < p->members[best].down_until))
			best = i;
	}
	return best;
}

/* Is any member left that serves the protocol and was not tried? */
int
pool_has_untried(const struct pool_ctx *p, enum mail_proto proto,
    uint32_t tried)
{
	uint32_t i;

	for (i = 0; i < p->conf.nmembers; i++)
		if (member_usable(p, i, tried, proto, UINT64_MAX))
			return 1;
	return 0;
}

void
pool_failed(struct pool_ctx *p, int i, uint64_t now)
{
	struct pool_member *m = &p->members[i];

	m->u->connect_failures++;
	if (p->conf.max_fails == 0)
		return;
	if (++m->fails >= p->conf.max_fails) {
		if (m->down_until <= now)
			log_warnx("pool %s: upstream %s marked down for %u s",
			    p->conf.name, m->u->conf.name,
			    p->conf.fail_timeout);
		m->down_until = now + (uint64_t)p->conf.fail_timeout * 1000;
		m->fails = 0;
	}
}

/* posternctl show upstreams: every member of every pool */
void
route_foreach_member(void (*fn)(const struct pool_ctx *,
			 const struct pool_member *, void *),
    void *arg)
{
	const struct pool_ctx *p;
	uint32_t i;

	TAILQ_FOREACH(p, &pools, entry)
	for (i = 0; i < p->conf.nmembers; i++)
		fn(p, &p->members[i], arg);
}

void
pool_succeeded(struct pool_ctx *p, int i)
{
	p->members[i].fails = 0;
	p->members[i].down_until = 0;
}

/* Where an upstream keeps each protocol's address and its flag. */
static const struct {
	enum mail_proto proto;
	size_t has;
	size_t addr;
} upstream_slots[] = {
    {PROTO_IMAP, offsetof(struct conf_upstream, has_imap),
	offsetof(struct conf_upstream, imap)},
    {PROTO_POP3, offsetof(struct conf_upstream, has_pop3),
	offsetof(struct conf_upstream, pop3)},
    {PROTO_HTTP, offsetof(struct conf_upstream, has_http),
	offsetof(struct conf_upstream, http)},
};

static int
upstream_slot(enum mail_proto proto)
{
	size_t i;

	for (i = 0; i < sizeof(upstream_slots) / sizeof(upstream_slots[0]); i++)
		if (upstream_slots[i].proto == proto)
			return i;
	return -1;
}

int
upstream_has(const struct upstream_ctx *u, enum mail_proto proto)
{
	int i = upstream_slot(proto);

	return i != -1 &&
	    *(const uint32_t *)((const char *)&u->conf + upstream_slots[i].has);
}

const struct sockaddr_storage *
upstream_addr(const struct upstream_ctx *u, enum mail_proto proto)
{
	int i = upstream_slot(proto);

	if (i == -1)
		return NULL;
	return (const struct sockaddr_storage *)((const char *)&u->conf +
	    upstream_slots[i].addr);
}

void
upstream_set_addr(struct upstream_ctx *u, enum mail_proto proto,
    const struct sockaddr_storage *ss)
{
	int i = upstream_slot(proto);

	if (i == -1)
		return;
	memcpy((char *)&u->conf + upstream_slots[i].addr, ss, sizeof(*ss));
	*(uint32_t *)((char *)&u->conf + upstream_slots[i].has) = 1;
}

struct upstream_ctx *
route_find_upstream(uint32_t id)
{
	struct upstream_ctx *u;

	TAILQ_FOREACH(u, &upstreams, entry)
	if (u->conf.id == id)
		return u;
	return NULL;
}

/*
 * Client TLS settings for upstreams that want TLS, made before the
 * sandbox closes: the CA bundle came from the parent in memory, as the
 * chrooted relay cannot read /etc/ssl.
 */
void
route_upstreams_tls(const struct conf_tls_global *g)
{
	struct upstream_ctx *u;
	struct tls_config *cfg;

	TAILQ_FOREACH(u, &upstreams, entry)
	{
		if (!u->conf.tls && !u->conf.https)
			continue;
		if ((cfg = tls_config_new()) == NULL)
			fatalx("tls_config_new failed");
		if (tls_config_set_protocols(cfg, g->protocols) == -1)
			fatalx("upstream %s: %s", u->conf.name,
			    tls_config_error(cfg));
		if (u->conf.noverify) {
			tls_config_insecure_noverifycert(cfg);
			tls_config_insecure_noverifyname(cfg);
		} else if (u->ca == NULL || u->cagot != u->calen ||
		    tls_config_set_ca_mem(cfg, u->ca, u->calen) == -1) {
			/* no CA, no trust: fail the logins, loudly */
			log_warnx("upstream %s: no usable CA; TLS logins there "
				  "will fail",
			    u->conf.name);
			tls_config_free(cfg);
			continue;
		}
		free(u->ca);
		u->ca = NULL;
		u->tlscfg = cfg;
	}
}
