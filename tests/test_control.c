/*
 * The control socket's requests (what posternctl, or anything else on the
 * socket, may send), the metrics listener's request classification, the
 * counters' arithmetic and the exposition built from them.
 */
#include <sys/socket.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parent.h"
#include "proto.h"

static struct ctl_request
request(uint32_t command, uint32_t filter, const char *arg)
{
	struct ctl_request r;

	memset(&r, 0, sizeof(r));
	r.command = command;
	r.filter = filter;
	snprintf(r.arg, sizeof(r.arg), "%s", arg);
	return r;
}

static int
valid(struct ctl_request r)
{
	char err[128];

	return ctl_request_valid(&r, err, sizeof(err));
}

static void
test_request_valid(void **state)
{
	(void)state;
	assert_true(valid(request(CTL_SHOW_SESSIONS, 0, "")));
	assert_true(valid(request(CTL_SHOW_SESSIONS, CTL_FILTER_USER, "a@b")));
	assert_true(
	    valid(request(CTL_SHOW_SESSIONS, CTL_FILTER_CLIENT, "::1")));
	assert_true(valid(request(CTL_KICK_USER, 0, "alice@example.org")));
	assert_true(valid(request(CTL_ROUTE_FLUSH_ALL, 0, "")));
	assert_true(valid(request(CTL_LOG_REOPEN, 0, "")));
}

static void
test_request_hostile(void **state)
{
	struct ctl_request r;

	(void)state;
	/* commands that do not exist */
	assert_false(valid(request(0, 0, "")));
	assert_false(valid(request(CTL_COMMAND_MAX, 0, "")));
	assert_false(valid(request(0xffffffffu, 0, "")));
	/* a filter where none is taken, or one that does not exist */
	assert_false(valid(request(CTL_KICK_USER, CTL_FILTER_USER, "a")));
	assert_false(valid(request(CTL_SHOW_SESSIONS, 7, "a")));
	/* arguments missing, superfluous, or with bytes no name has */
	assert_false(valid(request(CTL_KICK_USER, 0, "")));
	assert_false(valid(request(CTL_UNBLOCK_IP, 0, "")));
	assert_false(valid(request(CTL_SHOW_SESSIONS, CTL_FILTER_USER, "")));
	assert_false(valid(request(CTL_SHOW_STATS, 0, "x")));
	assert_false(valid(request(CTL_RELOAD, 0, "now")));
	assert_false(valid(request(CTL_KICK_USER, 0, "a b")));
	assert_false(valid(request(CTL_KICK_USER, 0, "a\nb")));
	assert_false(valid(request(CTL_KICK_USER, 0, "a\x7f")));
	assert_false(valid(request(CTL_KICK_USER, 0, "\x1b[2J")));
	/* not terminated */
	r = request(CTL_KICK_USER, 0, "");
	memset(r.arg, 'a', sizeof(r.arg));
	assert_false(valid(r));
}

static void
test_query_valid(void **state)
{
	struct ctl_query q;

	(void)state;
	memset(&q, 0, sizeof(q));
	q.command = CTL_SHOW_STATS;
	assert_true(ctl_query_valid(&q));
	q.filter = 3;
	assert_false(ctl_query_valid(&q));
	q.filter = 0;
	q.command = CTL_COMMAND_MAX;
	assert_false(ctl_query_valid(&q));
	q.command = CTL_KICK_USER;
	memset(q.user, 'x', sizeof(q.user));
	assert_false(ctl_query_valid(&q));
}

static void
test_histogram_and_sums(void **state)
{
	struct ctl_stats a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ctl_hist_observe(&a.lookup, 0);
	ctl_hist_observe(&a.lookup, 1000);	/* 1 ms: the first bound */
	ctl_hist_observe(&a.lookup, 1001);	/* just past it */
	ctl_hist_observe(&a.lookup, 60000000);	/* a minute: +Inf */
	assert_int_equal(a.lookup.bucket[0], 2);
	assert_int_equal(a.lookup.bucket[1], 1);
	assert_int_equal(a.lookup.bucket[CTL_HIST_BUCKETS - 1], 1);
	assert_int_equal(a.lookup.sum_us, 60002001);
	a.attempts[PROTO_IMAP][AUDIT_OK] = 5;
	a.lookup.errors = 1;
	b.attempts[PROTO_IMAP][AUDIT_OK] = 2;
	b.bytes_up[PROTO_HTTP] = 10;
	b.lookup.bucket[0] = 3;
	b.lookup.errors = 2;
	ctl_stats_add(&a, &b);
	assert_int_equal(a.attempts[PROTO_IMAP][AUDIT_OK], 7);
	assert_int_equal(a.bytes_up[PROTO_HTTP], 10);
	assert_int_equal(a.lookup.bucket[0], 5);
	assert_int_equal(a.lookup.errors, 3);
}

static enum metrics_ask
classify(const char *s)
{
	return metrics_classify(s, strlen(s));
}

static void
test_metrics_classify(void **state)
{
	char big[METRICS_REQUEST_MAX];

	(void)state;
	assert_int_equal(classify("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
	    METRICS_SCRAPE);
	assert_int_equal(classify("GET /metrics?x=1 HTTP/1.0\n\n"),
	    METRICS_SCRAPE);
	assert_int_equal(classify("GET /metrics HTTP/1.1\r\n"),
	    METRICS_INCOMPLETE);
	assert_int_equal(classify(""), METRICS_INCOMPLETE);
	assert_int_equal(classify("GET / HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
	assert_int_equal(classify("GET /metricsx HTTP/1.1\r\n\r\n"),
	    METRICS_NOT_FOUND);
	assert_int_equal(classify("GET /metrics/../a HTTP/1.1\r\n\r\n"),
	    METRICS_NOT_FOUND);
	assert_int_equal(classify("POST /metrics HTTP/1.1\r\n\r\n"),
	    METRICS_BAD_METHOD);
	assert_int_equal(classify("get /metrics HTTP/1.1\r\n\r\n"),
	    METRICS_BAD_METHOD);
	/* the request line must hold the whole prefix, not the next line */
	assert_int_equal(classify("GET /met\nrics HTTP/1.\n\n"),
	    METRICS_NOT_FOUND);
	assert_int_equal(metrics_classify("GET /metrics HTTP/1.1\r\n\r\n\0",
			     26),
	    METRICS_SCRAPE);
	memset(big, 'a', sizeof(big));
	assert_int_equal(metrics_classify(big, sizeof(big) - 1),
	    METRICS_TOO_LARGE);
	assert_int_equal(metrics_classify(big, 100), METRICS_INCOMPLETE);
}

static char *
render(const struct ctl_gather *g)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *text;

	assert_non_null(b);
	assert_true(metrics_render(b, g) > 0);
	len = evbuffer_get_length(b);
	text = calloc(1, len + 1);
	assert_non_null(text);
	evbuffer_remove(b, text, len);
	evbuffer_free(b);
	return text;
}

static void
add_upstream(struct ctl_gather *g, struct ctl_upstream_row *rows,
    uint32_t relay, const char *pool, const char *name, int down,
    uint64_t fails)
{
	struct ctl_upstream_row *r = &rows[g->nupstreams++];

	memset(r, 0, sizeof(*r));
	r->relay = relay;
	r->slot = 1 + relay;
	snprintf(r->u.pool, sizeof(r->u.pool), "%s", pool);
	snprintf(r->u.upstream, sizeof(r->u.upstream), "%s", name);
	r->u.down = down;
	r->u.connect_failures = fails;
}

static void
test_metrics_render(void **state)
{
	struct ctl_upstream_row rows[6];
	struct ctl_listener_row listeners[3];
	struct ctl_gather g;
	char *text;

	(void)state;
	memset(&g, 0, sizeof(g));
	g.stats.sessions_relayed[PROTO_IMAP] = 4;
	g.stats.attempts[PROTO_HTTP][AUDIT_THROTTLED_IP] = 9;
	g.stats.throttled[CTL_LIMIT_REQUESTS] = 3;
	ctl_hist_observe(&g.stats.memcache, 300);
	ctl_hist_observe(&g.stats.memcache, 3000000);
	/* one upstream in two pools, seen by two relays */
	g.upstreams = rows;
	add_upstream(&g, rows, 0, "p1", "store1", 0, 2);
	add_upstream(&g, rows, 1, "p2", "store1", 0, 5);
	add_upstream(&g, rows, 0, "q\"uo\\te", "we\"ird\nname", 0, 1);
	add_upstream(&g, rows, 0, "p2", "store1", 1, 2);
	add_upstream(&g, rows, 1, "p1", "store1", 0, 5);
	g.listeners = listeners;
	memset(listeners, 0, sizeof(listeners));
	snprintf(listeners[0].name, sizeof(listeners[0].name), "imaps:993");
	listeners[0].handshakes = 10;
	/* a second tlsproc worker, or one of an older generation */
	snprintf(listeners[1].name, sizeof(listeners[1].name), "imaps:993");
	listeners[1].handshakes = 5;
	listeners[1].failures = 1;
	snprintf(listeners[2].name, sizeof(listeners[2].name), "https:443");
	listeners[2].handshakes = 2;
	g.nlisteners = 3;
	text = render(&g);
	assert_non_null(strstr(text, "# TYPE postern_sessions gauge\n"));
	assert_non_null(strstr(text,
	    "postern_sessions{protocol=\"imap\",state=\"relaying\"} 4\n"));
	assert_non_null(strstr(text,
	    "postern_login_attempts_total{protocol=\"http\","
	    "result=\"throttled-ip\"} 9\n"));
	assert_non_null(strstr(text,
	    "postern_throttled_total{limit=\"http-requests\"} 3\n"));
	/* each relay's count once, whatever pools share the upstream */
	assert_non_null(strstr(text,
	    "postern_upstream_connect_failures_total{upstream=\"store1\"} "
	    "7\n"));
	assert_non_null(strstr(text,
	    "postern_upstream_down{pool=\"p2\",upstream=\"store1\"} 1\n"));
	assert_non_null(strstr(text,
	    "postern_upstream_down{pool=\"p1\",upstream=\"store1\"} 0\n"));
	/* label values escaped: no line can be forged */
	assert_non_null(strstr(text,
	    "postern_upstream_down{pool=\"q\\\"uo\\\\te\","
	    "upstream=\"we\\\"ird\\nname\"} 0\n"));
	assert_non_null(strstr(text,
	    "postern_tls_handshakes_total{listener=\"imaps:993\"} 15\n"));
	assert_non_null(strstr(text,
	    "postern_tls_handshakes_total{listener=\"https:443\"} 2\n"));
	assert_non_null(strstr(text,
	    "postern_tls_handshake_failures_total{listener=\"imaps:993\"} "
	    "1\n"));
	/* cumulative buckets, +Inf equal to the count */
	assert_non_null(strstr(text,
	    "postern_memcache_duration_seconds_bucket{le=\"0.001\"} 1\n"));
	assert_non_null(strstr(text,
	    "postern_memcache_duration_seconds_bucket{le=\"0.5\"} 1\n"));
	assert_non_null(strstr(text,
	    "postern_memcache_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text,
	    "postern_memcache_duration_seconds_count 2\n"));
	assert_non_null(strstr(text,
	    "postern_memcache_duration_seconds_sum 3.000300\n"));
	free(text);
}

/* The children the gathers below ask: slots 0 (authproc), 1, 2. */
int
children_query(uint32_t id, const struct ctl_query *q, uint32_t roles,
    uint64_t *asked)
{
	(void)id;
	(void)q;
	(void)roles;
	memset(asked, 0, SLOT_WORDS * sizeof(*asked));
	SLOT_SET(asked, 0);
	SLOT_SET(asked, 1);
	SLOT_SET(asked, 2);
	return 3;
}

static int finished;

static void
finish(struct ctl_gather *g)
{
	finished++;
	control_gather_free(g);
}

static int
answer(int slot, enum proc_role role, uint32_t type, uint32_t peerid,
    void *data, size_t len)
{
	struct imsg imsg;

	memset(&imsg, 0, sizeof(imsg));
	imsg.hdr.type = type;
	imsg.hdr.peerid = peerid;
	imsg.fd = -1;
	imsg.data = data;
	imsg.datalen = len;
	return control_child_answer(slot, role, 0, &imsg);
}

/*
 * A child may answer only what it was asked, with the records its role
 * has, and only so many: anything else is refused (and the parent then
 * restarts it).
 */
static void
test_answers_checked(void **state)
{
	struct ctl_query q;
	struct ctl_gather *g;
	struct ctl_stats st;
	struct ctl_upstream u;
	struct ctl_session s;
	struct ctl_done d = {0, 1};
	struct counter_forget f;
	uint32_t id, i;

	(void)state;
	event_init();
	memset(&q, 0, sizeof(q));
	q.command = CTL_SHOW_STATS;
	g = control_collect(&q, 0, finish, NULL);
	assert_non_null(g);
	id = g->id;
	memset(&st, 0, sizeof(st));
	memset(&u, 0, sizeof(u));
	memset(&s, 0, sizeof(s));
	/* authproc has no upstreams, tlsproc no stats, no one sessions */
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_UPSTREAM, id, &u,
			     sizeof(u)),
	    -1);
	assert_int_equal(answer(2, PROC_TLSPROC, IMSG_CTL_STATS, id, &st,
			     sizeof(st)),
	    -1);
	assert_int_equal(answer(1, PROC_RELAY, IMSG_CTL_SESSION, id, &s,
			     sizeof(s)),
	    -1);
	/* one set of counters each */
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_STATS, id, &st,
			     sizeof(st)),
	    0);
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_STATS, id, &st,
			     sizeof(st)),
	    -1);
	/* no more rows than any configuration makes */
	for (i = 0; i < CTL_MAX_ROWS; i++)
		assert_int_equal(answer(1, PROC_RELAY, IMSG_CTL_UPSTREAM, id,
				     &u, sizeof(u)),
		    0);
	assert_int_equal(answer(1, PROC_RELAY, IMSG_CTL_UPSTREAM, id, &u,
			     sizeof(u)),
	    -1);
	/* unterminated names */
	memset(u.pool, 'x', sizeof(u.pool));
	assert_int_equal(answer(2, PROC_RELAY, IMSG_CTL_UPSTREAM, id, &u,
			     sizeof(u)),
	    -1);
	/* a query never asked, and a slot not asked */
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_DONE, id + 100, &d,
			     sizeof(d)),
	    -1);
	assert_int_equal(answer(5, PROC_RELAY, IMSG_CTL_DONE, id, &d,
			     sizeof(d)),
	    -1);
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_DONE, id, &d,
			     sizeof(d)),
	    0);
	assert_int_equal(answer(1, PROC_RELAY, IMSG_CTL_DONE, id, &d,
			     sizeof(d)),
	    0);
	assert_int_equal(finished, 0);
	assert_int_equal(answer(2, PROC_TLSPROC, IMSG_CTL_DONE, id, &d,
			     sizeof(d)),
	    0);
	assert_int_equal(finished, 1);
	/* an answer after the end is ignored, not an offence */
	assert_int_equal(answer(2, PROC_TLSPROC, IMSG_CTL_DONE, id, &d,
			     sizeof(d)),
	    0);
	/* unblock: authproc may name pairs of that user only */
	memset(&q, 0, sizeof(q));
	q.command = CTL_UNBLOCK_USER;
	snprintf(q.user, sizeof(q.user), "alice");
	g = control_collect(&q, 0, finish, NULL);
	assert_non_null(g);
	memset(&f, 0, sizeof(f));
	f.kinds = 1u << COUNT_IPUSER_FAIL;
	f.client.ss_family = AF_INET;
	snprintf(f.user, sizeof(f.user), "ALICE");
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_FORGET, g->id, &f,
			     sizeof(f)),
	    0);
	snprintf(f.user, sizeof(f.user), "bob");
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_FORGET, g->id, &f,
			     sizeof(f)),
	    -1);
	snprintf(f.user, sizeof(f.user), "alice");
	f.kinds = 1u << COUNT_USER;
	assert_int_equal(answer(0, PROC_AUTHPROC, IMSG_CTL_FORGET, g->id, &f,
			     sizeof(f)),
	    -1);
	f.kinds = 1u << COUNT_IPUSER_FAIL;
	assert_int_equal(answer(1, PROC_RELAY, IMSG_CTL_FORGET, g->id, &f,
			     sizeof(f)),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_valid),
	    cmocka_unit_test(test_request_hostile),
	    cmocka_unit_test(test_query_valid),
	    cmocka_unit_test(test_histogram_and_sums),
	    cmocka_unit_test(test_metrics_classify),
	    cmocka_unit_test(test_metrics_render),
	    cmocka_unit_test(test_answers_checked),
	};

	return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
