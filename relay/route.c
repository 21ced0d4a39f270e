/*
 * The static route table: exact user, then domain, then default.
 * User names compare case-insensitively, as mail servers treat them.
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

	TAILQ_FOREACH(u, &upstreams, entry)
	if (u->conf.id == conf->upstream_id)
		break;
	if (u == NULL)
		return -1;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("calloc");
	r->conf = *conf;
	r->upstream = u;
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

const struct upstream_ctx *
route_lookup(const char *user, enum mail_proto proto,
    struct sockaddr_storage *addr)
{
	const struct route_ctx *r;
	const char *at;

	r = route_match(ROUTE_USER, user);
	if (r == NULL && (at = strrchr(user, '@')) != NULL)
		r = route_match(ROUTE_DOMAIN, at + 1);
	if (r == NULL)
		r = route_match(ROUTE_DEFAULT, NULL);
	if (r == NULL)
		return NULL;
	if (proto == PROTO_IMAP && r->upstream->conf.has_imap)
		*addr = r->upstream->conf.imap;
	else if (proto == PROTO_POP3 && r->upstream->conf.has_pop3)
		*addr = r->upstream->conf.pop3;
	else
		return NULL;
	return r->upstream;
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
		if (!u->conf.tls)
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
