/*
 * Reading a lookup handler's answer (nginx auth_http) and escaping what
 * relay sends it: hostile and malformed headers must make the answer
 * invalid, never half-used.
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

#include "authhttp.h"

static enum authhttp_status
answer(struct authhttp_reply *r, const char *const *hdrs)
{
	authhttp_reply_init(r);
	for (; hdrs[0] != NULL; hdrs += 2)
		authhttp_reply_header(r, hdrs[0], hdrs[1]);
	return authhttp_reply_finish(r);
}

static void
test_route_answer(void **state)
{
	static const char *const ok[] = {"Auth-Status", "OK", "Auth-Server",
	    "192.0.2.10", "Auth-Port", "143", "Date", "whenever", NULL};
	static const char *const alias[] = {"auth-status", "OK", "AUTH-SERVER",
	    "2001:db8::5", "Auth-Port", "110", "Auth-User", "real@example.org",
	    NULL};
	struct authhttp_reply r;
	const struct sockaddr_in *sin = (const void *)&r.server;
	const struct sockaddr_in6 *sin6 = (const void *)&r.server;
	char buf[64];

	(void)state;
	assert_int_equal(answer(&r, ok), AUTHHTTP_OK);
	assert_int_equal(r.server.ss_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 143);
	inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.10");
	assert_string_equal(r.user, "");
	assert_int_equal(answer(&r, alias), AUTHHTTP_OK);
	assert_int_equal(r.server.ss_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 110);
	assert_string_equal(r.user, "real@example.org");
}

static void
test_refusal(void **state)
{
	static const char *const no[] = {"Auth-Status",
	    "Invalid login or password", "Auth-Wait", "3", "Auth-Error-Code",
	    "535", NULL};
	static const char *const longwait[] = {"Auth-Status", "Go away",
	    "Auth-Wait", "99999", NULL};
	struct authhttp_reply r;

	(void)state;
	assert_int_equal(answer(&r, no), AUTHHTTP_REFUSED);
	assert_string_equal(r.text, "Invalid login or password");
	assert_int_equal(r.wait, 3);
	assert_string_equal(r.error_code, "535");
	assert_int_equal(answer(&r, longwait), AUTHHTTP_REFUSED);
	assert_int_equal(r.wait, AUTHHTTP_WAIT_MAX);
}

static void
test_hostile_answers(void **state)
{
	const char *const *bad[] = {
	    /* no status at all */
	    (const char *const[]){"Auth-Server", "192.0.2.1", "Auth-Port",
		"143", NULL},
	    /* a host name, not an address: relay never resolves */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"mail.example.org", "Auth-Port", "143", NULL},
	    /* OK without a port, port 0, port too big, port not a number */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "0", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "65536", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "14x3", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "99999999999999999999", NULL},
	    /* a second status or server: which one would be meant? */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Status", "No",
		"Auth-Server", "192.0.2.1", "Auth-Port", "143", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Server", "192.0.2.2", "Auth-Port", "143",
		NULL},
	    /* control bytes in the account or the message */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "143", "Auth-User", "a\r\nb", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"192.0.2.1", "Auth-Port", "143", "Auth-User", "a b", NULL},
	    (const char *const[]){"Auth-Status", "No\x1b[2J", NULL},
	    (const char *const[]){"Auth-Status", "", NULL},
	    (const char *const[]){"Auth-Status", "No", "Auth-Wait", "-1", NULL},
	    NULL,
	};
	struct authhttp_reply r;
	char huge[2048];
	int i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++)
		assert_int_equal(answer(&r, bad[i]), AUTHHTTP_INVALID);
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	authhttp_reply_init(&r);
	authhttp_reply_header(&r, "Auth-Status", huge);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_INVALID);
	/* an account longer than a user name may be */
	huge[300] = '\0';
	authhttp_reply_init(&r);
	authhttp_reply_header(&r, "Auth-Status", "OK");
	authhttp_reply_header(&r, "Auth-Server", "192.0.2.1");
	authhttp_reply_header(&r, "Auth-Port", "143");
	authhttp_reply_header(&r, "Auth-User", huge);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_INVALID);
}

static void
test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(authhttp_escape(out, sizeof(out), "plain@example.org"),
	    17);
	assert_string_equal(out, "plain@example.org");
	assert_true(authhttp_escape(out, sizeof(out), "a b\r\nX-Evil: 1%") > 0);
	assert_string_equal(out, "a%20b%0D%0AX-Evil:%201%25");
	assert_true(authhttp_escape(out, sizeof(out), "\xc3\xa9\x7f") > 0);
	assert_string_equal(out, "%C3%A9%7F");
	/* never a cut value */
	assert_int_equal(authhttp_escape(out, 5, "abcd"), 4);
	assert_int_equal(authhttp_escape(out, 5, "abcde"), 0);
	assert_int_equal(authhttp_escape(out, 5, "ab c"), 0);
}

/* The configured names, as relay would know them. */
static int
known(const char *name)
{
	return strcmp(name, "stores") == 0 || strcmp(name, "store-tls") == 0 ||
	    strcmp(name, "192.0.2.77") == 0;
}

static enum authhttp_status
answer_named(struct authhttp_reply *r, const char *const *hdrs)
{
	authhttp_reply_init(r);
	r->name_known = known;
	for (; hdrs[0] != NULL; hdrs += 2)
		authhttp_reply_header(r, hdrs[0], hdrs[1]);
	return authhttp_reply_finish(r);
}

/* Auth-Server may name a configured upstream or pool instead. */
static void
test_named_answer(void **state)
{
	static const char *const pool[] = {"Auth-Status", "OK", "Auth-Server",
	    "stores", "Auth-Port", "7143", NULL};
	static const char *const noport[] = {"Auth-Status", "OK", "Auth-Server",
	    "store-tls", "Auth-User", "real@example.org", NULL};
	static const char *const addr[] = {"Auth-Status", "OK", "Auth-Server",
	    "192.0.2.10", "Auth-Port", "143", NULL};
	/* an upstream named like an address: the name wins */
	static const char *const addrname[] = {"Auth-Status", "OK",
	    "Auth-Server", "192.0.2.77", "Auth-Port", "143", NULL};
	const char *const *const bad[] = {
	    /* not configured: never resolved, never guessed */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"elsewhere", "Auth-Port", "143", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server", "Stores",
		"Auth-Port", "143", NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server", "",
		"Auth-Port", "143", NULL},
	    /* a space or a control byte: no name */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server", "stores ",
		NULL},
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server",
		"stores\r\n", NULL},
	    /* a malformed port still spoils the answer */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server", "stores",
		"Auth-Port", "x", NULL},
	    /* two servers */
	    (const char *const[]){"Auth-Status", "OK", "Auth-Server", "stores",
		"Auth-Server", "store-tls", NULL},
	    NULL,
	};
	struct authhttp_reply r;
	int i;

	(void)state;
	assert_int_equal(answer_named(&r, pool), AUTHHTTP_OK);
	assert_true(r.named);
	assert_string_equal(r.server_text, "stores");
	assert_int_equal(answer_named(&r, noport), AUTHHTTP_OK);
	assert_true(r.named);
	assert_string_equal(r.server_text, "store-tls");
	assert_string_equal(r.user, "real@example.org");
	assert_int_equal(answer_named(&r, addr), AUTHHTTP_OK);
	assert_false(r.named);
	assert_int_equal(r.server.ss_family, AF_INET);
	assert_int_equal(answer_named(&r, addrname), AUTHHTTP_OK);
	assert_true(r.named);
	for (i = 0; bad[i] != NULL; i++)
		assert_int_equal(answer_named(&r, bad[i]), AUTHHTTP_INVALID);
	/* without the caller's list, a name is never taken */
	assert_int_equal(answer(&r, pool), AUTHHTTP_INVALID);
	/* a refusal is a refusal, whatever it names */
	static const char *const no[] = {"Auth-Status", "Nope", "Auth-Server",
	    "stores", NULL};
	assert_int_equal(answer_named(&r, no), AUTHHTTP_REFUSED);
	assert_false(r.named);
}

/* Fields from a parsed head: not NUL-terminated, bounded, no NUL. */
static void
test_reply_field(void **state)
{
	static const char head[] = "Auth-StatusOKAuth-Server192.0.2.1x";
	struct authhttp_reply r;
	char big[AUTHHTTP_VALUE_MAX + 2], longname[80];

	(void)state;
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, head, 11, head + 11, 2);
	authhttp_reply_field(&r, head + 13, 11, head + 24, 9);
	authhttp_reply_field(&r, "Auth-Port", 9, "143", 3);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_OK);
	assert_string_equal(r.server_text, "192.0.2.1");
	/* a NUL inside would cut the value short */
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, "Auth-Status", 11, "OK", 2);
	authhttp_reply_field(&r, "Auth-Server", 11, "192.0.2.1\0junk", 14);
	authhttp_reply_field(&r, "Auth-Port", 9, "143", 3);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_INVALID);
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, "Auth-Status\0x", 13, "OK", 2);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_INVALID);
	/* too long a value, of any field */
	memset(big, 'a', sizeof(big));
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, "Auth-Status", 11, "No", 2);
	authhttp_reply_field(&r, "X-Other", 7, big, AUTHHTTP_VALUE_MAX + 1);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_INVALID);
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, "Auth-Status", 11, "No", 2);
	authhttp_reply_field(&r, "X-Other", 7, big, AUTHHTTP_VALUE_MAX);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_REFUSED);
	/* a name longer than any of ours is someone else's */
	memset(longname, 'X', sizeof(longname));
	authhttp_reply_init(&r);
	authhttp_reply_field(&r, "Auth-Status", 11, "No", 2);
	authhttp_reply_field(&r, longname, sizeof(longname), "v", 1);
	assert_int_equal(authhttp_reply_finish(&r), AUTHHTTP_REFUSED);
}

#define CHECK "0123456789abcdef"

static int
parse(const char *v, struct authhttp_route *rt)
{
	return authhttp_cache_parse(v, strlen(v), CHECK, rt);
}

/* The route cache's values: both versions round trip. */
static void
test_cache_values(void **state)
{
	struct authhttp_route rt, back;
	struct sockaddr_in *sin = (struct sockaddr_in *)&rt.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rt.addr;
	char buf[512];
	int n;

	(void)state;
	memset(&rt, 0, sizeof(rt));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(7143);
	inet_pton(AF_INET, "10.0.0.5", &sin->sin_addr);
	snprintf(rt.account, sizeof(rt.account), "user@example.org");
	rt.proto = 1;
	n = authhttp_cache_format(buf, sizeof(buf), CHECK "ffff", &rt);
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf,
	    "3 " CHECK " imap 10.0.0.5 7143 user@example.org");
	assert_int_equal(parse(buf, &back), 0);
	assert_false(back.named);
	assert_int_equal(back.proto, 1);
	assert_int_equal(back.addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&back.addr)->sin_port),
	    7143);
	assert_string_equal(back.account, "user@example.org");

	memset(&rt, 0, sizeof(rt));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(993);
	inet_pton(AF_INET6, "2001:db8::5", &sin6->sin6_addr);
	snprintf(rt.account, sizeof(rt.account), "j\xc3\xb6rg@example.org");
	rt.proto = 3;
	assert_true(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt) > 0);
	assert_string_equal(buf,
	    "3 " CHECK " http 2001:db8::5 993 j\xc3\xb6rg@example.org");
	assert_int_equal(parse(buf, &back), 0);
	assert_int_equal(back.addr.ss_family, AF_INET6);
	assert_int_equal(back.proto, 3);
	/* an address without its protocol is not written */
	rt.proto = 0;
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt),
	    -1);
	rt.proto = 4;
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt),
	    -1);

	memset(&rt, 0, sizeof(rt));
	rt.named = 1;
	snprintf(rt.name, sizeof(rt.name), "stores");
	snprintf(rt.account, sizeof(rt.account), "u@example.org");
	assert_true(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt) > 0);
	assert_string_equal(buf, "2 " CHECK " stores u@example.org");
	assert_int_equal(parse(buf, &back), 0);
	assert_true(back.named);
	assert_string_equal(back.name, "stores");
	assert_string_equal(back.account, "u@example.org");

	/* what the value cannot hold is not written */
	snprintf(rt.account, sizeof(rt.account), "a b");
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt),
	    -1);
	snprintf(rt.account, sizeof(rt.account), "a");
	snprintf(rt.name, sizeof(rt.name), "my pool");
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt),
	    -1);
	rt.named = 0;
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), CHECK, &rt),
	    -1); /* no address */
	assert_int_equal(authhttp_cache_format(buf, 10, CHECK, &rt), -1);
	rt.named = 1;
	snprintf(rt.name, sizeof(rt.name), "stores");
	assert_int_equal(authhttp_cache_format(buf, 10, CHECK, &rt), -1);
	assert_int_equal(authhttp_cache_format(buf, sizeof(buf), "0123", &rt),
	    -1);
}

/* Anything but one well-formed value for this key is no route. */
static void
test_cache_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "1",
	    "2 " CHECK " stores",
	    "3 " CHECK " imap 10.0.0.5 143",
	    /* another key's check, or a short one */
	    "3 0123456789abcdee imap 10.0.0.5 143 u",
	    "2 0123456789ABCDEF stores u",
	    "3 0123456789abcde imap 10.0.0.5 143 u",
	    "3 0123456789abcdef0 imap 10.0.0.5 143 u",
	    /* spacing */
	    " 3 " CHECK " imap 10.0.0.5 143 u",
	    "3 " CHECK " imap 10.0.0.5 143 u ",
	    "3  " CHECK " imap 10.0.0.5 143 u",
	    "3 " CHECK "  imap 10.0.0.5 143 u",
	    "1\t" CHECK " 10.0.0.5 143 u",
	    "3 " CHECK " imap 10.0.0.5 143 u\r\n",
	    /* fields too many, or of the other version */
	    "3 " CHECK " imap 10.0.0.5 143 u extra",
	    "2 " CHECK " stores u extra",
	    "2 " CHECK " 10.0.0.5 143 u",
	    "1 " CHECK " stores u",
	    "3 " CHECK " stores u",
	    "11 " CHECK " stores u",
	    /* addresses and ports */
	    "3 " CHECK " imap mail.example.org 143 u",
	    "3 " CHECK " imap 10.0.0.256 143 u",
	    "3 " CHECK " imap 10.0.0.5 0 u",
	    "3 " CHECK " imap 10.0.0.5 65536 u",
	    "3 " CHECK " imap 10.0.0.5 0143 u",
	    "3 " CHECK " imap 10.0.0.5 +143 u",
	    "3 " CHECK " imap 10.0.0.5 14x u",
	    "3 " CHECK " imap 10.0.0.5 999999 u",
	    /* the protocol of an address route */
	    "1 " CHECK " 10.0.0.5 143 u",
	    "3 " CHECK " 10.0.0.5 143 u",
	    "3 " CHECK " smtp 10.0.0.5 143 u",
	    "3 " CHECK " IMAP 10.0.0.5 143 u",
	    "3 " CHECK " imap4 10.0.0.5 143 u",
	    /* names and accounts with control bytes */
	    "2 " CHECK " sto\x01res u",
	    "2 " CHECK " stores u\x7f",
	    "2 " CHECK " st\xc3\xb6res u",
	    NULL,
	};
	struct authhttp_route rt;
	char v[600];
	int i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++)
		if (parse(bad[i], &rt) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	/* a NUL inside: the length says more than the string */
	assert_int_equal(authhttp_cache_parse("2 " CHECK " stores u\0x",
			     sizeof("2 " CHECK " stores u\0x") - 1, CHECK, &rt),
	    -1);
	/* a name one byte too long, an account one byte too long */
	snprintf(v, sizeof(v), "2 " CHECK " %0*d u", AUTHHTTP_NAME_MAX + 1, 0);
	assert_int_equal(parse(v, &rt), -1);
	snprintf(v, sizeof(v), "2 " CHECK " %0*d u", AUTHHTTP_NAME_MAX, 0);
	assert_int_equal(parse(v, &rt), 0);
	snprintf(v, sizeof(v), "2 " CHECK " s %0*d", AUTHHTTP_USER_MAX + 1, 0);
	assert_int_equal(parse(v, &rt), -1);
	snprintf(v, sizeof(v), "2 " CHECK " s %0*d", AUTHHTTP_USER_MAX, 0);
	assert_int_equal(parse(v, &rt), 0);
	/* the extremes that are fine */
	assert_int_equal(parse("3 " CHECK " pop3 10.0.0.5 65535 u", &rt), 0);
	assert_int_equal(parse("3 " CHECK " http 10.0.0.5 1 u", &rt), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route_answer),
	    cmocka_unit_test(test_refusal),
	    cmocka_unit_test(test_hostile_answers),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_named_answer),
	    cmocka_unit_test(test_reply_field),
	    cmocka_unit_test(test_cache_values),
	    cmocka_unit_test(test_cache_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
