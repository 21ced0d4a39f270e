/*
 * Throttling policy: sliding-window arithmetic at the bucket edges,
 * allow-list matching, and the verdicts built on them.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "proto.h"

#define SEC 1000ULL

static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	return ss;
}

static void
test_window_counts_within_bucket(void **state)
{
	struct window_counter w = {0, 0, 0};
	uint64_t t0 = 1000 * 60 * SEC; /* a bucket start */

	(void)state;
	assert_int_equal(window_estimate(&w, t0, 60), 0);
	window_add(&w, t0, 60, 1);
	window_add(&w, t0 + 59 * SEC, 60, 1);
	assert_int_equal(window_estimate(&w, t0 + 59 * SEC, 60), 2);
}

static void
test_window_slides_across_boundary(void **state)
{
	struct window_counter w = {0, 0, 0};
	uint64_t t0 = 1000 * 60 * SEC;
	int i;

	(void)state;
	for (i = 0; i < 10; i++)
		window_add(&w, t0 + 59 * SEC, 60, 1);
	/* just past the boundary nearly all of the old bucket still counts */
	assert_int_equal(window_estimate(&w, t0 + 60 * SEC, 60), 10);
	/* half-way through the next bucket, half of it does */
	assert_int_equal(window_estimate(&w, t0 + 90 * SEC, 60), 5);
	/* a burst at the boundary cannot double the limit */
	for (i = 0; i < 5; i++)
		window_add(&w, t0 + 90 * SEC, 60, 1);
	assert_int_equal(window_estimate(&w, t0 + 90 * SEC, 60), 10);
	/* the last millisecond of the next bucket: old one nearly gone */
	assert_int_equal(window_estimate(&w, t0 + 120 * SEC - 1, 60), 6);
	/* two buckets later nothing is left */
	assert_int_equal(window_estimate(&w, t0 + 180 * SEC, 60), 0);
}

static void
test_window_long_gap_resets(void **state)
{
	struct window_counter w = {0, 0, 0};

	(void)state;
	window_add(&w, 0, 10, 7);
	window_add(&w, 1000 * SEC, 10, 1);
	assert_int_equal(window_estimate(&w, 1000 * SEC, 10), 1);
}

static void
test_window_saturates(void **state)
{
	struct window_counter w = {0, UINT32_MAX - 1, 0};

	(void)state;
	window_add(&w, 0, 10, 5);
	assert_int_equal(w.cur, UINT32_MAX);
}

static void
test_cidr_parse(void **state)
{
	struct cidr c;

	(void)state;
	assert_int_equal(cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(cidr_parse("192.0.2.1", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("::1", &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(cidr_parse("10.0.0.0/33", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/-1", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/8x", &c), -1);
	assert_int_equal(cidr_parse("2001:db8::/129", &c), -1);
	assert_int_equal(cidr_parse("example.org", &c), -1);
	assert_int_equal(cidr_parse("", &c), -1);
}

static void
test_cidr_match(void **state)
{
	struct cidr c;
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(cidr_parse("192.168.4.0/22", &c), 0);
	ss = addr("192.168.7.255");
	assert_true(cidr_match(&c, &ss));
	ss = addr("192.168.8.0");
	assert_false(cidr_match(&c, &ss));
	ss = addr("::ffff:192.168.5.1"); /* IPv4-mapped */
	assert_true(cidr_match(&c, &ss));
	ss = addr("2001:db8::1");
	assert_false(cidr_match(&c, &ss));

	assert_int_equal(cidr_parse("2001:db8:abcd::/47", &c), 0);
	ss = addr("2001:db8:abcd:1::9");
	assert_true(cidr_match(&c, &ss));
	ss = addr("2001:db8:abce::1");
	assert_false(cidr_match(&c, &ss));
	ss = addr("192.168.5.1");
	assert_false(cidr_match(&c, &ss));

	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	ss = addr("203.0.113.9");
	assert_true(cidr_match(&c, &ss));
}

static void
policy_setup(struct conf_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->ip.max = 3;
	p->ip.window = 60;
	snprintf(p->ip.message, sizeof(p->ip.message), "ip");
	p->user.max = 5;
	p->user.window = 60;
	snprintf(p->user.message, sizeof(p->user.message), "user");
	p->ipuser_fail.max = 2;
	p->ipuser_fail.window = 60;
	snprintf(p->ipuser_fail.message, sizeof(p->ipuser_fail.message),
	    "ipuser");
	p->delay_ms = 100;
	p->delay_max_ms = 350;
	assert_int_equal(cidr_parse("198.51.100.0/24", &p->allow[0]), 0);
	p->nallow = 1;
	policy_init(p);
}

static void
test_policy_verdicts(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.1");
	struct sockaddr_storage b = addr("203.0.113.2");
	struct sockaddr_storage allowed = addr("198.51.100.7");
	const char *msg;
	uint64_t now = 5000 * SEC;
	int i;

	(void)state;
	policy_setup(&p);
	for (i = 0; i < 3; i++) {
		assert_int_equal(policy_check(&a, "x@example.org",
				     POLICY_BUDGET_MAIL, now, &msg),
		    POLICY_ALLOW);
		policy_attempt(&a, "x@example.org", POLICY_BUDGET_MAIL, now);
		policy_result(&a, "x@example.org", POLICY_BUDGET_MAIL, now, 0);
	}
	assert_int_equal(policy_check(&a, "y@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_IP);
	assert_string_equal(msg, "ip");
	/* another address is not affected */
	assert_int_equal(policy_check(&b, "y@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	/* the allow-list is exempt from address limits, not user limits */
	for (i = 0; i < 5; i++) {
		assert_int_equal(policy_check(&allowed, "z@example.org",
				     POLICY_BUDGET_MAIL, now, &msg),
		    POLICY_ALLOW);
		policy_attempt(&allowed, "z@example.org", POLICY_BUDGET_MAIL,
		    now);
	}
	assert_int_equal(policy_check(&allowed, "Z@EXAMPLE.org",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_USER);
	assert_string_equal(msg, "user");
	/* failures per address+user */
	policy_failure(&b, "w@example.org", POLICY_BUDGET_MAIL, now);
	policy_failure(&b, "w@example.org", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&b, "w@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_USER);
	assert_string_equal(msg, "ipuser");
	assert_int_equal(policy_check(&b, "v@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	/* windows expire, and so do their table entries */
	assert_int_equal(policy_check(&a, "y@example.org", POLICY_BUDGET_MAIL,
			     now + 130 * SEC, &msg),
	    POLICY_ALLOW);
	assert_true(policy_nkeys() > 0);
	policy_expire(now + 1000 * SEC);
	assert_int_equal(policy_nkeys(), 0);
}

/* Attempts in flight count against the failure limits at once. */
static void
test_policy_pending_attempts(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.77");
	const char *msg;
	uint64_t now = 7000 * SEC;

	(void)state;
	policy_setup(&p);
	p.ip.max = 0; /* only the failure limits here */
	policy_init(&p);
	/* two logins sent in parallel, no answer yet: ip-user max is 2 */
	policy_attempt(&a, "p@example.org", POLICY_BUDGET_MAIL, now);
	policy_attempt(&a, "p@example.org", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "p@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_USER);
	/* both succeed: nothing is pending or failed any more */
	policy_result(&a, "p@example.org", POLICY_BUDGET_MAIL, now, 0);
	policy_result(&a, "p@example.org", POLICY_BUDGET_MAIL, now, 0);
	assert_int_equal(policy_check(&a, "p@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	/* an extra result (a bug elsewhere) must not go below zero */
	policy_result(&a, "p@example.org", POLICY_BUDGET_MAIL, now, 0);
	policy_attempt(&a, "p@example.org", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "p@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	policy_result(&a, "p@example.org", POLICY_BUDGET_MAIL, now, 1);
	policy_attempt(&a, "p@example.org", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "p@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_USER);
	policy_result(&a, "p@example.org", POLICY_BUDGET_MAIL, now, 0);
}

static void
test_ipv6_counted_per_64(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("2001:db8:1:2::1");
	struct sockaddr_storage b = addr("2001:db8:1:2:ffff::9");
	struct sockaddr_storage c = addr("2001:db8:1:3::1");
	const char *msg;
	uint64_t now = 8000 * SEC;
	int i;

	(void)state;
	policy_setup(&p);
	for (i = 0; i < 3; i++) {
		policy_attempt(i % 2 ? &a : &b, "v6@example.org",
		    POLICY_BUDGET_MAIL, now);
		policy_result(i % 2 ? &a : &b, "v6@example.org",
		    POLICY_BUDGET_MAIL, now, 0);
	}
	/* another address in the same /64 is the same client */
	assert_int_equal(policy_check(&b, "w6@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_IP);
	assert_int_equal(policy_check(&c, "w6@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
}

static void
test_policy_user_names_are_bytes(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.50");
	const char *msg;
	uint64_t now = 9000 * SEC;
	int i;

	(void)state;
	policy_setup(&p);
	p.ip.max = 0;
	policy_init(&p);
	/* a name with CR/LF and spaces counts only for itself */
	for (i = 0; i < 5; i++)
		policy_attempt(&a, "evil\r\nset x 0 0 1\r\n",
		    POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "evil\r\nset x 0 0 1\r\n",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_USER);
	assert_int_equal(policy_check(&a, "evil", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_ALLOW);
	assert_int_equal(policy_check(&a, "set x 0 0 1", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
}

/*
 * One budget per user by default, whatever the protocol; with `throttle
 * http separate' the web has its own user budgets, while the address's
 * limits stay one.
 */
static void
test_policy_web_budget(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.60");
	struct sockaddr_storage b = addr("203.0.113.61");
	const char *msg;
	uint64_t now = 9000 * SEC;
	int i, web;

	(void)state;
	policy_setup(&p);
	p.ip.max = 0;
	policy_init(&p);
	assert_int_equal(policy_budget(PROTO_HTTP), POLICY_BUDGET_MAIL);
	assert_int_equal(policy_budget(PROTO_IMAP), POLICY_BUDGET_MAIL);

	p.http_separate = 1;
	p.ip_fail.max = 5;
	p.ip_fail.window = 60;
	policy_init(&p);
	assert_int_equal(policy_budget(PROTO_HTTP), POLICY_BUDGET_WEB);
	assert_int_equal(policy_budget(PROTO_POP3), POLICY_BUDGET_MAIL);
	web = policy_budget(PROTO_HTTP);
	/* the web spends its user budget: mail's is untouched */
	for (i = 0; i < 5; i++) {
		policy_attempt(&b, "w@example.org", web, now);
		policy_result(&b, "w@example.org", web, now, 0);
	}
	assert_int_equal(policy_check(&b, "w@example.org", web, now, &msg),
	    POLICY_THROTTLED_USER);
	assert_int_equal(policy_check(&b, "w@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	/* failures per address+user too; per address they add up */
	for (i = 0; i < 3; i++)
		policy_failure(&a, "f@example.org", web, now);
	assert_int_equal(policy_check(&a, "f@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
	for (i = 0; i < 3; i++)
		policy_failure(&a, "g@example.org", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "h@example.org", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_THROTTLED_IP);
}

static void
test_failure_delay_grows_and_caps(void **state)
{
	struct conf_policy p;

	(void)state;
	policy_setup(&p);
	assert_int_equal(policy_failure_delay(0), 0);
	assert_int_equal(policy_failure_delay(1), 100);
	assert_int_equal(policy_failure_delay(2), 200);
	assert_int_equal(policy_failure_delay(3), 350);
	assert_int_equal(policy_failure_delay(1000), 350);
	p.delay_ms = 0;
	policy_init(&p);
	assert_int_equal(policy_failure_delay(5), 0);
}

/*
 * With shared counts, the store's numbers decide; this node's attempts
 * in flight are added on top; allow-listed addresses are asked only
 * for the user counter.
 */
static void
test_policy_shared_counts_decide(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.60");
	struct sockaddr_storage b = addr("203.0.113.61");
	struct sockaddr_storage allowed = addr("198.51.100.9");
	uint32_t shared[COUNTER_KINDS] = {0};
	const char *msg;
	uint64_t now = 12000 * SEC;

	(void)state;
	policy_setup(&p);
	/* local table empty, store full: refused */
	shared[COUNT_IP] = 3;
	assert_int_equal(policy_check_shared(&a, "u", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_THROTTLED_IP);
	assert_string_equal(msg, "ip");
	/* the store lost what this node counted: the local count holds */
	policy_attempt(&a, "u", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "u", POLICY_BUDGET_MAIL, now, 0);
	policy_attempt(&a, "u", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "u", POLICY_BUDGET_MAIL, now, 0);
	shared[COUNT_IP] = 0;
	assert_int_equal(policy_check_shared(&a, "v", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_ALLOW);
	policy_attempt(&a, "u", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "u", POLICY_BUDGET_MAIL, now, 0);
	assert_int_equal(policy_check_shared(&a, "v", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_THROTTLED_IP);
	assert_int_equal(policy_check(&a, "v", POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_IP);
	/* other nodes' attempts count too, for an address new here */
	shared[COUNT_IP] = 2;
	assert_int_equal(policy_check_shared(&b, "v", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_ALLOW);
	shared[COUNT_IP] = 3;
	assert_int_equal(policy_check_shared(&b, "v", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_THROTTLED_IP);
	shared[COUNT_IP] = 0;
	/* one failure in the store plus one in flight here reach 2 */
	shared[COUNT_IPUSER_FAIL] = 1;
	policy_attempt(&b, "w", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check_shared(&b, "w", POLICY_BUDGET_MAIL, now,
			     shared, &msg),
	    POLICY_THROTTLED_USER);
	assert_string_equal(msg, "ipuser");
	policy_result(&b, "w", POLICY_BUDGET_MAIL, now, 0);
	/* which counters an attempt reads and bumps */
	assert_int_equal(policy_kinds_checked(&a),
	    1 << COUNT_IP | 1 << COUNT_USER | 1 << COUNT_IPUSER_FAIL);
	assert_int_equal(policy_kinds_checked(&allowed), 1 << COUNT_USER);
	assert_int_equal(policy_kinds_attempted(&a),
	    1 << COUNT_IP | 1 << COUNT_USER);
	assert_int_equal(policy_kinds_failed(&a), 1 << COUNT_IPUSER_FAIL);
	assert_int_equal(policy_kinds_failed(&allowed), 0);
}

/*
 * A full table refuses whom it cannot count, but not an allow-listed
 * client (which has no address counter) for a user the table knows.
 */
static void
test_policy_full_table(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage allowed = addr("198.51.100.8");
	struct sockaddr_storage known = addr("203.0.113.90");
	struct sockaddr_storage stranger = addr("203.0.113.91");
	struct sockaddr_storage filler;
	struct sockaddr_in *sin = (struct sockaddr_in *)&filler;
	const char *msg;
	uint64_t now = 20000 * SEC;
	size_t before;
	uint32_t i;

	(void)state;
	policy_setup(&p);
	/* earlier cases' attempts still pending may stay */
	policy_expire(now + 100000 * SEC);
	policy_attempt(&allowed, "webmail-user", POLICY_BUDGET_MAIL, now);
	policy_attempt(&known, "webmail-user", POLICY_BUDGET_MAIL, now);
	filler = addr("10.0.0.0");
	for (i = 1;; i++) {
		before = policy_nkeys();
		sin->sin_addr.s_addr = htonl(0x0a000000u + i);
		policy_attempt(&filler, "filler", POLICY_BUDGET_MAIL, now);
		if (policy_nkeys() == before)
			break; /* nothing more fits */
	}
	assert_true(policy_nkeys() >= 262144);
	/* whom the table cannot count is refused */
	assert_int_equal(policy_check(&stranger, "webmail-user",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_IP);
	assert_int_not_equal(policy_check(&allowed, "new-user",
				 POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_ALLOW);
	/* whom it knows is not */
	assert_int_equal(policy_check(&known, "webmail-user",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_ALLOW);
	assert_int_equal(policy_check(&allowed, "webmail-user",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_ALLOW);
	/* once old entries expire, strangers are counted again */
	policy_expire(now + 100000 * SEC);
	assert_int_equal(policy_check(&stranger, "new-user", POLICY_BUDGET_MAIL,
			     now, &msg),
	    POLICY_ALLOW);
}

struct forgot_log {
	int n;
	int ipuser;
	char users[4][32];
};

static void
forgot(enum counter_kind kind, int budget, const struct sockaddr_storage *ss,
    const char *user, void *arg)
{
	struct forgot_log *f = arg;

	(void)budget;
	(void)ss;
	if (kind == COUNT_IPUSER_FAIL && f->ipuser < 4)
		snprintf(f->users[f->ipuser++], sizeof(f->users[0]), "%s",
		    user);
	f->n++;
}

/* posternctl unblock: one address's or one user's counts, no others. */
static void
test_policy_unblock(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.50");
	struct sockaddr_storage b = addr("203.0.113.51");
	struct sockaddr_storage v6 = addr("2001:db8:1:2::5");
	struct sockaddr_storage v6b = addr("2001:db8:1:2::ffff");
	struct forgot_log f;
	const char *msg;
	uint64_t now = 40000 * SEC;

	(void)state;
	policy_setup(&p);
	policy_expire(now + 100000 * SEC);
	/* a locks itself out by address; "Mallory" by user from b */
	policy_result(&a, "alice", POLICY_BUDGET_MAIL, now, 0);
	policy_attempt(&a, "alice", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "alice", POLICY_BUDGET_MAIL, now, 0);
	policy_attempt(&a, "alice", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "alice", POLICY_BUDGET_MAIL, now, 0);
	policy_attempt(&a, "bob", POLICY_BUDGET_MAIL, now);
	policy_result(&a, "bob", POLICY_BUDGET_MAIL, now, 0);
	assert_int_equal(policy_check(&a, "carol", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_THROTTLED_IP);
	policy_attempt(&b, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_failure(&b, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_attempt(&b, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_failure(&b, "Mallory", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&b, "mallory", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_THROTTLED_USER);
	/* unblocking b does not unblock a */
	memset(&f, 0, sizeof(f));
	assert_true(policy_unblock(&b, NULL, forgot, &f) >= 1);
	assert_int_equal(f.ipuser, 1);
	assert_string_equal(f.users[0], "mallory");
	assert_int_equal(policy_check(&a, "carol", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_THROTTLED_IP);
	assert_int_equal(policy_check(&b, "mallory", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_ALLOW);
	assert_true(policy_unblock(&a, NULL, NULL, NULL) >= 1);
	assert_int_equal(policy_check(&a, "carol", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_ALLOW);
	/* a user, whatever the case of the name, from every address */
	policy_attempt(&a, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_failure(&a, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_attempt(&a, "Mallory", POLICY_BUDGET_MAIL, now);
	policy_failure(&a, "Mallory", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "mallory", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_THROTTLED_USER);
	memset(&f, 0, sizeof(f));
	assert_true(policy_unblock(NULL, "MALLORY", forgot, &f) >= 2);
	assert_int_equal(policy_check(&a, "mallory", POLICY_BUDGET_MAIL, now,
			     &msg),
	    POLICY_ALLOW);
	/* nothing of anyone else's is touched */
	assert_int_equal(policy_unblock(NULL, "nobody", NULL, NULL), 0);
	/* IPv6: the /64 the counters use */
	policy_attempt(&v6, "dave", POLICY_BUDGET_MAIL, now);
	memset(&f, 0, sizeof(f));
	assert_true(policy_unblock(&v6b, NULL, forgot, &f) >= 1);
	assert_true(f.n >= 1);
}

struct export_buf {
	unsigned char data[1 << 16];
	size_t len;
	int chunks;
};

static void
collect(const void *data, size_t len, void *arg)
{
	struct export_buf *b = arg;

	assert_true(b->len + len <= sizeof(b->data));
	assert_true(len <= 200); /* the chunk size asked for */
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->chunks++;
}

/*
 * A reload hands the counts over: what one table exports, a fresh one
 * imports, with the same verdicts; malformed input is refused.
 */
static void
test_policy_export_import(void **state)
{
	static struct export_buf b;
	struct conf_policy p;
	struct sockaddr_storage a = addr("203.0.113.70");
	const char *msg;
	uint64_t now = 60000 * SEC;
	unsigned char bad[64];
	uint16_t klen;

	(void)state;
	policy_setup(&p);
	policy_expire(now + 100000 * SEC);
	policy_attempt(&a, "eve", POLICY_BUDGET_MAIL, now);
	policy_failure(&a, "eve", POLICY_BUDGET_MAIL, now);
	policy_attempt(&a, "eve", POLICY_BUDGET_MAIL, now);
	policy_failure(&a, "eve", POLICY_BUDGET_MAIL, now);
	assert_int_equal(policy_check(&a, "eve", POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_USER);
	memset(&b, 0, sizeof(b));
	assert_true(policy_export(collect, &b, 200) >= 3);
	assert_true(b.chunks >= 1);
	/* the new authproc: an empty table, then the counts */
	policy_expire(now + 100000 * SEC);
	assert_int_equal(policy_check(&a, "eve", POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_ALLOW);
	assert_int_equal(policy_import(b.data, b.len, now), 0);
	assert_int_equal(policy_check(&a, "eve", POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_USER);
	/* imported twice: added (the address is over its limit now too) */
	assert_int_equal(policy_import(b.data, b.len, now), 0);
	assert_int_equal(policy_check(&a, "eve", POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_THROTTLED_IP);
	/* counts too old for their window are left behind */
	policy_expire(now + 100000 * SEC);
	assert_int_equal(policy_import(b.data, b.len, now + 100000 * SEC), 0);
	assert_int_equal(policy_check(&a, "eve", POLICY_BUDGET_MAIL,
			     now + 100000 * SEC, &msg),
	    POLICY_ALLOW);
	/* malformed: cut short, no key, a key too long, an unknown kind */
	assert_int_equal(policy_import(b.data, b.len - 1, now), -1);
	assert_int_equal(policy_import(b.data, 1, now), -1);
	memset(bad, 0, sizeof(bad));
	assert_int_equal(policy_import(bad, 40, now), -1);
	klen = 0xffff;
	memcpy(bad, &klen, 2);
	assert_int_equal(policy_import(bad, sizeof(bad), now), -1);
	klen = 1;
	memcpy(bad, &klen, 2);
	bad[2] = 0x7f;
	assert_int_equal(policy_import(bad, 2 + 1 + 28, now), -1);
	assert_int_equal(policy_import(bad, 0, now), 0);
}

/*
 * limit http-requests: counted per address, refused over the rate, the
 * allow-list exempt; a flood of addresses fills only its own quarter of
 * the table, so logins can still be counted after it.
 */
static void
test_policy_request_rate(void **state)
{
	struct conf_policy p;
	struct sockaddr_storage a = addr("192.0.2.76");
	struct sockaddr_storage allowed = addr("198.51.100.9");
	struct sockaddr_storage stranger = addr("192.0.2.77");
	struct sockaddr_storage filler;
	struct sockaddr_in *sin = (struct sockaddr_in *)&filler;
	const char *msg;
	uint64_t now = 40000 * SEC;
	size_t before, start;
	uint32_t i;
	int r;

	(void)state;
	policy_setup(&p);
	p.requests.max = 3;
	p.requests.window = 60;
	policy_init(&p);
	policy_expire(now + 100000 * SEC);
	start = policy_nkeys();
	for (i = 0; i < 3; i++)
		assert_int_equal(policy_request(&a, now), 0);
	assert_int_equal(policy_request(&a, now), 1);
	assert_int_equal(policy_request(&a, now + 121 * SEC), 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(policy_request(&allowed, now), 0);
	filler = addr("10.0.0.0");
	for (i = 1;; i++) {
		before = policy_nkeys();
		sin->sin_addr.s_addr = htonl(0x0a000000u + i);
		r = policy_request(&filler, now);
		assert_int_equal(r, 0);
		if (policy_nkeys() == before)
			break; /* the quota is reached */
	}
	assert_int_equal(policy_nkeys() - start, 262144 / 4);
	/* a new address is not limited (not counted either)... */
	for (i = 0; i < 5; i++)
		assert_int_equal(policy_request(&stranger, now), 0);
	/* ...and logins are counted, not refused for want of room */
	assert_int_equal(policy_check(&stranger, "after-flood",
			     POLICY_BUDGET_MAIL, now, &msg),
	    POLICY_ALLOW);
	before = policy_nkeys();
	policy_attempt(&stranger, "after-flood", POLICY_BUDGET_MAIL, now);
	assert_true(policy_nkeys() > before);
	policy_result(&stranger, "after-flood", POLICY_BUDGET_MAIL, now, 0);
	policy_expire(now + 100000 * SEC);
	assert_true(policy_nkeys() <= start);
	/* the quota is free again */
	for (i = 0; i < 3; i++)
		assert_int_equal(policy_request(&stranger, now), 0);
	assert_int_equal(policy_request(&stranger, now), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window_counts_within_bucket),
	    cmocka_unit_test(test_window_slides_across_boundary),
	    cmocka_unit_test(test_window_long_gap_resets),
	    cmocka_unit_test(test_window_saturates),
	    cmocka_unit_test(test_cidr_parse),
	    cmocka_unit_test(test_cidr_match),
	    cmocka_unit_test(test_policy_verdicts),
	    cmocka_unit_test(test_policy_pending_attempts),
	    cmocka_unit_test(test_ipv6_counted_per_64),
	    cmocka_unit_test(test_policy_user_names_are_bytes),
	    cmocka_unit_test(test_policy_web_budget),
	    cmocka_unit_test(test_failure_delay_grows_and_caps),
	    cmocka_unit_test(test_policy_shared_counts_decide),
	    /* before the full table, whose pending entries never expire */
	    cmocka_unit_test(test_policy_export_import),
	    cmocka_unit_test(test_policy_full_table),
	    cmocka_unit_test(test_policy_request_rate),
	    cmocka_unit_test(test_policy_unblock),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
