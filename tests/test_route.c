/*
 * The relay's route table.  route.c keeps one process-wide table with no
 * way to empty it, so the tests run in order and build it up: first an
 * empty table, then routes without a default, then with one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "relay.h"

enum { UP_A = 1, UP_B = 2, UP_C = 3, UP_IMAPONLY = 4, UP_MISSING = 99 };

static void
set_addr(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void
add_upstream(uint32_t id, const char *name, int imap, int pop3)
{
	struct conf_upstream u;

	memset(&u, 0, sizeof(u));
	u.id = id;
	snprintf(u.name, sizeof(u.name), "%s", name);
	if (imap) {
		u.has_imap = 1;
		set_addr(&u.imap, "192.0.2.1", 1000 + id);
	}
	if (pop3) {
		u.has_pop3 = 1;
		set_addr(&u.pop3, "192.0.2.1", 2000 + id);
	}
	route_add_upstream(&u);
}

static int
add_route(enum route_kind kind, const char *match, uint32_t upstream)
{
	struct conf_route r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.upstream_id = upstream;
	snprintf(r.match, sizeof(r.match), "%s", match);
	return route_add(&r);
}

/* The upstream name user's route leads to for proto, or NULL. */
static const char *
lookup(const char *user, enum mail_proto proto, int *port)
{
	struct pool_ctx *p;
	const struct upstream_ctx *u;
	const struct sockaddr_storage *ss;
	struct sockaddr_storage client;
	int i;

	set_addr(&client, "198.51.100.1", 1);
	if ((p = route_lookup(user)) == NULL ||
	    (i = pool_pick(p, &client, proto, 0, 1000)) == -1)
		return NULL;
	u = p->members[i].u;
	ss = upstream_addr(u, proto);
	assert_int_equal(ss->ss_family, AF_INET);
	*port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return u->conf.name;
}

static void
test_empty_table(void **state)
{
	(void)state;
	assert_null(route_lookup("bob@example.com"));
	assert_null(route_lookup("bob"));
}

static void
test_route_to_unknown_upstream(void **state)
{
	(void)state;
	add_upstream(UP_A, "alpha", 1, 1);
	add_upstream(UP_B, "beta", 1, 1);
	add_upstream(UP_C, "gamma", 1, 1);
	add_upstream(UP_IMAPONLY, "imaponly", 1, 0);
	assert_int_equal(add_route(ROUTE_USER, "x@example.com", UP_MISSING),
	    -1);
	assert_int_equal(add_route(ROUTE_DEFAULT, "", UP_MISSING), -1);
}

static void
test_find_upstream(void **state)
{
	(void)state;
	assert_non_null(route_find_upstream(UP_A));
	assert_string_equal(route_find_upstream(UP_A)->conf.name, "alpha");
	assert_string_equal(route_find_upstream(UP_IMAPONLY)->conf.name,
	    "imaponly");
	assert_null(route_find_upstream(UP_MISSING));
	assert_null(route_find_upstream(0));
}

static void
test_no_default(void **state)
{
	int port = 0;

	(void)state;
	assert_int_equal(add_route(ROUTE_USER, "vip@example.com", UP_A), 0);
	assert_int_equal(add_route(ROUTE_DOMAIN, "example.com", UP_B), 0);
	assert_int_equal(add_route(ROUTE_USER, "imap@example.org", UP_IMAPONLY),
	    0);

	assert_string_equal(lookup("vip@example.com", PROTO_IMAP, &port),
	    "alpha");
	assert_int_equal(port, 1000 + UP_A);
	assert_string_equal(lookup("other@example.com", PROTO_IMAP, &port),
	    "beta");
	/* no match and no default: nowhere to go */
	assert_null(lookup("bob@example.net", PROTO_IMAP, &port));
	assert_null(lookup("bob", PROTO_IMAP, &port));
	assert_null(lookup("", PROTO_IMAP, &port));
}

static void
test_precedence(void **state)
{
	int port = 0;

	(void)state;
	assert_int_equal(add_route(ROUTE_DEFAULT, "", UP_C), 0);

	/* exact user beats domain beats default */
	assert_string_equal(lookup("vip@example.com", PROTO_IMAP, &port),
	    "alpha");
	assert_string_equal(lookup("someone@example.com", PROTO_IMAP, &port),
	    "beta");
	assert_string_equal(lookup("someone@example.net", PROTO_IMAP, &port),
	    "gamma");
	assert_int_equal(port, 1000 + UP_C);
}

static void
test_case_insensitive(void **state)
{
	int port = 0;

	(void)state;
	assert_string_equal(lookup("VIP@Example.COM", PROTO_IMAP, &port),
	    "alpha");
	assert_string_equal(lookup("Someone@EXAMPLE.com", PROTO_IMAP, &port),
	    "beta");
}

static void
test_domain_is_last_at(void **state)
{
	int port = 0;

	(void)state;
	/* "a@b@example.com": the domain is what follows the last '@' */
	assert_string_equal(lookup("a@b@example.com", PROTO_IMAP, &port),
	    "beta");
	/* a domain route is not a suffix match */
	assert_string_equal(lookup("a@sub.example.com", PROTO_IMAP, &port),
	    "gamma");
	assert_string_equal(lookup("a@xexample.com", PROTO_IMAP, &port),
	    "gamma");
	/* nor does the domain match a user name without '@' */
	assert_string_equal(lookup("example.com", PROTO_IMAP, &port), "gamma");
}

static void
test_user_without_at(void **state)
{
	int port = 0;

	(void)state;
	assert_string_equal(lookup("bob", PROTO_IMAP, &port), "gamma");
	assert_int_equal(add_route(ROUTE_USER, "bob", UP_A), 0);
	assert_string_equal(lookup("bob", PROTO_IMAP, &port), "alpha");
	assert_string_equal(lookup("BOB", PROTO_POP3, &port), "alpha");
	assert_int_equal(port, 2000 + UP_A);
}

static void
test_protocol_without_port(void **state)
{
	int port = 0;

	(void)state;
	assert_string_equal(lookup("imap@example.org", PROTO_IMAP, &port),
	    "imaponly");
	assert_int_equal(port, 1000 + UP_IMAPONLY);
	/* the user's route decides; it does not fall back to the default */
	assert_null(lookup("imap@example.org", PROTO_POP3, &port));
	/* POP3 to an upstream with both ports uses the POP3 address */
	assert_string_equal(lookup("x@example.com", PROTO_POP3, &port), "beta");
	assert_int_equal(port, 2000 + UP_B);
}

static void
test_bad_proto(void **state)
{
	int port;

	(void)state;
	assert_null(lookup("vip@example.com", (enum mail_proto)0, &port));
	assert_null(lookup("vip@example.com", (enum mail_proto)7, &port));
}

enum { POOL_RR = 50, POOL_HASH = 51 };

static struct pool_ctx *
make_pool(uint32_t id, uint32_t balance, uint32_t max_fails)
{
	struct conf_pool c;
	struct pool_ctx *p;

	memset(&c, 0, sizeof(c));
	c.id = id;
	c.balance = balance;
	c.max_fails = max_fails;
	c.fail_timeout = 30;
	c.nmembers = 3;
	c.members[0] = UP_A;
	c.members[1] = UP_B;
	c.members[2] = UP_C;
	snprintf(c.name, sizeof(c.name), "pool%u", id);
	assert_int_equal(route_add_pool(&c), 0);
	assert_int_equal(route_add_pool(&c), -1); /* no id twice */
	assert_int_equal(add_route(ROUTE_DOMAIN,
			     id == POOL_RR ? "rr.example" : "hash.example", id),
	    0);
	p = route_lookup(id == POOL_RR ? "u@rr.example" : "u@hash.example");
	assert_non_null(p);
	return p;
}

/* Round robin spreads; a failed member is skipped until its time is up. */
static void
test_pool_round_robin_and_failover(void **state)
{
	struct pool_ctx *p = make_pool(POOL_RR, POOL_ROUND_ROBIN, 1);
	struct sockaddr_storage client;
	int seen[3] = {0}, i, k;
	uint64_t now = 100000;

	(void)state;
	set_addr(&client, "198.51.100.7", 1);
	for (k = 0; k < 6; k++)
		seen[pool_pick(p, &client, PROTO_IMAP, 0, now)]++;
	assert_int_equal(seen[0], 2);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 2);
	/* B fails once (max-fails 1): down for 30 s */
	pool_failed(p, 1, now);
	for (k = 0; k < 6; k++)
		assert_int_not_equal(pool_pick(p, &client, PROTO_IMAP, 0, now),
		    1);
	/* members tried already for this session are skipped */
	i = pool_pick(p, &client, PROTO_IMAP, 1u << 0, now);
	assert_int_equal(i, 2);
	/* everything tried or down: the down one whose time ends first */
	assert_int_equal(pool_pick(p, &client, PROTO_IMAP, 1u << 0 | 1u << 2,
			     now),
	    1);
	assert_int_equal(pool_pick(p, &client, PROTO_IMAP,
			     1u << 0 | 1u << 1 | 1u << 2, now),
	    -1);
	/* after the fail timeout B is back */
	seen[0] = seen[1] = seen[2] = 0;
	for (k = 0; k < 6; k++)
		seen[pool_pick(p, &client, PROTO_IMAP, 0, now + 31000)]++;
	assert_int_equal(seen[1], 2);
	/* a success clears the count */
	pool_failed(p, 2, now);
	pool_succeeded(p, 2);
	assert_int_equal(p->members[2].down_until, 0);
}

/* Client-IP hashing keeps a client (an IPv6 /64) on one member. */
static void
test_pool_client_ip_hash(void **state)
{
	struct pool_ctx *p = make_pool(POOL_HASH, POOL_CLIENT_IP, 0);
	struct sockaddr_storage client;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&client;
	int first, k, spread[3] = {0};
	char ip[32];

	(void)state;
	set_addr(&client, "203.0.113.9", 1);
	first = pool_pick(p, &client, PROTO_POP3, 0, 1);
	for (k = 0; k < 10; k++)
		assert_int_equal(pool_pick(p, &client, PROTO_POP3, 0, 1),
		    first);
	for (k = 0; k < 60; k++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", k);
		set_addr(&client, ip, 1);
		spread[pool_pick(p, &client, PROTO_POP3, 0, 1)]++;
	}
	assert_true(spread[0] > 0 && spread[1] > 0 && spread[2] > 0);
	memset(&client, 0, sizeof(client));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2::1", &sin6->sin6_addr);
	first = pool_pick(p, &client, PROTO_IMAP, 0, 1);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &sin6->sin6_addr);
	assert_int_equal(pool_pick(p, &client, PROTO_IMAP, 0, 1), first);
	/* max-fails 0: never marked down */
	pool_failed(p, first, 1);
	assert_int_equal(pool_pick(p, &client, PROTO_IMAP, 0, 1), first);
}

/*
 * A lookup handler or the cache may name an upstream or a pool: the name
 * matches exactly, an upstream comes as its pool of one, an unknown name
 * (or none) is no route.
 */
static void
test_pool_by_name(void **state)
{
	struct pool_ctx *p, *q;
	char name[32];

	(void)state;
	p = route_pool_by_name("alpha");
	assert_non_null(p);
	assert_true(p->implicit);
	assert_int_equal(p->conf.nmembers, 1);
	assert_ptr_equal(p->members[0].u, route_find_upstream(UP_A));
	/* the same pool of one each time, the one a static route uses */
	assert_ptr_equal(route_pool_by_name("alpha"), p);
	assert_ptr_equal(route_pool_by_id(UP_A), p);
	snprintf(name, sizeof(name), "pool%u", POOL_RR);
	q = route_pool_by_name(name);
	assert_non_null(q);
	assert_false(q->implicit);
	assert_int_equal(q->conf.id, POOL_RR);
	assert_int_equal(q->conf.nmembers, 3);
	assert_ptr_equal(route_pool_by_id(POOL_RR), q);
	/* exact: no case folding, no prefix, no trailing bytes */
	assert_null(route_pool_by_name("Alpha"));
	assert_null(route_pool_by_name("alph"));
	assert_null(route_pool_by_name("alpha "));
	assert_null(route_pool_by_name("POOL50"));
	assert_null(route_pool_by_name("nowhere"));
	assert_null(route_pool_by_name(""));
	/* an address is not a name */
	assert_null(route_pool_by_name("192.0.2.1"));
}

int
main(void)
{
	/* order matters: the table only grows */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_table),
	    cmocka_unit_test(test_route_to_unknown_upstream),
	    cmocka_unit_test(test_find_upstream),
	    cmocka_unit_test(test_no_default),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_case_insensitive),
	    cmocka_unit_test(test_domain_is_last_at),
	    cmocka_unit_test(test_user_without_at),
	    cmocka_unit_test(test_protocol_without_port),
	    cmocka_unit_test(test_bad_proto),
	    cmocka_unit_test(test_pool_round_robin_and_failover),
	    cmocka_unit_test(test_pool_client_ip_hash),
	    cmocka_unit_test(test_pool_by_name),
	};

	return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
