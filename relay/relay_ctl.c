/*
 * posternctl's questions and commands as relay answers them: the
 * sessions it carries, its pools and lookup handlers, its counters;
 * ending sessions and flushing cached routes.  The parent asks with
 * IMSG_CTL_QUERY and formats what comes back; relay sends records and
 * ends each answer with IMSG_CTL_DONE.
 *
 * A relayed session keeps a small record of who it is (struct rinfo):
 * the login's state, which knew, is freed when bytes start to flow.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "relay.h"

struct rinfo {
	uint64_t start_ms;
	uint32_t proto;
	uint32_t tls;
	uint32_t listener_id;
	const char *upstream;
	const char *servername;
	char user[]; /* then the upstream's name, then the server name */
};

static struct imsgev *ctl_parent;

void
relay_ctl_init(struct imsgev *parent)
{
	ctl_parent = parent;
}

/* The login is done and bytes flow: keep what posternctl shows. */
void
rsession_keep_info(struct rsession *rs)
{
	const struct rlogin *lg = rs->lg;
	const char *up = lg->upstream != NULL ? lg->upstream->conf.name : "";
	size_t ulen = strlen(lg->req.user), uplen = strlen(up);
	size_t snlen = lg->req.tls ? strlen(lg->req.facts.servername) : 0;
	struct rinfo *ri;
	char *p;

	if (rs->info != NULL)
		return;
	if ((ri = malloc(sizeof(*ri) + ulen + uplen + snlen + 3)) == NULL)
		return; /* shown without a name; nothing else depends on it */
	ri->start_ms = lg->req.start_ms ? lg->req.start_ms : wallclock_ms();
	ri->proto = lg->req.proto;
	ri->tls = lg->req.tls;
	ri->listener_id = lg->req.listener_id;
	p = ri->user;
	memcpy(p, lg->req.user, ulen + 1);
	p += ulen + 1;
	ri->upstream = p;
	memcpy(p, up, uplen + 1);
	p += uplen + 1;
	ri->servername = p;
	memcpy(p, lg->req.facts.servername, snlen);
	p[snlen] = '\0';
	rs->info = ri;
}

static void
rsession_bytes(const struct rsession *rs, uint64_t *up, uint64_t *down)
{
	if (rs->bridging && rs->bridge != NULL) {
		/* the network side is the upstream */
		*up = rs->bridge->bytes_out;
		*down = rs->bridge->bytes_in;
	} else {
		/* spliced, or a bridge that has ended and left its counts */
		*up = rs->c2u.bytes;
		*down = rs->u2c.bytes;
	}
}

/* The session is going: its bytes join the totals, its record goes. */
void
rsession_drop_info(struct rsession *rs)
{
	uint64_t up, down;

	if (rs->info == NULL)
		return;
	if (rs->hx == NULL && rs->info->proto < CTL_PROTO_SLOTS) {
		rsession_bytes(rs, &up, &down);
		proc_stats.bytes_up[rs->info->proto] += up;
		proc_stats.bytes_down[rs->info->proto] += down;
	}
	free(rs->info);
	rs->info = NULL;
}

static const char *
rsession_user(const struct rsession *rs)
{
	if (rs->info != NULL)
		return rs->info->user;
	return rs->lg != NULL ? rs->lg->req.user : "";
}

static const struct sockaddr_storage *
rsession_client(const struct rsession *rs)
{
	return rs->lg != NULL ? &rs->lg->req.client : &rs->client;
}

static int
rsession_matches(const struct rsession *rs, const struct ctl_query *q)
{
	switch (q->filter) {
	case CTL_FILTER_USER:
		return strcasecmp(rsession_user(rs), q->user) == 0;
	case CTL_FILTER_CLIENT:
		return sockaddr_same_host(rsession_client(rs), &q->addr);
	default:
		return 1;
	}
}

static void
send_session(uint32_t query, const struct rsession *rs)
{
	struct ctl_session c;

	memset(&c, 0, sizeof(c));
	c.sid = rs->sid;
	c.client = *rsession_client(rs);
	snprintf(c.user, sizeof(c.user), "%s", rsession_user(rs));
	if (rs->info != NULL) {
		c.relaying = 1;
		c.start_ms = rs->info->start_ms;
		c.proto = rs->info->proto;
		c.tls = rs->info->tls;
		c.listener_id = rs->info->listener_id;
		snprintf(c.upstream, sizeof(c.upstream), "%s",
		    rs->info->upstream);
		snprintf(c.servername, sizeof(c.servername), "%s",
		    rs->info->servername);
		rsession_bytes(rs, &c.bytes_up, &c.bytes_down);
	} else {
		/* logging in, or an HTTP exchange under way */
		c.relaying = rs->state == R_RELAYING;
		if (rs->lg->upstream != NULL)
			snprintf(c.upstream, sizeof(c.upstream), "%s",
			    rs->lg->upstream->conf.name);
		c.start_ms = rs->lg->req.start_ms;
		c.proto = rs->lg->req.proto;
		c.tls = rs->lg->req.tls;
		c.listener_id = rs->lg->req.listener_id;
		if (rs->lg->req.tls)
			memcpy(c.servername, rs->lg->req.facts.servername,
			    sizeof(c.servername));
	}
	imsgev_compose(ctl_parent, IMSG_CTL_SESSION, query, -1, &c, sizeof(c));
}

static void
ctl_done(uint32_t query, uint32_t count, uint32_t ok)
{
	struct ctl_done d = {count, ok};

	imsgev_compose(ctl_parent, IMSG_CTL_DONE, query, -1, &d, sizeof(d));
}

/* From lookup.c, once memcached has taken a route flush. */
void
lookup_ctl_done(uint64_t query, int ok, uint32_t count)
{
	ctl_done((uint32_t)query, count, ok ? 1 : 0);
}

static void
show_sessions(uint32_t query, const struct ctl_query *q)
{
	struct rsession *rs;
	uint32_t n = 0;

	TAILQ_FOREACH(rs, relay_sessions(), entry) {
		if ((rs->info == NULL && rs->lg == NULL) ||
		    !rsession_matches(rs, q))
			continue;
		send_session(query, rs);
		n++;
	}
	ctl_done(query, n, 1);
}

static void
show_stats(uint32_t query)
{
	struct ctl_stats st = proc_stats;
	struct rsession *rs;
	uint64_t up, down;

	TAILQ_FOREACH(rs, relay_sessions(), entry) {
		if (rs->info == NULL && rs->lg != NULL &&
		    rs->state == R_RELAYING &&
		    rs->lg->req.proto < CTL_PROTO_SLOTS)
			st.sessions_relayed[rs->lg->req.proto]++;
		if (rs->info == NULL || rs->info->proto >= CTL_PROTO_SLOTS)
			continue;
		st.sessions_relayed[rs->info->proto]++;
		if (rs->hx != NULL)
			continue; /* counted as each exchange ends */
		rsession_bytes(rs, &up, &down);
		st.bytes_up[rs->info->proto] += up;
		st.bytes_down[rs->info->proto] += down;
	}
	imsgev_compose(ctl_parent, IMSG_CTL_STATS, query, -1, &st, sizeof(st));
}

static void
send_member(const struct pool_ctx *p, const struct pool_member *m, void *arg)
{
	struct ctl_upstream u;

	memset(&u, 0, sizeof(u));
	snprintf(u.pool, sizeof(u.pool), "%s", p->conf.name);
	snprintf(u.upstream, sizeof(u.upstream), "%s", m->u->conf.name);
	u.down = m->down_until > wallclock_ms();
	u.fails = m->fails;
	u.connect_failures = m->u->connect_failures;
	imsgev_compose(ctl_parent, IMSG_CTL_UPSTREAM, *(uint32_t *)arg, -1, &u,
	    sizeof(u));
}

static void
send_handler(const struct ctl_handler *h, void *arg)
{
	imsgev_compose(ctl_parent, IMSG_CTL_HANDLER, *(uint32_t *)arg, -1, h,
	    sizeof(*h));
}

/* The audit log says why the session ended, as for a login. */
static void
kick_audit(const struct rsession *rs)
{
	struct audit_record a;
	uint64_t now = wallclock_ms();

	if (rs->info->proto < CTL_PROTO_SLOTS)
		proc_stats.attempts[rs->info->proto][AUDIT_KICKED]++;
	if (!relay_conf.audit)
		return;
	memset(&a, 0, sizeof(a));
	a.time_ms = now;
	a.sid = rs->sid;
	a.duration_ms = now > rs->info->start_ms ? now - rs->info->start_ms : 0;
	a.listener_id = rs->info->listener_id;
	a.proto = rs->info->proto;
	a.result = AUDIT_KICKED;
	a.tls = rs->info->tls;
	a.client = rs->client;
	snprintf(a.user, sizeof(a.user), "%s", rs->info->user);
	snprintf(a.reason, sizeof(a.reason), "ended by posternctl kick");
	snprintf(a.upstream, sizeof(a.upstream), "%s", rs->info->upstream);
	relay_send_audit(&a);
}

/*
 * posternctl kick: relayed mail sessions end at once, both sockets
 * closed.  HTTP exchanges are left to finish: each is one request, and
 * the connection's next one is routed afresh.
 */
static void
kick(uint32_t query, const struct ctl_query *q)
{
	struct rsession *rs, *next;
	uint32_t n = 0;

	for (rs = TAILQ_FIRST(relay_sessions()); rs != NULL; rs = next) {
		next = TAILQ_NEXT(rs, entry);
		if (rs->info == NULL || rs->hx != NULL)
			continue;
		if (q->command == CTL_KICK_SESSION ? rs->sid != q->sid
						   : !rsession_matches(rs, q))
			continue;
		log_info("session %016llx: ended by posternctl kick",
		    (unsigned long long)rs->sid);
		kick_audit(rs);
		rsession_free(rs);
		n++;
	}
	ctl_done(query, n, 1);
}

void
relay_ctl_query(struct imsg *imsg)
{
	const struct ctl_query *q = imsg->data;
	uint32_t query = imsg->hdr.peerid;

	if (!ctl_query_valid(q))
		fatalx("bad control query");
	switch (q->command) {
	case CTL_SHOW_SESSIONS:
		show_sessions(query, q);
		break;
	case CTL_SHOW_STATS:
		/* the metrics want the pools' and handlers' state too */
		show_stats(query);
		route_foreach_member(send_member, &query);
		lookup_ctl_handlers(send_handler, &query);
		ctl_done(query, 0, 1);
		break;
	case CTL_SHOW_UPSTREAMS:
		route_foreach_member(send_member, &query);
		ctl_done(query, 0, 1);
		break;
	case CTL_SHOW_LOOKUP:
		lookup_ctl_handlers(send_handler, &query);
		ctl_done(query, 0, 1);
		break;
	case CTL_KICK_SESSION:
	case CTL_KICK_USER:
		kick(query, q);
		break;
	case CTL_ROUTE_FLUSH_USER:
	case CTL_ROUTE_FLUSH_ALL:
		if (lookup_flush(q->command == CTL_ROUTE_FLUSH_ALL ? NULL
								   : q->user,
			query) == -1)
			ctl_done(query, 0, 0);
		break;
	default:
		ctl_done(query, 0, 0);
	}
}
