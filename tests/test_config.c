/*
 * parse_config(): each test writes a configuration to a temporary file.
 * Parse errors are logged with log_warnx to stderr; that is expected.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "parent.h"

#define EXAMPLE_CONF "etc/postern.conf"

static struct postern_conf *
parse_text(const char *text)
{
	struct postern_conf *c;
	char path[] = "/tmp/postern-test-conf.XXXXXX";
	int fd;
	size_t len = strlen(text);

	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	c = parse_config(path);
	assert_int_equal(unlink(path), 0);
	return c;
}

static void
expect_error(const char *text)
{
	struct postern_conf *c;

	if ((c = parse_text(text)) != NULL) {
		free_config(c);
		fail_msg("accepted:\n%s", text);
	}
}

static void
assert_in(const struct sockaddr_storage *ss, const char *ip, int port)
{
	const struct sockaddr_in *sin = (const void *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
assert_in6(const struct sockaddr_storage *ss, const char *ip, int port)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_non_null(
	    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

static const char full_conf[] = "# a comment line\n"
				"user \"_mailproxy\"\n"
				"chroot /var/lib/postern\n"
				"\n"
				"timeout connect 5\t# trailing comment\n"
				"timeout login 20\n"
				"timeout pre-auth 45\n"
				"timeout linger 7\n"
				"timeout stall 120\n"
				"limit line 4096\n"
				"limit literal 512\n"
				"limit bad-commands 5\n"
				"limit sessions 200\n"
				"greeting \"Welcome to \\\"postern\\\"\"\n"
				"listen on 127.0.0.1 port 1143 imap\n"
				"listen on ::1 port 1110 pop3\n"
				"\n"
				"upstream \"mx1\" {\n"
				"\thost 192.0.2.10\n"
				"\timap port 143\n"
				"\tpop3 port 110\n"
				"}\n"
				"upstream mx2 {\n"
				"\n"
				"\thost \"2001:db8::2\"\n"
				"\timap port 10143\n"
				"\n"
				"}\n"
				"route user \"VIP@Example.COM\" to mx2\n"
				"route domain example.org to \"mx1\"\n"
				"route default to mx1\n";

static void
test_full_config(void **state)
{
	struct postern_conf *c;
	struct listener *l;
	struct upstream *u;
	struct route *r;

	(void)state;
	c = parse_text(full_conf);
	assert_non_null(c);

	assert_string_equal(c->user, "_mailproxy");
	assert_string_equal(c->sandbox.chroot, "/var/lib/postern");
	assert_int_equal(c->global.timeout_connect, 5);
	assert_int_equal(c->global.timeout_login, 20);
	assert_int_equal(c->global.timeout_preauth, 45);
	assert_int_equal(c->global.timeout_linger, 7);
	assert_int_equal(c->global.timeout_stall, 120);
	assert_int_equal(c->global.max_line, 4096);
	assert_int_equal(c->global.max_literal, 512);
	assert_int_equal(c->global.max_bad_commands, 5);
	assert_int_equal(c->global.max_sessions, 200);
	assert_string_equal(c->global.greeting, "Welcome to \"postern\"");

	/* listeners, in file order */
	l = TAILQ_FIRST(&c->listeners);
	assert_non_null(l);
	assert_int_equal(l->conf.proto, PROTO_IMAP);
	assert_in(&l->conf.addr, "127.0.0.1", 1143);
	assert_string_equal(l->conf.name, "imap:1143");
	assert_int_equal(l->fd, -1);
	assert_int_equal(l->conf.id, 1);
	l = TAILQ_NEXT(l, entry);
	assert_non_null(l);
	assert_int_equal(l->conf.proto, PROTO_POP3);
	assert_in6(&l->conf.addr, "::1", 1110);
	assert_string_equal(l->conf.name, "pop3:1110");
	assert_int_equal(l->conf.id, 2);
	assert_null(TAILQ_NEXT(l, entry));

	/* upstreams */
	u = TAILQ_FIRST(&c->upstreams);
	assert_non_null(u);
	assert_string_equal(u->conf.name, "mx1");
	assert_string_equal(u->host, "192.0.2.10");
	assert_int_equal(u->imap_port, 143);
	assert_int_equal(u->pop3_port, 110);
	assert_int_equal(u->conf.has_imap, 1);
	assert_int_equal(u->conf.has_pop3, 1);
	assert_in(&u->conf.imap, "192.0.2.10", 143);
	assert_in(&u->conf.pop3, "192.0.2.10", 110);
	assert_int_equal(u->conf.id, 3);
	u = TAILQ_NEXT(u, entry);
	assert_non_null(u);
	assert_string_equal(u->conf.name, "mx2");
	assert_string_equal(u->host, "2001:db8::2");
	assert_int_equal(u->imap_port, 10143);
	assert_int_equal(u->pop3_port, 0);
	assert_int_equal(u->conf.has_imap, 1);
	assert_int_equal(u->conf.has_pop3, 0);
	assert_in6(&u->conf.imap, "2001:db8::2", 10143);
	assert_int_equal(u->conf.id, 4);
	assert_null(TAILQ_NEXT(u, entry));

	/* routes: matches are stored lower case */
	r = TAILQ_FIRST(&c->routes);
	assert_non_null(r);
	assert_int_equal(r->conf.kind, ROUTE_USER);
	assert_string_equal(r->conf.match, "vip@example.com");
	assert_int_equal(r->conf.upstream_id, 4);
	r = TAILQ_NEXT(r, entry);
	assert_non_null(r);
	assert_int_equal(r->conf.kind, ROUTE_DOMAIN);
	assert_string_equal(r->conf.match, "example.org");
	assert_int_equal(r->conf.upstream_id, 3);
	r = TAILQ_NEXT(r, entry);
	assert_non_null(r);
	assert_int_equal(r->conf.kind, ROUTE_DEFAULT);
	assert_string_equal(r->conf.match, "");
	assert_int_equal(r->conf.upstream_id, 3);
	assert_null(TAILQ_NEXT(r, entry));

	free_config(c);
}

static void
test_defaults(void **state)
{
	struct postern_conf *c;

	(void)state;
	c = parse_text("listen on 0.0.0.0 port 143 imap\n");
	assert_non_null(c);
	assert_string_equal(c->user, POSTERN_USER);
	assert_string_equal(c->sandbox.chroot, POSTERN_CHROOT);
	assert_int_equal(c->global.timeout_connect, 10);
	assert_int_equal(c->global.timeout_login, 30);
	assert_int_equal(c->global.timeout_preauth, 60);
	assert_int_equal(c->global.timeout_linger, 60);
	assert_int_equal(c->global.timeout_stall, 300);
	assert_int_equal(c->global.max_line, 8192);
	assert_int_equal(c->global.max_literal, PASS_MAX_LEN);
	assert_int_equal(c->global.max_bad_commands, 10);
	assert_int_equal(c->global.max_sessions, 10000);
	assert_string_equal(c->global.greeting, "postern ready");
	/* mail and web attempts spend one budget per user */
	assert_int_equal(c->policy.http_separate, 0);
	assert_true(TAILQ_EMPTY(&c->upstreams));
	assert_true(TAILQ_EMPTY(&c->routes));
	assert_in(&TAILQ_FIRST(&c->listeners)->conf.addr, "0.0.0.0", 143);
	free_config(c);
	c = parse_text("listen on 0.0.0.0 port 143 imap\n"
		       "throttle http separate\n");
	assert_non_null(c);
	assert_int_equal(c->policy.http_separate, 1);
	free_config(c);
}

static void
test_no_final_newline(void **state)
{
	struct postern_conf *c;

	(void)state;
	/* an editor that drops the last newline must not break the file */
	c = parse_text("greeting hi\nlisten on 127.0.0.1 port 143 imap");
	assert_non_null(c);
	assert_false(TAILQ_EMPTY(&c->listeners));
	free_config(c);
	c = parse_text("listen on 127.0.0.1 port 143 imap\n# last");
	assert_non_null(c);
	free_config(c);
}

static void
test_line_continuation(void **state)
{
	struct postern_conf *c;

	(void)state;
	c = parse_text("listen on 127.0.0.1 \\\nport 143 imap\n"
		       "timeout login \\\n 7\n");
	assert_non_null(c);
	assert_int_equal(c->global.timeout_login, 7);
	free_config(c);
}

static void
test_undefined_upstream(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "route default to nowhere\n");
	/* an upstream must come before the routes naming it */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "route domain example.com to late\n"
		     "upstream late {\n\thost 192.0.2.1\n\timap port 143\n}\n");
}

static void
test_duplicates(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "listen on 127.0.0.1 port 143 pop3\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 143\n}\n"
		     "upstream a {\n\thost 192.0.2.2\n\timap port 143\n}\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 143\n}\n"
		     "route domain Example.com to a\n"
		     "route domain example.COM to a\n");
}

static void
test_same_port_other_address(void **state)
{
	struct postern_conf *c;

	(void)state;
	c = parse_text("listen on 127.0.0.1 port 143 imap\n"
		       "listen on 127.0.0.2 port 143 imap\n"
		       "listen on 127.0.0.1 port 110 pop3\n");
	assert_non_null(c);
	free_config(c);
}

static void
test_bad_port(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 0 imap\n");
	expect_error("listen on 127.0.0.1 port 65536 imap\n");
	expect_error("listen on 127.0.0.1 port -1 imap\n");
	expect_error("listen on 127.0.0.1 port imap imap\n");
	expect_error("listen on 127.0.0.1 port 99999999999999999999 imap\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 70000\n}\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\tpop3 port 0\n}\n");
}

static void
test_timeout_range(void **state)
{
	struct postern_conf *c;

	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout connect 0\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout login 86401\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout pre-auth -5\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout idle 5\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout linger 0\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "timeout stall 86401\n");
	c = parse_text("listen on 127.0.0.1 port 143 imap\n"
		       "timeout pre-auth 86400\ntimeout connect 1\n");
	assert_non_null(c);
	assert_int_equal(c->global.timeout_preauth, 86400);
	assert_int_equal(c->global.timeout_connect, 1);
	free_config(c);
}

static void
test_limit_range(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\nlimit line 511\n");
	expect_error("listen on 127.0.0.1 port 143 imap\nlimit line 8193\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "limit literal 1024\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "limit sessions 0\n");
}

static void
test_bad_strings(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "greeting \"unterminated\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "greeting \"unterminated");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "greeting \"bad \\escape\"\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "greeting \"tab\there\"\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "chroot relative/path\n");
}

static void
test_upstream_errors(void **state)
{
	(void)state;
	/* no host */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\timap port 143\n}\n");
	/* no port */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n}\n");
	/* unknown option */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 143\n"
		     "\tweight 5\n}\n");
	/* unclosed */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 143\n");
	/* an error inside one block, then a good block */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 0\n}\n"
		     "upstream b {\n\thost 192.0.2.1\n\timap port 143\n}\n");
}

static void
test_no_listeners(void **state)
{
	(void)state;
	expect_error("");
	expect_error("# nothing but a comment\n");
	expect_error("upstream a {\n\thost 192.0.2.1\n\timap port 143\n}\n"
		     "route default to a\n");
}

static void
test_syntax_errors(void **state)
{
	(void)state;
	expect_error("listen on 127.0.0.1 port 143 imap\nfrobnicate\n");
	expect_error("listen on 127.0.0.1 port 143 smtp\n");
	expect_error("listen 127.0.0.1 port 143 imap\n");
	expect_error("listen on 127.0.0.1 port 143 imap extra\n");
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "route user to a\n");
	expect_error("listen on localhost-no-such-name port 143 imap\n");
	/* an error on a line does not hide one further on */
	expect_error("frobnicate\nlisten on 127.0.0.1 port 143 imap\n");
}

static void
test_missing_file(void **state)
{
	(void)state;
	assert_null(parse_config("/nonexistent/postern.conf"));
}

static void
test_reparse(void **state)
{
	struct postern_conf *a, *b;

	(void)state;
	/* the parser keeps no state between runs */
	expect_error("listen on 127.0.0.1 port 143 imap\n"
		     "upstream a {\n\thost 192.0.2.1\n\timap port 0\n");
	a = parse_text(full_conf);
	b = parse_text(full_conf);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(TAILQ_LAST(&b->routes, routelist)->conf.upstream_id,
	    TAILQ_LAST(&a->routes, routelist)->conf.upstream_id);
	free_config(a);
	free_config(b);
}

static void
test_example_config(void **state)
{
	struct postern_conf *c;
	struct stat st;

	(void)state;
	if (stat(EXAMPLE_CONF, &st) == -1)
		skip();
	c = parse_config(EXAMPLE_CONF);
	assert_non_null(c);
	assert_false(TAILQ_EMPTY(&c->listeners));
	free_config(c);
}

static void
test_memcache(void **state)
{
	struct postern_conf *c;

	(void)state;
	c = parse_text("listen on 127.0.0.1 port 143 imap\n");
	assert_non_null(c);
	assert_int_equal(c->memcache.nservers, 0);
	assert_int_equal(c->policy.shared, 0);
	assert_int_equal(c->memcache.timeout_ms, 250);
	assert_int_equal(c->memcache.backoff_s, 30);
	free_config(c);
	c = parse_text("memcache server \"127.0.0.1\"\n"
		       "memcache server \"::1\" port 11311\n"
		       "memcache timeout 100\nmemcache backoff 5\n"
		       "throttle store memcache\n"
		       "listen on 127.0.0.1 port 143 imap\n");
	assert_non_null(c);
	assert_int_equal(c->memcache.nservers, 2);
	assert_in(&c->memcache.servers[0], "127.0.0.1", 11211);
	assert_in6(&c->memcache.servers[1], "::1", 11311);
	assert_int_equal(c->memcache.timeout_ms, 100);
	assert_int_equal(c->memcache.backoff_s, 5);
	assert_int_equal(c->policy.shared, 1);
	free_config(c);
	/* a shared store needs a server; bounds are checked */
	expect_error("throttle store memcache\n"
		     "listen on 127.0.0.1 port 143 imap\n");
	expect_error("memcache timeout 5\nlisten on 127.0.0.1 port 143 imap\n");
	expect_error("memcache backoff 1\nlisten on 127.0.0.1 port 143 imap\n");
	expect_error("memcache server \"127.0.0.1\" port 70000\n"
		     "listen on 127.0.0.1 port 143 imap\n");
	expect_error("throttle store redis\nlisten on 127.0.0.1 port 143 "
		     "imap\n");
}

static void
test_routing(void **state)
{
	struct postern_conf *c;
	const char *base = "upstream \"a\" {\n\thost 127.0.0.1\n"
			   "\timap port 1143\n}\n"
			   "upstream \"b\" {\n\thost 127.0.0.1\n"
			   "\timap port 1144\n}\n"
			   "listen on 127.0.0.1 port 143 imap\n";
	char text[2048];

	(void)state;
	snprintf(text, sizeof(text),
	    "%spool \"p\" {\n\tupstream \"a\"\n\tupstream \"b\"\n"
	    "\tbalance client-ip\n\tmax-fails 3\n\tfail-timeout 9\n"
	    "\tproxy-protocol\n}\nroute default to \"p\"\n"
	    "lookup handler \"http://127.0.0.1:8080/x\"\n"
	    "lookup handler \"http://[::1]/\"\nlookup timeout 700\n"
	    "lookup retry 5\nlookup cache 60\nlookup pass-password\n"
	    "upstream network \"10.0.0.0/8\" port 143\n"
	    "relay processes 3\n",
	    base);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->lookup.nhandlers, 2);
	assert_in(&c->lookup.handlers[0].addr, "127.0.0.1", 8080);
	assert_string_equal(c->lookup.handlers[0].host, "127.0.0.1:8080");
	assert_string_equal(c->lookup.handlers[0].path, "/x");
	assert_in6(&c->lookup.handlers[1].addr, "::1", 80);
	assert_string_equal(c->lookup.handlers[1].host, "[::1]");
	assert_string_equal(c->lookup.handlers[1].path, "/");
	assert_int_equal(c->lookup.timeout_ms, 700);
	assert_int_equal(c->lookup.retry_s, 5);
	assert_int_equal(c->lookup.cache_ttl, 60);
	assert_int_equal(c->lookup.pass_password, 1);
	assert_int_equal(c->lookup.nnetworks, 1);
	assert_int_equal(c->lookup.networks[0].port, 143);
	assert_int_equal(c->global.relays, 3);
	assert_non_null(TAILQ_FIRST(&c->pools));
	assert_int_equal(TAILQ_FIRST(&c->pools)->conf.nmembers, 2);
	assert_int_equal(TAILQ_FIRST(&c->pools)->conf.balance, POOL_CLIENT_IP);
	assert_int_equal(TAILQ_FIRST(&c->pools)->conf.max_fails, 3);
	assert_int_equal(TAILQ_FIRST(&c->pools)->conf.proxy_v2, 1);
	free_config(c);
	/* handlers need networks; names are unique; members once */
	snprintf(text, sizeof(text), "%slookup handler \"http://127.0.0.1/\"\n",
	    base);
	expect_error(text);
	snprintf(text, sizeof(text), "%spool \"a\" {\n\tupstream \"b\"\n}\n",
	    base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%spool \"p\" {\n\tupstream \"b\"\n\tupstream \"b\"\n}\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%spool \"p\" {\n}\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%slookup handler \"ftp://x/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"http://127.0.0.1:0/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%slookup handler \"http:///x\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%srelay processes %d\n", base,
	    MAX_RELAYS + 1);
	expect_error(text);
	snprintf(text, sizeof(text), "%sroute default to \"nowhere\"\n", base);
	expect_error(text);
}

/* https:// lookup handlers, with their "tls ca" and "tls name". */
static void
test_lookup_https(void **state)
{
	struct postern_conf *c;
	const char *base = "listen on 127.0.0.1 port 143 imap\n"
			   "upstream network \"10.0.0.0/8\"\n";
	char text[2048], ca[] = "/tmp/postern-test-ca.XXXXXX";
	const struct conf_lookup_handler *h;
	int fd;

	(void)state;
	fd = mkstemp(ca);
	assert_true(fd != -1);
	assert_int_equal(close(fd), 0);
	snprintf(text, sizeof(text),
	    "%slookup handler "
	    "\"https://127.0.0.1:7072/service/extension/nginx-lookup\" "
	    "tls ca \"%s\"\n"
	    "lookup handler \"http://127.0.0.1:443/plain\"\n"
	    "lookup handler \"https://127.0.0.1:443/\" tls name "
	    "\"lookup.example.org\" tls ca \"%s\"\n"
	    "lookup handler \"https://[::1]:8443\" tls ca \"%s\" "
	    "tls name lookup.internal\n",
	    base, ca, ca, ca);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->lookup.nhandlers, 4);
	h = &c->lookup.handlers[0];
	assert_int_equal(h->tls, 1);
	assert_in(&h->addr, "127.0.0.1", 7072);
	assert_string_equal(h->host, "127.0.0.1:7072");
	assert_string_equal(h->path, "/service/extension/nginx-lookup");
	assert_string_equal(h->servername, "127.0.0.1"); /* the URL's host */
	assert_string_equal(h->ca, ca);
	/* 443 is only the default port of https */
	h = &c->lookup.handlers[1];
	assert_int_equal(h->tls, 0);
	assert_string_equal(h->host, "127.0.0.1:443");
	assert_string_equal(h->servername, "");
	assert_string_equal(h->ca, "");
	h = &c->lookup.handlers[2];
	assert_int_equal(h->tls, 1);
	assert_in(&h->addr, "127.0.0.1", 443);
	assert_string_equal(h->host, "127.0.0.1");
	assert_string_equal(h->path, "/");
	assert_string_equal(h->servername, "lookup.example.org");
	h = &c->lookup.handlers[3];
	assert_in6(&h->addr, "::1", 8443);
	assert_string_equal(h->host, "[::1]:8443");
	assert_string_equal(h->servername, "lookup.internal");
	free_config(c);

	/* no "tls ca": the system's bundle, if this system has one */
	snprintf(text, sizeof(text), "%slookup handler \"https://[::1]/x\"\n",
	    base);
	if (access(tls_default_ca_cert_file(), R_OK) == 0) {
		c = parse_text(text);
		assert_non_null(c);
		h = &c->lookup.handlers[0];
		assert_int_equal(h->tls, 1);
		assert_in6(&h->addr, "::1", 443);
		assert_string_equal(h->host, "[::1]");
		assert_string_equal(h->servername, "::1");
		assert_string_equal(h->ca, "");
		free_config(c);
	}

	/* tls options are for https:// handlers, and must make sense */
	snprintf(text, sizeof(text),
	    "%slookup handler \"http://127.0.0.1/\" tls ca \"%s\"\n", base, ca);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"http://127.0.0.1/\" tls name x\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca relative.pem\n",
	    base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca "
	    "\"/nonexistent/ca.pem\"\n",
	    base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca \"%s\" "
	    "tls name \"\"\n",
	    base, ca);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca \"%s\" "
	    "tls name \"a b\"\n",
	    base, ca);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls no-verify\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca \"%s\" tls\n", base,
	    ca);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca \"%s\" "
	    "timeout 5\n",
	    base, ca);
	expect_error(text);
	/* malformed URLs */
	snprintf(text, sizeof(text), "%slookup handler \"https://\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%slookup handler \"https:/127.0.0.1/\"\n",
	    base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1:/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1:+443/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1:65536/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://u@127.0.0.1/\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/a b\"\n", base);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%slookup handler \"HTTPS://127.0.0.1/\"\n", base);
	expect_error(text);
	/* the next line's options belong to no handler */
	snprintf(text, sizeof(text),
	    "%slookup handler \"https://127.0.0.1/\" tls ca \"%s\"\n"
	    "tls name x\n",
	    base, ca);
	expect_error(text);
	assert_int_equal(unlink(ca), 0);
}

/* "tls processes": 1 by default, 1 to MAX_TLSPROCS, given once. */
static void
test_tls_processes(void **state)
{
	struct postern_conf *c;
	const char *base = "listen on 127.0.0.1 port 143 imap\n";
	char text[512];

	(void)state;
	c = parse_text(base);
	assert_non_null(c);
	assert_int_equal(c->global.tlsprocs, 1);
	free_config(c);
	snprintf(text, sizeof(text), "%stls processes 3\n", base);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->global.tlsprocs, 3);
	free_config(c);
	snprintf(text, sizeof(text), "%stls processes %d\n", base,
	    MAX_TLSPROCS);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->global.tlsprocs, MAX_TLSPROCS);
	free_config(c);
	snprintf(text, sizeof(text), "%stls processes 0\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%stls processes %d\n", base,
	    MAX_TLSPROCS + 1);
	expect_error(text);
	snprintf(text, sizeof(text), "%stls processes -1\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%stls processes\n", base);
	expect_error(text);
	snprintf(text, sizeof(text), "%stls processes 2\ntls processes 2\n",
	    base);
	expect_error(text);
	/* a duplicate in one file does not poison the next parse */
	snprintf(text, sizeof(text), "%stls processes 2\n", base);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->global.tlsprocs, 2);
	free_config(c);
}

/* The web side's grammar: listeners, modes, limits, routing, logs. */
static void
test_http(void **state)
{
	struct postern_conf *c;
	struct listener *l;
	struct upstream *u;
	const char *base = "upstream w1 {\n\thost 192.0.2.10\n\thttp port "
			   "8080\n}\n"
			   "pool web {\n\tupstream w1\n}\n";
	char text[2048];

	(void)state;
	snprintf(text, sizeof(text),
	    "%slisten on 127.0.0.1 port 80 http mode redirect port 8443\n"
	    "listen on 127.0.0.1 port 81 http mode https\n"
	    "http fallback to web\nhttp lookup-failure error\n"
	    "http route-by basic cookie\nhttp path-prefix \"/u/\"\n"
	    "http auth-cookie ZM_ADMIN_AUTH_TOKEN\nhttp upstream-keep 8\n"
	    "timeout http-header 5\ntimeout http-idle 7\n"
	    "timeout http-response 900\nlimit http-header 2048\n"
	    "limit http-body 1000\naccess log file \"/tmp/a.log\"\n"
	    "access log query\ntls ciphers secure\n",
	    base);
	c = parse_text(text);
	assert_non_null(c);
	l = TAILQ_FIRST(&c->listeners);
	assert_int_equal(l->conf.proto, PROTO_HTTP);
	assert_int_equal(l->conf.http_mode, HTTP_MODE_REDIRECT);
	assert_int_equal(l->conf.redirect_port, 8443);
	assert_int_equal(TAILQ_NEXT(l, entry)->conf.http_mode, HTTP_MODE_HTTPS);
	u = TAILQ_FIRST(&c->upstreams);
	assert_int_equal(u->conf.has_http, 1);
	assert_in(&u->conf.http, "192.0.2.10", 8080);
	assert_int_equal(c->http.fallback_id, TAILQ_FIRST(&c->pools)->conf.id);
	assert_int_equal(c->http.lookup_fail_503, 1);
	assert_int_equal(c->http.route.use_path, 0);
	assert_int_equal(c->http.route.use_basic, 1);
	assert_int_equal(c->http.route.use_cookie, 1);
	assert_int_equal(c->http.route.nprefixes, 1);
	assert_string_equal(c->http.route.prefixes[0], "/u/");
	assert_string_equal(c->http.route.cookie, "ZM_ADMIN_AUTH_TOKEN");
	assert_int_equal(c->http.upstream_keep, 8);
	assert_int_equal(c->http.timeout_header, 5);
	assert_int_equal(c->http.timeout_idle, 7);
	assert_int_equal(c->http.timeout_response, 900);
	assert_int_equal(c->http.max_head, 2048);
	assert_int_equal(c->http.max_body, 1000);
	assert_string_equal(c->access_path, "/tmp/a.log");
	assert_int_equal(c->http.access_query, 1);
	assert_string_equal(c->tls.ciphers, "secure");
	free_config(c);
	/* defaults */
	c = parse_text("listen on 127.0.0.1 port 80 http\n");
	assert_non_null(c);
	assert_int_equal(c->http.max_head, 8192);
	assert_int_equal(c->http.timeout_response, 3600);
	assert_int_equal(c->http.route.nprefixes, 6);
	assert_int_equal(c->http.route.use_path, 1);
	free_config(c);
	/* refused */
	expect_error("listen on 127.0.0.1 port 80 http keypair x\n");
	expect_error("listen on 127.0.0.1 port 143 imap mode redirect\n");
	expect_error("listen on 127.0.0.1 port 143 imap hsts\n");
	expect_error("listen on 127.0.0.1 port 80 http\nhttp fallback to "
		     "nope\n");
	expect_error("listen on 127.0.0.1 port 80 http\nlimit http-header "
		     "99\n");
	expect_error("listen on 127.0.0.1 port 80 http\nhttp path-prefix x\n");
	expect_error("listen on 127.0.0.1 port 80 http\n"
		     "http auth-cookie \"a b\"\n");
}

static void
test_form_logins(void **state)
{
	struct postern_conf *c;
	const char *listen = "listen on 127.0.0.1 port 80 http\n";
	char text[1024];

	(void)state;
	snprintf(text, sizeof(text), "%s", listen);
	c = parse_text(text);
	assert_non_null(c);
	/* Zimbra's: the SOAP servlet's whole path, the admin's, the page */
	assert_int_equal(c->http.nforms, 4);
	assert_string_equal(c->http.forms[0].path, "/service/soap");
	assert_int_equal(c->http.forms[0].prefix, 1);
	assert_string_equal(c->http.forms[0].marker, "AuthRequest");
	assert_string_equal(c->http.forms[3].path, "/");
	assert_int_equal(c->http.forms[3].prefix, 0);
	assert_string_equal(c->http.forms[3].marker, "");
	free_config(c);
	snprintf(text, sizeof(text),
	    "%shttp form-login POST \"/api//v1/./login\" field \"login\"\n"
	    "http form-login POST \"/rpc/*\" marker Login field email\n",
	    listen);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->http.nforms, 2);
	/* kept as requests' paths are compared */
	assert_string_equal(c->http.forms[0].path, "/api/v1/login");
	assert_string_equal(c->http.forms[1].path, "/rpc");
	assert_int_equal(c->http.forms[1].prefix, 1);
	assert_string_equal(c->http.forms[1].marker, "Login");
	assert_string_equal(c->http.forms[1].field, "email");
	/* a padded login must not pass uncounted unless asked */
	assert_int_equal(c->http.soap_oversize_refuse, 1);
	assert_int_equal(c->http.soap_scan_max, HTTP_SCAN_DEFAULT);
	free_config(c);
	snprintf(text, sizeof(text),
	    "%shttp form-login oversize pass\nhttp form-login scan 65536\n",
	    listen);
	c = parse_text(text);
	assert_non_null(c);
	assert_int_equal(c->http.soap_oversize_refuse, 0);
	assert_int_equal(c->http.soap_scan_max, 65536);
	/* the defaults stay: the settings are no form login */
	assert_int_equal(c->http.nforms, 4);
	free_config(c);
	snprintf(text, sizeof(text), "%shttp form-login scan 1023\n", listen);
	expect_error(text);
	snprintf(text, sizeof(text), "%shttp form-login scan %d\n", listen,
	    HTTP_SCAN_LIMIT_MAX + 1);
	expect_error(text);
	snprintf(text, sizeof(text), "%shttp form-login oversize maybe\n",
	    listen);
	expect_error(text);
	snprintf(text, sizeof(text), "%shttp form-login POST \"/a*\" field u\n",
	    listen);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%shttp form-login POST \"/a/*/b\" field u\n", listen);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%shttp form-login POST \"/../a\" field u\n", listen);
	expect_error(text);
	snprintf(text, sizeof(text),
	    "%shttp form-login POST \"/a\" marker \"a b\" field u\n", listen);
	expect_error(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_config),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_no_final_newline),
	    cmocka_unit_test(test_line_continuation),
	    cmocka_unit_test(test_undefined_upstream),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_same_port_other_address),
	    cmocka_unit_test(test_bad_port),
	    cmocka_unit_test(test_timeout_range),
	    cmocka_unit_test(test_limit_range),
	    cmocka_unit_test(test_bad_strings),
	    cmocka_unit_test(test_upstream_errors),
	    cmocka_unit_test(test_no_listeners),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_reparse),
	    cmocka_unit_test(test_example_config),
	    cmocka_unit_test(test_memcache),
	    cmocka_unit_test(test_routing),
	    cmocka_unit_test(test_tls_processes),
	    cmocka_unit_test(test_lookup_https),
	    cmocka_unit_test(test_http),
	    cmocka_unit_test(test_form_logins),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
