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

#define METRICS_TIMEOUT_SEC 5
#define METRICS_FRESH_MS    1000 /* scrapes this close share one answer */
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
static struct evbuffer *fresh; /* the last exposition, for a while */
static uint64_t fresh_ms;

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
	/* a gathering it waits for goes on: others may wait too */
	m->gather = NULL;
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
mconn_exposition(struct mconn *m)
{
	evbuffer_add_printf(m->out,
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	    evbuffer_get_length(fresh));
	/* a copy: the next scrape within METRICS_FRESH_MS shares it */
	evbuffer_add(m->out, evbuffer_pullup(fresh, -1),
	    evbuffer_get_length(fresh));
	mconn_send(m);
}

/* The gathering is done: every scrape waiting for it is answered. */
static void
metrics_gathered(struct ctl_gather *g)
{
	struct mconn *m, *next;
	struct evbuffer *body;

	if ((body = evbuffer_new()) != NULL && metrics_render(body, g) == -1) {
		evbuffer_free(body);
		body = NULL;
	}
	control_gather_free(g);
	if (body != NULL) {
		if (fresh != NULL)
			evbuffer_free(fresh);
		fresh = body;
		fresh_ms = wallclock_ms();
	}
	for (m = TAILQ_FIRST(&mconns); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->gather != g)
			continue;
		m->gather = NULL;
		if (body == NULL)
			mconn_answer(m, 500, "Internal Server Error",
			    "out of memory\n");
		else
			mconn_exposition(m);
	}
}

static void
mconn_request(struct mconn *m, enum metrics_ask ask)
{
	struct ctl_query q;
	struct mconn *o;

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
	if (fresh != NULL && wallclock_ms() < fresh_ms + METRICS_FRESH_MS) {
		mconn_exposition(m);
		return;
	}
	/* one gathering at a time serves every scrape that waits */
	TAILQ_FOREACH(o, &mconns, entry)
	if (o->gather != NULL) {
		m->gather = o->gather;
		return;
	}
	memset(&q, 0, sizeof(q));
	q.command = CTL_SHOW_STATS;
	m->gather = control_collect(&q,
	    1u << PROC_AUTHPROC | 1u << PROC_RELAY | 1u << PROC_TLSPROC,
	    metrics_gathered, NULL);
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

static int
by_upstream_slot(const void *a, const void *b)
{
	const struct ctl_upstream_row *x = a, *y = b;
	int d = strcmp(x->u.upstream, y->u.upstream);

	return d != 0 ? d : x->slot - y->slot;
}

static int
by_upstream_pool(const void *a, const void *b)
{
	const struct ctl_upstream_row *x = a, *y = b;
	int d = strcmp(x->u.upstream, y->u.upstream);

	return d != 0 ? d : strcmp(x->u.pool, y->u.pool);
}

static void
upstream_series(struct evbuffer *b, const char *name, const char *pool,
    const char *upstream, unsigned long long value)
{
	evbuffer_add_printf(b, "%s{", name);
	if (pool != NULL) {
		evbuffer_add_printf(b, "pool=\"");
		label(b, pool);
		evbuffer_add_printf(b, "\",");
	}
	evbuffer_add_printf(b, "upstream=\"");
	label(b, upstream);
	evbuffer_add_printf(b, "\"} %llu\n", value);
}

/*
 * Per upstream, across pools and relay processes (sorted, so a scrape
 * costs n log n however large the configuration): each relay counts
 * its own connect failures, once whatever pools hold the upstream; an
 * upstream is down in a pool if any relay has it down there.
 */
static int
render_upstreams(struct evbuffer *b, const struct ctl_gather *g)
{
	struct ctl_upstream_row *rows;
	uint64_t total = 0;
	size_t i, n = g->nupstreams;
	int down = 0;

	if (n > 0 && (rows = calloc(n, sizeof(*rows))) == NULL)
		return -1;
	family(b, "postern_upstream_connect_failures_total", "counter",
	    "Connections to an upstream that failed.");
	if (n == 0)
		rows = NULL;
	else {
		memcpy(rows, g->upstreams, n * sizeof(*rows));
		qsort(rows, n, sizeof(*rows), by_upstream_slot);
	}
	for (i = 0; i < n; i++) {
		if (i == 0 || rows[i].slot != rows[i - 1].slot ||
		    strcmp(rows[i].u.upstream, rows[i - 1].u.upstream) != 0)
			total += rows[i].u.connect_failures;
		if (i + 1 == n ||
		    strcmp(rows[i].u.upstream, rows[i + 1].u.upstream) != 0) {
			upstream_series(b,
			    "postern_upstream_connect_failures_total", NULL,
			    rows[i].u.upstream, (unsigned long long)total);
			total = 0;
		}
	}
	family(b, "postern_upstream_down", "gauge",
	    "1 if the pool has the upstream marked down now.");
	if (n > 0)
		qsort(rows, n, sizeof(*rows), by_upstream_pool);
	for (i = 0; i < n; i++) {
		down |= rows[i].u.down != 0;
		if (i + 1 == n || by_upstream_pool(&rows[i], &rows[i + 1]) != 0) {
			upstream_series(b, "postern_upstream_down",
			    rows[i].u.pool, rows[i].u.upstream, down);
			down = 0;
		}
	}
	free(rows);
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct ctl_listener_row *)a)->name,
	    ((const struct ctl_listener_row *)b)->name);
}

/* One family of per-listener TLS counters, summed over the workers. */
static void
render_tls_family(struct evbuffer *b, const struct ctl_listener_row *rows,
    size_t n, const char *name, const char *help, int failures)
{
	uint64_t sum = 0;
	size_t i;

	family(b, name, "counter", help);
	for (i = 0; i < n; i++) {
		sum += failures ? rows[i].failures : rows[i].handshakes;
		if (i + 1 < n && strcmp(rows[i].name, rows[i + 1].name) == 0)
			continue;
		evbuffer_add_printf(b, "%s{listener=\"", name);
		label(b, rows[i].name);
		evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)sum);
		sum = 0;
	}
}

static int
render_tls(struct evbuffer *b, const struct ctl_gather *g)
{
	struct ctl_listener_row *rows = NULL;
	size_t n = g->nlisteners;

	if (n > 0) {
		if ((rows = calloc(n, sizeof(*rows))) == NULL)
			return -1;
		memcpy(rows, g->listeners, n * sizeof(*rows));
		qsort(rows, n, sizeof(*rows), by_name);
	}
	render_tls_family(b, rows, n, "postern_tls_handshakes_total",
	    "TLS handshakes completed, by listener.", 0);
	render_tls_family(b, rows, n, "postern_tls_handshake_failures_total",
	    "TLS handshakes that failed, by listener.", 1);
	free(rows);
	return 0;
}

ssize_t
metrics_render(struct evbuffer *b, const struct ctl_gather *g)
{
	const struct ctl_stats *st = &g->stats;
	uint32_t r;

	render_sessions(b, st);
	render_attempts(b, st);
	render_bytes(b, st);
	if (render_upstreams(b, g) == -1 || render_tls(b, g) == -1)
		return -1;
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
