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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route_answer),
	    cmocka_unit_test(test_refusal),
	    cmocka_unit_test(test_hostile_answers),
	    cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
