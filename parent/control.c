/*
 * The control socket, posternctl's way in (in the manner of relayd's and
 * smtpd's).  A unix socket that root may use for everything and the
 * configured control group only to look.  Each request is one
 * IMSG_CTL_REQUEST; the parent asks the children that know (IMSG_CTL_QUERY
 * fanned out), gathers their records, and answers in text lines it
 * formats itself, then IMSG_CTL_END with an exit status.  The metrics
 * listener gathers through the same fan-out (control_collect()).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "parent.h"

#define CTL_MAX_CONNS	  32
#define CTL_GROUP_CONNS	  16	 /* of those, the control group's at most */
#define CTL_IDLE_SEC	  60	 /* a connection with nothing to do goes */
#define CTL_OUT_MAX	  150000 /* answer lines queued for one reader */
#define CTL_ANSWER_SEC	  5 /* a child that has not answered by then */
#define CTL_QUERY_ROLES(r) (1u << (r))

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	struct imsgev iev;
	int readonly;
	int closing; /* the answer is queued: close once written */
	int cut;     /* the answer was longer than CTL_OUT_MAX lines */
	uid_t uid;
	pid_t pid;
	struct event idle_ev;
	struct ctl_gather *busy;
};
static TAILQ_HEAD(, ctl_conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static int nconns, ngroupconns;

static TAILQ_HEAD(, ctl_gather) gathers = TAILQ_HEAD_INITIALIZER(gathers);
static uint32_t next_query;

static int control_fd = -1;
static struct event control_ev;
static char control_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static gid_t control_gid;
static int control_has_group;

static void conn_close(struct ctl_conn *);
static void conn_touch(struct ctl_conn *);
static void conn_dispatch(int, short, void *);
static void *append(void *, size_t *, size_t *, const void *, size_t);

/* ---- the socket ---- */

/* The default's directory, /run/postern, may not exist yet. */
static void
socket_dir(const char *path)
{
	char dir[sizeof(control_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", dir);
}

/*
 * Made before the parent daemonises, so that a second postern started
 * by mistake fails at once instead of taking the first one's socket.
 */
int
control_listen(const char *path, const char *group)
{
	struct sockaddr_un sun;
	struct group *gr;
	mode_t old;
	int fd;

	if (path[0] == '\0')
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		path) >= sizeof(sun.sun_path))
		fatalx("control socket path too long: %s", path);
	if (group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL)
			fatalx("control group %s: no such group", group);
		control_gid = gr->gr_gid;
		control_has_group = 1;
	}
	socket_dir(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		 0)) == -1)
		fatal("control socket");
	/* a live socket: another postern answers there */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		fatalx("control socket %s is in use: is postern running?",
		    path);
	close(fd);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		 0)) == -1)
		fatal("control socket");
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("unlink %s", path);
	old = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", path);
	umask(old);
	if (control_has_group &&
	    (chown(path, 0, control_gid) == -1 || chmod(path, 0660) == -1))
		fatal("control socket %s", path);
	if (listen(fd, CTL_MAX_CONNS) == -1)
		fatal("listen %s", path);
	snprintf(control_path, sizeof(control_path), "%s", path);
	control_fd = fd;
	return 0;
}

void
control_cleanup(void)
{
	if (control_fd != -1 && control_path[0] != '\0')
		(void)unlink(control_path);
}

/*
 * Root may do everything; the control group only look.  The group is
 * the peer process's own (SO_PEERGROUPS), not what /etc/group says.
 */
static int
peer_access(int fd, int *readonly, struct ucred *peer)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[256];
	size_t i, ngroups;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return -1;
	*peer = cred;
	*readonly = 0;
	if (cred.uid == 0)
		return 0;
	*readonly = 1;
	if (!control_has_group)
		return -1;
	if (cred.gid == control_gid)
		return 0;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1)
		return -1;
	ngroups = len / sizeof(groups[0]);
	for (i = 0; i < ngroups; i++)
		if (groups[i] == control_gid)
			return 0;
	return -1;
}

static void
conn_text(struct ctl_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
conn_text(struct ctl_conn *c, const char *fmt, ...)
{
	char line[CTL_TEXT_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* a reader that does not read must not fill the parent */
	if (c->iev.ibuf.wqlen >= CTL_OUT_MAX) {
		c->cut = 1;
		return;
	}
	imsgev_compose(&c->iev, IMSG_CTL_TEXT, 0, -1, line, n);
}

/* The answer is complete: the tool exits with status. */
static void
conn_end(struct ctl_conn *c, int status)
{
	struct ctl_end e = {status};

	if (c->cut) {
		c->cut = 0;
		imsgev_compose(&c->iev, IMSG_CTL_TEXT, 0, -1,
		    "posternctl: answer cut short", 28);
	}
	imsgev_compose(&c->iev, IMSG_CTL_END, 0, -1, &e, sizeof(e));
}

/* Refuse, then close: a peer that broke the protocol or may not ask. */
static void
conn_refuse(struct ctl_conn *c, const char *why)
{
	conn_text(c, "posternctl: %s", why);
	conn_end(c, 1);
	c->closing = 1;
}

/* A refused peer goes once its answer is out (or cannot be sent). */
static void
conn_close_when_written(struct ctl_conn *c)
{
	if (imsg_write(&c->iev.ibuf) == -1 || c->iev.ibuf.wqlen == 0) {
		conn_close(c);
		return;
	}
	imsgev_update(&c->iev);
}

static void
conn_idle(int fd, short event, void *arg)
{
	struct ctl_conn *c = arg;

	(void)fd;
	(void)event;
	if (c->busy != NULL) {
		conn_touch(c);
		return;
	}
	conn_close(c);
}

static void
conn_touch(struct ctl_conn *c)
{
	struct timeval tv = {CTL_IDLE_SEC, 0};

	evtimer_add(&c->idle_ev, &tv);
}

static void
control_accept(int fd, short event, void *arg)
{
	struct ctl_conn *c;
	struct ucred peer;
	int cfd, readonly, access;

	(void)event;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control accept");
		return;
	}
	access = peer_access(cfd, &readonly, &peer);
	/* root always finds a place: the group has only part of them */
	if (nconns >= CTL_MAX_CONNS ||
	    (access == 0 && readonly && ngroupconns >= CTL_GROUP_CONNS)) {
		log_warnx("control: too many connections");
		close(cfd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(cfd);
		return;
	}
	imsgev_init(&c->iev, cfd, "control", conn_dispatch, c);
	evtimer_set(&c->idle_ev, conn_idle, c);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	if (access == -1) {
		log_warnx("control: connection refused to a peer that may "
			  "not use it");
		conn_refuse(c, "permission denied");
		conn_close_when_written(c);
		return;
	}
	c->readonly = readonly;
	c->uid = peer.uid;
	c->pid = peer.pid;
	ngroupconns += readonly;
	conn_touch(c);
}

void
control_start(void)
{
	if (control_fd == -1)
		return;
	event_set(&control_ev, control_fd, EV_READ | EV_PERSIST,
	    control_accept, NULL);
	event_add(&control_ev, NULL);
}

/* ---- gathering the children's answers ---- */

/*
 * Each child's last counters, kept so that the sums never go down: a
 * child that does not answer in time counts with what it said before,
 * and one that exits (a crash, or an old generation drained) leaves its
 * counts to the retired total.  Gauges (sessions open) retire as 0.
 */
static struct ctl_stats slot_stats[CTL_MAX_SLOTS];
static uint64_t slot_has_stats[SLOT_WORDS];
static struct ctl_stats retired;

void
control_stats_seen(int slot, const struct ctl_stats *st)
{
	slot_stats[slot] = *st;
	SLOT_SET(slot_has_stats, slot);
}

static void
stats_retire(int slot)
{
	struct ctl_stats *st = &slot_stats[slot];

	if (!SLOT_ISSET(slot_has_stats, slot))
		return;
	memset(st->sessions_preauth, 0, sizeof(st->sessions_preauth));
	memset(st->sessions_relayed, 0, sizeof(st->sessions_relayed));
	ctl_stats_add(&retired, st);
	memset(st, 0, sizeof(*st));
	SLOT_CLR(slot_has_stats, slot);
}

static void
stats_total(struct ctl_stats *sum)
{
	int i;

	*sum = retired;
	for (i = 0; i < CTL_MAX_SLOTS; i++)
		if (SLOT_ISSET(slot_has_stats, i))
			ctl_stats_add(sum, &slot_stats[i]);
}

static void
gather_finish(struct ctl_gather *g)
{
	if (g->query.command == CTL_SHOW_STATS)
		stats_total(&g->stats);
	g->finish(g);
}

/*
 * An address+user pair authproc reset for unblock: it must be the
 * address or the user asked about (authproc cannot widen an unblock),
 * and only address+user failure counts.
 */
static int
gather_forget(struct ctl_gather *g, const struct counter_forget *f)
{
	const struct ctl_query *q = &g->query;
	void *p;

	if (f->kinds != 1u << COUNT_IPUSER_FAIL || f->budget > 1 ||
	    !imsg_string_ok(f->user, sizeof(f->user)) ||
	    !sockaddr_valid(&f->client))
		return -1;
	if (q->command == CTL_UNBLOCK_IP
		? !sockaddr_same_client(&f->client, &q->addr)
		: strcasecmp(f->user, q->user) != 0)
		return -1;
	if (g->nforget >= CTL_MAX_FORGET) {
		g->truncated = 1;
		return 0;
	}
	if ((p = append(g->forget, &g->nforget, &g->capforget, f,
		 sizeof(*f))) != NULL)
		g->forget = p;
	return 0;
}

static void
gather_timeout(int fd, short event, void *arg)
{
	struct ctl_gather *g = arg;

	(void)fd;
	(void)event;
	log_warnx("control: %d children did not answer in %d s", g->waiting,
	    CTL_ANSWER_SEC);
	g->incomplete = 1;
	g->waiting = 0;
	TAILQ_REMOVE(&gathers, g, entry);
	gather_finish(g);
}

/*
 * Ask the children of the given roles; finish() runs once all have
 * answered (or some did not in time).  Returns NULL if none could be
 * asked.
 */
struct ctl_gather *
control_collect(const struct ctl_query *q, uint32_t roles,
    void (*finish)(struct ctl_gather *), void *arg)
{
	struct timeval tv = {CTL_ANSWER_SEC, 0};
	struct ctl_gather *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->id = ++next_query;
	g->query = *q;
	g->finish = finish;
	g->arg = arg;
	g->waiting = children_query(g->id, q, roles, g->asked);
	if (g->waiting == 0) {
		free(g);
		return NULL;
	}
	evtimer_set(&g->timer, gather_timeout, g);
	evtimer_add(&g->timer, &tv);
	TAILQ_INSERT_TAIL(&gathers, g, entry);
	return g;
}

void
control_gather_free(struct ctl_gather *g)
{
	if (g == NULL)
		return;
	evtimer_del(&g->timer);
	free(g->sessions);
	free(g->upstreams);
	free(g->handlers);
	free(g->listeners);
	free(g->forget);
	free(g);
}

static void *
append(void *array, size_t *n, size_t *cap, const void *item, size_t size)
{
	void *p;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		if ((p = reallocarray(array, ncap, size)) == NULL)
			return NULL;
		array = p;
		*cap = ncap;
	}
	memcpy((char *)array + *n * size, item, size);
	(*n)++;
	return array;
}

static int
session_record_ok(const struct ctl_session *s)
{
	return imsg_string_ok(s->user, sizeof(s->user)) &&
	    imsg_string_ok(s->upstream, sizeof(s->upstream)) &&
	    imsg_string_ok(s->servername, sizeof(s->servername)) &&
	    s->proto < CTL_PROTO_SLOTS;
}

/*
 * What each role may answer to each question, and how much of it: a
 * child that says more (a compromised one, say) is treated as breaking
 * the protocol, so it cannot fill or stall the parent.
 */
static int
record_allowed(const struct ctl_gather *g, enum proc_role role,
    uint32_t type)
{
	uint32_t cmd = g->query.command;

	switch (type) {
	case IMSG_CTL_SESSION:
		return cmd == CTL_SHOW_SESSIONS &&
		    (role == PROC_AUTHPROC || role == PROC_RELAY);
	case IMSG_CTL_STATS:
		return cmd == CTL_SHOW_STATS &&
		    (role == PROC_AUTHPROC || role == PROC_RELAY);
	case IMSG_CTL_UPSTREAM:
		return (cmd == CTL_SHOW_STATS || cmd == CTL_SHOW_UPSTREAMS) &&
		    role == PROC_RELAY;
	case IMSG_CTL_HANDLER:
		return (cmd == CTL_SHOW_STATS || cmd == CTL_SHOW_LOOKUP) &&
		    role == PROC_RELAY;
	case IMSG_CTL_LISTENER:
		return cmd == CTL_SHOW_STATS && role == PROC_TLSPROC;
	case IMSG_CTL_FORGET:
		return (cmd == CTL_UNBLOCK_IP || cmd == CTL_UNBLOCK_USER) &&
		    role == PROC_AUTHPROC;
	}
	return 0;
}

static int
gather_session(struct ctl_gather *g, struct imsg *imsg)
{
	void *p;

	if (!session_record_ok(imsg->data))
		return -1;
	if (g->nsessions >= CTL_MAX_SESSIONS) {
		g->truncated = 1;
		return 0;
	}
	if ((p = append(g->sessions, &g->nsessions, &g->capsessions,
		 imsg->data, sizeof(struct ctl_session))) != NULL)
		g->sessions = p;
	return 0;
}

static int
gather_record(struct ctl_gather *g, int slot, enum proc_role role,
    uint32_t instance, struct imsg *imsg)
{
	const struct ctl_upstream *u = imsg->data;
	const struct ctl_handler *h = imsg->data;
	const struct ctl_listener *l = imsg->data;
	struct ctl_upstream_row ur;
	struct ctl_handler_row hr;
	struct ctl_listener_row lr;
	void *p = NULL;

	if (!record_allowed(g, role, imsg->hdr.type))
		return -1;
	/* rows per child: far more than any configuration makes */
	if (++g->rows[slot] > CTL_MAX_ROWS && imsg->hdr.type != IMSG_CTL_SESSION)
		return -1;
	switch (imsg->hdr.type) {
	case IMSG_CTL_STATS:
		if (SLOT_ISSET(g->got_stats, slot))
			return -1;
		SLOT_SET(g->got_stats, slot);
		control_stats_seen(slot, imsg->data);
		return 0;
	case IMSG_CTL_SESSION:
		return gather_session(g, imsg);
	case IMSG_CTL_FORGET:
		return gather_forget(g, imsg->data);
	case IMSG_CTL_UPSTREAM:
		if (!imsg_string_ok(u->pool, sizeof(u->pool)) ||
		    !imsg_string_ok(u->upstream, sizeof(u->upstream)))
			return -1;
		ur.relay = instance;
		ur.slot = slot;
		ur.u = *u;
		p = append(g->upstreams, &g->nupstreams, &g->capupstreams, &ur,
		    sizeof(ur));
		if (p != NULL)
			g->upstreams = p;
		return 0;
	case IMSG_CTL_HANDLER:
		if (!imsg_string_ok(h->url, sizeof(h->url)))
			return -1;
		hr.relay = instance;
		hr.h = *h;
		p = append(g->handlers, &g->nhandlers, &g->caphandlers, &hr,
		    sizeof(hr));
		if (p != NULL)
			g->handlers = p;
		return 0;
	case IMSG_CTL_LISTENER:
		/* named now, by the configuration that child runs */
		memset(&lr, 0, sizeof(lr));
		snprintf(lr.name, sizeof(lr.name), "%s",
		    child_listener_name(slot, l->listener_id));
		lr.handshakes = l->handshakes;
		lr.failures = l->failures;
		p = append(g->listeners, &g->nlisteners, &g->caplisteners, &lr,
		    sizeof(lr));
		if (p != NULL)
			g->listeners = p;
		return 0;
	}
	return -1;
}

/*
 * One record or end of answer from a child (slot: its index among the
 * parent's children).  -1: the child said something it was not asked.
 */
int
control_child_answer(int slot, enum proc_role role, uint32_t instance,
    struct imsg *imsg)
{
	const struct ctl_done *d = imsg->data;
	struct ctl_gather *g;

	TAILQ_FOREACH(g, &gathers, entry)
	if (g->id == imsg->hdr.peerid)
		break;
	if (g == NULL) {
		/* a late answer to a query given up on is no offence */
		return imsg->hdr.peerid <= next_query ? 0 : -1;
	}
	if (slot < 0 || slot >= CTL_MAX_SLOTS || !SLOT_ISSET(g->asked, slot))
		return -1;
	if (imsg->hdr.type != IMSG_CTL_DONE)
		return gather_record(g, slot, role, instance, imsg);
	SLOT_CLR(g->asked, slot);
	g->count += d->count;
	if (!d->ok)
		g->failed = 1;
	if (--g->waiting > 0)
		return 0;
	evtimer_del(&g->timer);
	TAILQ_REMOVE(&gathers, g, entry);
	gather_finish(g);
	return 0;
}

/* A child died: what it was asked will not be answered. */
void
control_child_gone(int slot)
{
	struct ctl_gather *g, *next;

	stats_retire(slot);
	for (g = TAILQ_FIRST(&gathers); g != NULL; g = next) {
		next = TAILQ_NEXT(g, entry);
		if (!SLOT_ISSET(g->asked, slot))
			continue;
		SLOT_CLR(g->asked, slot);
		g->incomplete = 1;
		if (--g->waiting > 0)
			continue;
		evtimer_del(&g->timer);
		TAILQ_REMOVE(&gathers, g, entry);
		gather_finish(g);
	}
}

/* ---- the commands ---- */

static const char *
proto_label(uint32_t proto)
{
	return proto >= PROTO_IMAP && proto <= PROTO_HTTP
	    ? mail_proto_name(proto)
	    : "-";
}

/* What came from a client is shown escaped, never raw. */
static const char *
shown(const char *s, char *buf, size_t bufsz)
{
	if (s[0] == '\0')
		return "-";
	log_escape(buf, bufsz, s, strlen(s));
	return buf;
}

static void
print_sessions(struct ctl_conn *c, struct ctl_gather *g)
{
	char user[256], up[128], sn[256], addr[128], tls[300];
	uint64_t now = wallclock_ms();
	const struct ctl_session *s;
	size_t i;

	conn_text(c, "%-16s %-5s %-8s %-24s %-22s %-12s %-20s %8s %12s %12s",
	    "ID", "PROTO", "STATE", "USER", "CLIENT", "UPSTREAM", "TLS", "AGE",
	    "BYTES-UP", "BYTES-DOWN");
	for (i = 0; i < g->nsessions; i++) {
		s = &g->sessions[i];
		if (!s->tls)
			snprintf(tls, sizeof(tls), "-");
		else
			snprintf(tls, sizeof(tls), "tls%s%s",
			    s->servername[0] ? ":" : "",
			    s->servername[0]
				? shown(s->servername, sn, sizeof(sn))
				: "");
		conn_text(c,
		    "%016llx %-5s %-8s %-24s %-22s %-12s %-20s %7llus %12llu "
		    "%12llu",
		    (unsigned long long)s->sid, proto_label(s->proto),
		    s->relaying ? "relaying" : "pre-auth",
		    shown(s->user, user, sizeof(user)),
		    sockaddr_str(&s->client, addr, sizeof(addr)),
		    shown(s->upstream, up, sizeof(up)), tls,
		    (unsigned long long)(now > s->start_ms && s->start_ms
			    ? (now - s->start_ms) / 1000
			    : 0),
		    (unsigned long long)s->bytes_up,
		    (unsigned long long)s->bytes_down);
	}
}

static void
print_stats(struct ctl_conn *c, struct ctl_gather *g)
{
	const struct ctl_stats *st = &g->stats;
	static const char *limits[CTL_LIMIT_MAX] = {"ip", "user",
	    "connections-per-ip", "attempts", "http-requests"};
	uint32_t p, r;
	size_t i;

	for (p = PROTO_IMAP; p <= PROTO_HTTP; p++) {
		conn_text(c, "sessions %s pre-auth %llu relaying %llu",
		    mail_proto_name(p),
		    (unsigned long long)st->sessions_preauth[p],
		    (unsigned long long)st->sessions_relayed[p]);
		for (r = AUDIT_OK; r < AUDIT_RESULT_MAX; r++)
			if (st->attempts[p][r] > 0)
				conn_text(c, "attempts %s %s %llu",
				    mail_proto_name(p), audit_result_name(r),
				    (unsigned long long)st->attempts[p][r]);
		conn_text(c, "bytes %s up %llu down %llu", mail_proto_name(p),
		    (unsigned long long)st->bytes_up[p],
		    (unsigned long long)st->bytes_down[p]);
	}
	conn_text(c, "http requests %llu",
	    (unsigned long long)st->http_requests);
	for (r = 0; r < CTL_LIMIT_MAX; r++)
		conn_text(c, "throttled %s %llu", limits[r],
		    (unsigned long long)st->throttled[r]);
	for (i = 0; i < g->nlisteners; i++)
		conn_text(c, "tls %s handshakes %llu failures %llu",
		    g->listeners[i].name,
		    (unsigned long long)g->listeners[i].handshakes,
		    (unsigned long long)g->listeners[i].failures);
	for (r = PROC_AUTHPROC; r < PROC_MAX; r++)
		conn_text(c, "restarts %s %llu", proc_role_name(r),
		    (unsigned long long)parent_restarts(r));
}

static void
print_upstreams(struct ctl_conn *c, struct ctl_gather *g)
{
	const struct ctl_upstream_row *u;
	char pool[128], up[128];
	size_t i;

	for (i = 0; i < g->nupstreams; i++) {
		u = &g->upstreams[i];
		conn_text(c,
		    "relay %u pool %s upstream %s %s fails %u "
		    "connect-failures %llu",
		    u->relay, shown(u->u.pool, pool, sizeof(pool)),
		    shown(u->u.upstream, up, sizeof(up)),
		    u->u.down ? "down" : "up", u->u.fails,
		    (unsigned long long)u->u.connect_failures);
	}
}

static void
print_handlers(struct ctl_conn *c, struct ctl_gather *g)
{
	const struct ctl_handler_row *h;
	char url[1300];
	size_t i;

	if (g->nhandlers == 0)
		conn_text(c, "no lookup handlers: routes come from the "
			     "configuration");
	for (i = 0; i < g->nhandlers; i++) {
		h = &g->handlers[i];
		conn_text(c, "relay %u handler %s %s errors %llu", h->relay,
		    shown(h->h.url, url, sizeof(url)),
		    h->h.down ? "down" : "up",
		    (unsigned long long)h->h.errors);
	}
}

/*
 * With shared counters, one relay deletes the memcached keys: the
 * address's or user's own, and each address+user pair authproc reset.
 * A pair only other nodes counted stays until its window passes.
 */
static void
unblock_shared(struct ctl_conn *c, const struct ctl_gather *g)
{
	struct counter_forget f;
	size_t i, sent = 0;
	int budget;

	memset(&f, 0, sizeof(f));
	if (g->query.command == CTL_UNBLOCK_IP) {
		f.kinds = 1u << COUNT_IP | 1u << COUNT_IP_FAIL;
		f.client = g->query.addr;
		sent += children_forget(&f) == 0;
	} else
		for (budget = POLICY_BUDGET_MAIL; budget <= POLICY_BUDGET_WEB;
		     budget++) {
			f.kinds = 1u << COUNT_USER;
			f.budget = budget;
			memcpy(f.user, g->query.user, sizeof(f.user));
			sent += children_forget(&f) == 0;
		}
	for (i = 0; i < g->nforget; i++)
		sent += children_forget(&g->forget[i]) == 0;
	conn_text(c, "%zu shared counter set%s sent to memcached for deletion",
	    sent, sent == 1 ? "" : "s");
	if (sent == 0)
		conn_text(c, "posternctl: no relay to reach memcached");
}

static void
command_finish(struct ctl_gather *g)
{
	struct ctl_conn *c = g->arg;
	char arg[USER_MAX_LEN * 4 + 1];
	int status = g->failed || g->incomplete;

	c->busy = NULL;
	log_escape(arg, sizeof(arg), g->query.user, strlen(g->query.user));
	switch (g->query.command) {
	case CTL_SHOW_SESSIONS:
		print_sessions(c, g);
		status = g->incomplete;
		break;
	case CTL_SHOW_STATS:
		print_stats(c, g);
		break;
	case CTL_SHOW_UPSTREAMS:
		print_upstreams(c, g);
		break;
	case CTL_SHOW_LOOKUP:
		print_handlers(c, g);
		break;
	case CTL_KICK_SESSION:
	case CTL_KICK_USER:
		conn_text(c, "%u session%s ended", g->count,
		    g->count == 1 ? "" : "s");
		if (g->count == 0)
			status = 1;
		break;
	case CTL_ROUTE_FLUSH_USER:
	case CTL_ROUTE_FLUSH_ALL:
		if (g->failed)
			conn_text(c, "no route cache: memcached and a cache "
				     "lifetime are not both configured, or "
				     "memcached did not answer");
		else if (g->query.command == CTL_ROUTE_FLUSH_ALL)
			conn_text(c, "every cached route forgotten");
		else
			conn_text(c, "cached route of %s forgotten", arg);
		break;
	case CTL_UNBLOCK_IP:
	case CTL_UNBLOCK_USER:
		conn_text(c, "%u counter%s reset on this node", g->count,
		    g->count == 1 ? "" : "s");
		if (parent_counters_shared())
			unblock_shared(c, g);
		break;
	}
	if (g->truncated)
		conn_text(c, "posternctl: more than could be shown or done");
	if (g->incomplete)
		conn_text(c, "posternctl: some processes did not answer");
	conn_end(c, status);
	control_gather_free(g);
}

static uint32_t
command_roles(uint32_t command)
{
	switch (command) {
	case CTL_SHOW_SESSIONS:
		return CTL_QUERY_ROLES(PROC_AUTHPROC) |
		    CTL_QUERY_ROLES(PROC_RELAY);
	case CTL_SHOW_STATS:
		return CTL_QUERY_ROLES(PROC_AUTHPROC) |
		    CTL_QUERY_ROLES(PROC_RELAY) | CTL_QUERY_ROLES(PROC_TLSPROC);
	case CTL_UNBLOCK_IP:
	case CTL_UNBLOCK_USER:
		return CTL_QUERY_ROLES(PROC_AUTHPROC);
	case CTL_ROUTE_FLUSH_USER:
	case CTL_ROUTE_FLUSH_ALL:
		/* memcached is one store: one relay is enough */
		return CTL_QUERY_ROLES(PROC_RELAY) | CTL_ONE_CHILD;
	default:
		return CTL_QUERY_ROLES(PROC_RELAY);
	}
}

static int
parse_address(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* A request's argument as the children take it. */
static int
make_query(const struct ctl_request *r, struct ctl_query *q)
{
	char *end;

	memset(q, 0, sizeof(*q));
	q->command = r->command;
	q->filter = r->filter;
	switch (r->command) {
	case CTL_KICK_SESSION:
		/* exactly the 16 hex digits the logs show */
		if (strlen(r->arg) != 16 ||
		    strspn(r->arg, "0123456789abcdefABCDEF") != 16)
			return -1;
		q->sid = strtoull(r->arg, &end, 16);
		return 0;
	case CTL_KICK_USER:
		q->filter = CTL_FILTER_USER;
		/* FALLTHROUGH */
	case CTL_ROUTE_FLUSH_USER:
	case CTL_UNBLOCK_USER:
		snprintf(q->user, sizeof(q->user), "%s", r->arg);
		return 0;
	case CTL_UNBLOCK_IP:
		return parse_address(r->arg, &q->addr);
	case CTL_SHOW_SESSIONS:
		if (r->filter == CTL_FILTER_CLIENT)
			return parse_address(r->arg, &q->addr);
		snprintf(q->user, sizeof(q->user), "%s", r->arg);
		return 0;
	default:
		return 0;
	}
}

static int
command_changes(uint32_t command)
{
	return command != CTL_SHOW_SESSIONS && command != CTL_SHOW_STATS &&
	    command != CTL_SHOW_UPSTREAMS && command != CTL_SHOW_LOOKUP;
}

static void
conn_request(struct ctl_conn *c, const struct ctl_request *r)
{
	struct ctl_query q;
	char err[128];
	int status;

	if (!ctl_request_valid(r, err, sizeof(err))) {
		conn_refuse(c, err);
		return;
	}
	/* the last answer must be gone (read) before the next question */
	if (c->busy != NULL || c->iev.ibuf.wqlen > 0) {
		conn_refuse(c, "one request at a time");
		return;
	}
	conn_touch(c);
	if (command_changes(r->command))
		log_info("control: uid %u pid %d: command %u %s%s",
		    (unsigned)c->uid, (int)c->pid, r->command,
		    r->arg[0] != '\0' ? "on " : "",
		    r->arg[0] != '\0' ? r->arg : "");
	if (c->readonly && command_changes(r->command)) {
		conn_text(c, "posternctl: permission denied: the control "
			     "group may only show");
		conn_end(c, 1);
		return;
	}
	switch (r->command) {
	case CTL_LOG_REOPEN:
		log_info("control: reopening the audit and access logs");
		parent_logs_reopen();
		conn_text(c, "logs reopened");
		conn_end(c, 0);
		return;
	case CTL_RELOAD:
		status = parent_reload(conn_text_line, c);
		conn_end(c, status);
		return;
	}
	if (make_query(r, &q) == -1) {
		conn_text(c, "posternctl: bad argument");
		conn_end(c, 1);
		return;
	}
	if ((c->busy = control_collect(&q, command_roles(r->command),
		 command_finish, c)) == NULL) {
		conn_text(c, "posternctl: no process to ask is running");
		conn_end(c, 1);
	}
}

/* For parent_reload(): one line of its answer. */
void
conn_text_line(void *arg, const char *line)
{
	conn_text(arg, "%s", line);
}

static void
conn_close(struct ctl_conn *c)
{
	struct ctl_gather *g;

	/* an answer still being gathered has nowhere to go */
	if ((g = c->busy) != NULL) {
		TAILQ_REMOVE(&gathers, g, entry);
		control_gather_free(g);
	}
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	ngroupconns -= c->readonly;
	evtimer_del(&c->idle_ev);
	imsgev_clear(&c->iev);
	free(c);
}

static void
conn_dispatch(int fd, short event, void *arg)
{
	struct imsgev *iev = arg;
	struct ctl_conn *c = iev->data;
	struct imsg imsg;
	char err[128];
	ssize_t n;

	(void)fd;
	if (imsgev_dispatch_io(&c->iev, event) == -1) {
		conn_close(c);
		return;
	}
	if (c->closing) {
		conn_close_when_written(c);
		return;
	}
	while ((n = imsg_get(&c->iev.ibuf, &imsg)) > 0) {
		if (imsg_check(control_rules, control_nrules, &imsg, err,
			sizeof(err)) == -1)
			conn_refuse(c, err);
		else
			conn_request(c, imsg.data);
		imsg_free(&imsg);
		if (c->closing)
			break;
	}
	if (n == -1)
		conn_refuse(c, "malformed message");
	if (c->closing)
		conn_close_when_written(c);
}
