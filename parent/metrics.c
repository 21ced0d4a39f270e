/*
 * Prometheus metrics (`metrics listen on ADDR port N`): the text
 * exposition format, version 0.0.4, which OpenMetrics scrapers accept.
 *
 * The parent serves it: the numbers come from every child and carry
 * names (upstreams, listeners) that authproc, the process that parses
 * clients' HTTP, must not hold.  What the parent reads from a scraper is
 * bounded (METRICS_REQUEST_MAX) and only compared with fixed request
 * lines; nothing in it is parsed further.  Gathering is asynchronous
 * (the same fan-out as posternctl show stats), so a scrape never holds
 * up the parent's loop or any data path.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "parent.h"

#define METRICS_TIMEOUT_SEC 10
#define METRICS_MAX_CONNS   16

struct mconn {
	TAILQ_ENTRY(mconn) entry;
	int fd;
	struct event ev;
	struct event timer;
	char req[METRICS_REQUEST_MAX];
	size_t reqlen;
	struct evbuffer *out;
	struct ctl_gather *gather;
};
static TAILQ_HEAD(, mconn) mconns = TAILQ_HEAD_INITIALIZER(mconns);
static int nmconns;
static int metrics_fd = -1;
static struct event metrics_ev;

static void mconn_write(int, short, void *);

int
metrics_listen(const struct sockaddr_storage *ss)
{
	int fd, on = 1;

	if ((fd = socket(ss->ss_family,
		 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fatal("metrics socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		fatal("metrics setsockopt");
	if (bind(fd, (const struct sockaddr *)ss, sockaddr_len(ss)) == -1) {
		char addr[128];

		fatal("metrics listener %s",
		    sockaddr_str(ss, addr, sizeof(addr)));
	}
	if (listen(fd, METRICS_MAX_CONNS) == -1)
		fatal("metrics listen");
	metrics_fd = fd;
	return 0;
}

static void
mconn_free(struct mconn *m)
{
	if (m->gather != NULL) {
		/* still gathering: its answer will find no one */
		m->gather->arg = NULL;
		m->gather = NULL;
	}
	event_del(&m->ev);
	evtimer_del(&m->timer);
	if (m->out != NULL)
		evbuffer_free(m->out);
	close(m->fd);
	TAILQ_REMOVE(&mconns, m, entry);
	nmconns--;
	free(m);
}

static void
mconn_send(struct mconn *m)
{
	event_del(&m->ev);
	event_set(&m->ev, m->fd, EV_WRITE | EV_PERSIST, mconn_write, m);
	event_add(&m->ev, NULL);
}

static void
mconn_answer(struct mconn *m, int status, const char *reason,
    const char *body)
{
	evbuffer_add_printf(m->out,
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    status, reason, strlen(body), body);
	mconn_send(m);
}

static void
mconn_write(int fd, short event, void *arg)
{
	struct mconn *m = arg;

	(void)event;
	if (evbuffer_write(m->out, fd) == -1 && errno != EAGAIN &&
	    errno != EINTR) {
		mconn_free(m);
		return;
	}
	if (evbuffer_get_length(m->out) == 0)
		mconn_free(m);
}

static void
metrics_gathered(struct ctl_gather *g)
{
	struct mconn *m = g->arg;
	struct evbuffer *body;

	if (m == NULL) {
		control_gather_free(g);
		return;
	}
	m->gather = NULL;
	if ((body = evbuffer_new()) == NULL ||
	    metrics_render(body, g) == -1) {
		if (body != NULL)
			evbuffer_free(body);
		control_gather_free(g);
		mconn_answer(m, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	control_gather_free(g);
	evbuffer_add_printf(m->out,
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	    evbuffer_get_length(body));
	evbuffer_add_buffer(m->out, body);
	evbuffer_free(body);
	mconn_send(m);
}

static void
mconn_request(struct mconn *m, enum metrics_ask ask)
{
	struct ctl_query q;

	event_del(&m->ev);
	switch (ask) {
	case METRICS_SCRAPE:
		break;
	case METRICS_NOT_FOUND:
		mconn_answer(m, 404, "Not Found",
		    "postern serves /metrics only\n");
		return;
	case METRICS_TOO_LARGE:
		mconn_answer(m, 431, "Request Header Fields Too Large",
		    "request too large\n");
		return;
	default:
		mconn_answer(m, 405, "Method Not Allowed", "GET /metrics\n");
		return;
	}
	memset(&q, 0, sizeof(q));
	q.command = CTL_SHOW_STATS;
	m->gather = control_collect(&q,
	    1u << PROC_AUTHPROC | 1u << PROC_RELAY | 1u << PROC_TLSPROC,
	    metrics_gathered, m);
	if (m->gather == NULL)
		mconn_answer(m, 503, "Service Unavailable",
		    "no postern process is running\n");
}

static void
mconn_read(int fd, short event, void *arg)
{
	struct mconn *m = arg;
	enum metrics_ask ask;
	ssize_t n;

	(void)event;
	n = read(fd, m->req + m->reqlen, sizeof(m->req) - 1 - m->reqlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mconn_free(m);
		return;
	}
	m->reqlen += n;
	if ((ask = metrics_classify(m->req, m->reqlen)) != METRICS_INCOMPLETE)
		mconn_request(m, ask);
}

static void
mconn_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	mconn_free(arg);
}

static void
metrics_accept(int fd, short event, void *arg)
{
	struct timeval tv = {METRICS_TIMEOUT_SEC, 0};
	struct mconn *m;
	int cfd;

	(void)event;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	if (nmconns >= METRICS_MAX_CONNS ||
	    (m = calloc(1, sizeof(*m))) == NULL) {
		close(cfd);
		return;
	}
	if ((m->out = evbuffer_new()) == NULL) {
		free(m);
		close(cfd);
		return;
	}
	m->fd = cfd;
	TAILQ_INSERT_TAIL(&mconns, m, entry);
	nmconns++;
	event_set(&m->ev, cfd, EV_READ | EV_PERSIST, mconn_read, m);
	event_add(&m->ev, NULL);
	/* the whole exchange, a slow reader's included */
	evtimer_set(&m->timer, mconn_timeout, m);
	evtimer_add(&m->timer, &tv);
}

void
metrics_start(void)
{
	if (metrics_fd == -1)
		return;
	event_set(&metrics_ev, metrics_fd, EV_READ | EV_PERSIST,
	    metrics_accept, NULL);
	event_add(&metrics_ev, NULL);
}

/* ---- the exposition ---- */

/* A label value: backslash, double quote and line feed escaped. */
static void
label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static void
family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
histogram(struct evbuffer *b, const char *name, const char *help,
    const struct ctl_histogram *h)
{
	uint64_t cum = 0;
	size_t i;

	family(b, name, "histogram", help);
	for (i = 0; i < CTL_HIST_BUCKETS - 1; i++) {
		cum += h->bucket[i];
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    ctl_hist_bounds_s[i], (unsigned long long)cum);
	}
	cum += h->bucket[CTL_HIST_BUCKETS - 1];
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)cum);
	evbuffer_add_printf(b, "%s_sum %.6f\n%s_count %llu\n", name,
	    (double)h->sum_us / 1e6, name, (unsigned long long)cum);
}

static void
render_sessions(struct evbuffer *b, const struct ctl_stats *st)
{
	uint32_t p;

	family(b, "postern_sessions", "gauge",
	    "Client sessions open now, by protocol and state.");
	for (p = PROTO_IMAP; p <= PROTO_HTTP; p++) {
		evbuffer_add_printf(b,
		    "postern_sessions{protocol=\"%s\",state=\"preauth\"} "
		    "%llu\n",
		    mail_proto_name(p),
		    (unsigned long long)st->sessions_preauth[p]);
		evbuffer_add_printf(b,
		    "postern_sessions{protocol=\"%s\",state=\"relaying\"} "
		    "%llu\n",
		    mail_proto_name(p),
		    (unsigned long long)st->sessions_relayed[p]);
	}
}

static void
render_attempts(struct evbuffer *b, const struct ctl_stats *st)
{
	static const char *limits[CTL_LIMIT_MAX] = {"ip", "user",
	    "connections-per-ip", "attempts", "http-requests"};
	uint32_t p, r;

	family(b, "postern_login_attempts_total", "counter",
	    "Login attempts and pre-auth endings, by protocol and result "
	    "(as in the audit log).");
	for (p = PROTO_IMAP; p <= PROTO_HTTP; p++)
		for (r = AUDIT_OK; r < AUDIT_RESULT_MAX; r++)
			evbuffer_add_printf(b,
			    "postern_login_attempts_total{protocol=\"%s\","
			    "result=\"%s\"} %llu\n",
			    mail_proto_name(p), audit_result_name(r),
			    (unsigned long long)st->attempts[p][r]);
	family(b, "postern_throttled_total", "counter",
	    "Attempts, connections and requests refused, by the limit "
	    "that refused them.");
	for (r = 0; r < CTL_LIMIT_MAX; r++)
		evbuffer_add_printf(b, "postern_throttled_total{limit=\"%s\"} "
				       "%llu\n",
		    limits[r], (unsigned long long)st->throttled[r]);
	family(b, "postern_http_requests_total", "counter",
	    "HTTP requests relayed to upstreams.");
	evbuffer_add_printf(b, "postern_http_requests_total %llu\n",
	    (unsigned long long)st->http_requests);
}

static void
render_bytes(struct evbuffer *b, const struct ctl_stats *st)
{
	uint32_t p;

	family(b, "postern_relayed_bytes_total", "counter",
	    "Bytes relayed, by protocol and direction (up: client to "
	    "upstream).");
	for (p = PROTO_IMAP; p <= PROTO_HTTP; p++) {
		evbuffer_add_printf(b,
		    "postern_relayed_bytes_total{protocol=\"%s\","
		    "direction=\"up\"} %llu\n",
		    mail_proto_name(p), (unsigned long long)st->bytes_up[p]);
		evbuffer_add_printf(b,
		    "postern_relayed_bytes_total{protocol=\"%s\","
		    "direction=\"down\"} %llu\n",
		    mail_proto_name(p), (unsigned long long)st->bytes_down[p]);
	}
}

/* Is row i the first of its kind (same upstream; same pool or relay)? */
static int
first_row(const struct ctl_gather *g, size_t i, int by_pool)
{
	const struct ctl_upstream_row *a = &g->upstreams[i], *o;
	size_t j;

	for (j = 0; j < i; j++) {
		o = &g->upstreams[j];
		if (strcmp(o->u.upstream, a->u.upstream) != 0)
			continue;
		if (by_pool < 0 || (by_pool ? strcmp(o->u.pool, a->u.pool) == 0
					    : o->relay == a->relay))
			return 0;
	}
	return 1;
}

/*
 * Per upstream, across pools and relay processes: each relay counts its
 * own connect failures (once, whatever pools the upstream is in); an
 * upstream is down in a pool if any relay has it down there.
 */
static void
render_upstreams(struct evbuffer *b, const struct ctl_gather *g)
{
	const struct ctl_upstream_row *r;
	uint64_t total;
	size_t i, j;
	int down;

	family(b, "postern_upstream_connect_failures_total", "counter",
	    "Connections to an upstream that failed.");
	for (i = 0; i < g->nupstreams; i++) {
		if (!first_row(g, i, -1))
			continue;
		for (total = 0, j = i; j < g->nupstreams; j++) {
			r = &g->upstreams[j];
			if (strcmp(r->u.upstream, g->upstreams[i].u.upstream) ==
				0 &&
			    first_row(g, j, 0))
				total += r->u.connect_failures;
		}
		evbuffer_add_printf(b,
		    "postern_upstream_connect_failures_total{upstream=\"");
		label(b, g->upstreams[i].u.upstream);
		evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)total);
	}
	family(b, "postern_upstream_down", "gauge",
	    "1 if the pool has the upstream marked down now.");
	for (i = 0; i < g->nupstreams; i++) {
		if (!first_row(g, i, 1))
			continue;
		for (down = 0, j = i; j < g->nupstreams; j++) {
			r = &g->upstreams[j];
			if (strcmp(r->u.upstream, g->upstreams[i].u.upstream) ==
				0 &&
			    strcmp(r->u.pool, g->upstreams[i].u.pool) == 0)
				down |= r->u.down != 0;
		}
		evbuffer_add_printf(b, "postern_upstream_down{pool=\"");
		label(b, g->upstreams[i].u.pool);
		evbuffer_add_printf(b, "\",upstream=\"");
		label(b, g->upstreams[i].u.upstream);
		evbuffer_add_printf(b, "\"} %d\n", down);
	}
}

/* One family of per-listener TLS counters, summed over the workers. */
static void
render_tls_family(struct evbuffer *b, const struct ctl_gather *g,
    const char *name, const char *help, int failures)
{
	uint64_t n;
	size_t i, j;
	int seen;

	family(b, name, "counter", help);
	for (i = 0; i < g->nlisteners; i++) {
		for (seen = 0, j = 0; j < i && !seen; j++)
			seen = g->listeners[j].listener_id ==
			    g->listeners[i].listener_id;
		if (seen)
			continue;
		for (n = 0, j = i; j < g->nlisteners; j++)
			if (g->listeners[j].listener_id ==
			    g->listeners[i].listener_id)
				n += failures ? g->listeners[j].failures
					      : g->listeners[j].handshakes;
		evbuffer_add_printf(b, "%s{listener=\"", name);
		label(b, parent_listener_name(g->listeners[i].listener_id));
		evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)n);
	}
}

static void
render_tls(struct evbuffer *b, const struct ctl_gather *g)
{
	render_tls_family(b, g, "postern_tls_handshakes_total",
	    "TLS handshakes completed, by listener.", 0);
	render_tls_family(b, g, "postern_tls_handshake_failures_total",
	    "TLS handshakes that failed, by listener.", 1);
}

ssize_t
metrics_render(struct evbuffer *b, const struct ctl_gather *g)
{
	const struct ctl_stats *st = &g->stats;
	uint32_t r;

	render_sessions(b, st);
	render_attempts(b, st);
	render_bytes(b, st);
	render_upstreams(b, g);
	render_tls(b, g);
	histogram(b, "postern_lookup_duration_seconds",
	    "Time lookup handlers took to answer.", &st->lookup);
	family(b, "postern_lookup_errors_total", "counter",
	    "Lookup handler requests that failed.");
	evbuffer_add_printf(b, "postern_lookup_errors_total %llu\n",
	    (unsigned long long)st->lookup.errors);
	histogram(b, "postern_memcache_duration_seconds",
	    "Time memcached operations took, queueing included.",
	    &st->memcache);
	family(b, "postern_memcache_errors_total", "counter",
	    "memcached operations that failed.");
	evbuffer_add_printf(b, "postern_memcache_errors_total %llu\n",
	    (unsigned long long)st->memcache.errors);
	family(b, "postern_child_restarts_total", "counter",
	    "Child processes restarted by the parent, by role.");
	for (r = PROC_AUTHPROC; r < PROC_MAX; r++)
		evbuffer_add_printf(b,
		    "postern_child_restarts_total{role=\"%s\"} %llu\n",
		    proc_role_name(r), (unsigned long long)parent_restarts(r));
	family(b, "postern_scrape_incomplete", "gauge",
	    "1 if some process did not answer this scrape in time.");
	evbuffer_add_printf(b, "postern_scrape_incomplete %d\n",
	    g->incomplete);
	return (ssize_t)evbuffer_get_length(b);
}
