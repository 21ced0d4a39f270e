/*
 * The pre-auth POP3 parser: a keyword and the rest of the line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "authproc.h"

#define MAX_LINE 512

static struct pop3_command cmd;

static enum pop3_parse_status
parse(const char *in, size_t len)
{
	memset(&cmd, 0x5a, sizeof(cmd));
	return pop3_parse(in, len, MAX_LINE, &cmd);
}

static enum pop3_parse_status
parse_str(const char *in)
{
	return parse(in, strlen(in));
}

static void
expect_ok(const char *in, const char *name, const char *arg, int hasarg)
{
	assert_int_equal(parse_str(in), POP3_PARSE_OK);
	assert_string_equal(cmd.name, name);
	assert_string_equal(cmd.arg, arg);
	assert_int_equal(cmd.hasarg, hasarg);
	assert_int_equal(cmd.consumed, strlen(in));
}

static void
expect_bad(const char *in, size_t len, size_t consumed)
{
	assert_int_equal(parse(in, len), POP3_PARSE_BAD);
	assert_int_equal(cmd.consumed, consumed);
}

static void
test_user_pass(void **state)
{
	(void)state;
	expect_ok("USER bob@example.com\r\n", "USER", "bob@example.com", 1);
	expect_ok("PASS s3cret\r\n", "PASS", "s3cret", 1);
}

static void
test_password_with_spaces(void **state)
{
	(void)state;
	/* the rest of the line is the argument, spaces and all */
	expect_ok("PASS correct horse battery staple\r\n", "PASS",
	    "correct horse battery staple", 1);
	expect_ok("PASS  leading\r\n", "PASS", " leading", 1);
	expect_ok("PASS trailing \r\n", "PASS", "trailing ", 1);
	expect_ok("PASS \r\n", "PASS", "", 1);
	expect_ok("PASS \t\x01\xff\r\n", "PASS", "\t\x01\xff", 1);
}

static void
test_no_arg_commands(void **state)
{
	(void)state;
	expect_ok("CAPA\r\n", "CAPA", "", 0);
	expect_ok("QUIT\r\n", "QUIT", "", 0);
	expect_ok("STLS\r\n", "STLS", "", 0);
	expect_ok("NOOP\r\n", "NOOP", "", 0);
	expect_ok("AUTH\r\n", "AUTH", "", 0);
}

static void
test_auth_plain_initial_response(void **state)
{
	(void)state;
	expect_ok("AUTH PLAIN AGJvYgBzM2NyZXQ=\r\n", "AUTH",
	    "PLAIN AGJvYgBzM2NyZXQ=", 1);
	expect_ok("AUTH PLAIN =\r\n", "AUTH", "PLAIN =", 1);
}

static void
test_case_insensitive(void **state)
{
	(void)state;
	expect_ok("user Bob\r\n", "USER", "Bob", 1);
	expect_ok("cApA\r\n", "CAPA", "", 0);
	expect_ok("Auth plain\r\n", "AUTH", "plain", 1);
}

static void
test_lf_only(void **state)
{
	(void)state;
	expect_ok("CAPA\n", "CAPA", "", 0);
	expect_ok("USER bob\n", "USER", "bob", 1);
}

static void
test_pipelined(void **state)
{
	const char *in = "USER bob\r\nPASS x y\r\nQUIT\r\n";
	size_t off = 0;

	(void)state;
	assert_int_equal(parse_str(in), POP3_PARSE_OK);
	assert_string_equal(cmd.name, "USER");
	off += cmd.consumed;
	assert_int_equal(parse_str(in + off), POP3_PARSE_OK);
	assert_string_equal(cmd.name, "PASS");
	assert_string_equal(cmd.arg, "x y");
	off += cmd.consumed;
	assert_int_equal(parse_str(in + off), POP3_PARSE_OK);
	assert_string_equal(cmd.name, "QUIT");
	off += cmd.consumed;
	assert_int_equal(off, strlen(in));
}

static void
test_nul_and_cr_inside(void **state)
{
	(void)state;
	expect_bad("PASS a\0b\r\n", 10, 10);
	expect_bad("US\0R bob\r\n", 10, 10);
	expect_bad("PASS a\rb\r\n", 10, 10);
	expect_bad("PASS a\r\r\n", 9, 9);
	expect_bad("\0\n", 2, 2);
}

static void
test_bad_keyword(void **state)
{
	(void)state;
	expect_bad("US3R bob\r\n", 10, 10);
	expect_bad("US-R bob\r\n", 10, 10);
	expect_bad(" USER bob\r\n", 11, 11);
	expect_bad("\r\n", 2, 2);
	expect_bad("\n", 1, 1);
	expect_bad("\xc3\x9cSER bob\r\n", 11, 11);
	/* keywords are at most seven letters here */
	expect_bad("ABCDEFGH\r\n", 10, 10);
	assert_int_equal(parse_str("ABCDEFG\r\n"), POP3_PARSE_OK);
	assert_string_equal(cmd.name, "ABCDEFG");
}

static void
test_bad_then_good(void **state)
{
	const char *in = "U$ER bob\r\nCAPA\r\n";

	(void)state;
	assert_int_equal(parse_str(in), POP3_PARSE_BAD);
	assert_int_equal(cmd.consumed, 10);
	assert_int_equal(parse_str(in + cmd.consumed), POP3_PARSE_OK);
	assert_string_equal(cmd.name, "CAPA");
}

static void
test_incomplete(void **state)
{
	(void)state;
	assert_int_equal(parse_str(""), POP3_PARSE_INCOMPLETE);
	assert_int_equal(parse_str("USER"), POP3_PARSE_INCOMPLETE);
	assert_int_equal(parse_str("USER bob\r"), POP3_PARSE_INCOMPLETE);
	/* an unfinished line is not judged yet, even if already wrong */
	assert_int_equal(parse_str("U$ER"), POP3_PARSE_INCOMPLETE);
}

/* A line of n bytes before the terminator: "PASS xxxx...". */
static char *
long_line(size_t n, const char *eol)
{
	char *p;

	assert_true(n >= 5);
	p = malloc(n + strlen(eol) + 1);
	assert_non_null(p);
	memcpy(p, "PASS ", 5);
	memset(p + 5, 'x', n - 5);
	strcpy(p + n, eol);
	return p;
}

static void
test_too_long(void **state)
{
	char *p;

	(void)state;
	p = long_line(MAX_LINE + 1, "\r\n");
	assert_int_equal(parse_str(p), POP3_PARSE_TOO_LONG);
	free(p);
	/* without a line end yet, too long is already too long */
	p = long_line(MAX_LINE + 1, "");
	assert_int_equal(parse_str(p), POP3_PARSE_TOO_LONG);
	free(p);
	p = long_line(4 * MAX_LINE, "");
	assert_int_equal(parse_str(p), POP3_PARSE_TOO_LONG);
	free(p);
}

static void
test_argument_too_long(void **state)
{
	char *p;

	(void)state;
	/* within the line limit but longer than any password */
	p = malloc(POP3_MAX_ARG + 16);
	assert_non_null(p);
	memcpy(p, "PASS ", 5);
	memset(p + 5, 'x', POP3_MAX_ARG + 1);
	strcpy(p + 5 + POP3_MAX_ARG + 1, "\r\n");
	assert_int_equal(pop3_parse(p, strlen(p), 8192, &cmd), POP3_PARSE_BAD);
	assert_int_equal(cmd.consumed, strlen(p));
	/* exactly the maximum fits */
	strcpy(p + 5 + POP3_MAX_ARG, "\r\n");
	assert_int_equal(pop3_parse(p, strlen(p), 8192, &cmd), POP3_PARSE_OK);
	assert_int_equal(strlen(cmd.arg), POP3_MAX_ARG);
	free(p);
}

/*
 * A line of exactly max_line bytes is allowed, however the bytes arrive:
 * in particular its CR may come in one read and its LF in the next.
 */
static void
test_max_line_boundary(void **state)
{
	char *p;
	size_t len, k;

	(void)state;
	p = long_line(MAX_LINE, "\r\n");
	len = strlen(p);
	for (k = 0; k < len; k++)
		assert_int_equal(parse(p, k), POP3_PARSE_INCOMPLETE);
	assert_int_equal(parse(p, len), POP3_PARSE_OK);
	free(p);
	p = long_line(MAX_LINE, "\n");
	assert_int_equal(parse_str(p), POP3_PARSE_OK);
	assert_int_equal(parse(p, MAX_LINE), POP3_PARSE_INCOMPLETE);
	free(p);
}

/*
 * Every prefix of a valid command stream parses as INCOMPLETE, and the
 * whole parses exactly as if it came in one read.
 */
static void
test_split_every_byte(void **state)
{
	const char *inputs[] = {
	    "USER bob@example.com\r\n",
	    "PASS pass word with spaces\r\n",
	    "CAPA\r\n",
	    "AUTH PLAIN AGJvYgBzM2NyZXQ=\r\n",
	    "quit\n",
	    "AUTH\r\n",
	    "U$ER bad\r\n",
	};
	struct pop3_command whole;
	enum pop3_parse_status st, want;
	size_t i, k, len;
	char *copy;

	(void)state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		len = strlen(inputs[i]);
		want = parse(inputs[i], len);
		assert_true(want == POP3_PARSE_OK || want == POP3_PARSE_BAD);
		whole = cmd;
		for (k = 0; k < len; k++) {
			/* an exact-size copy lets ASan see any overread */
			copy = malloc(k ? k : 1);
			assert_non_null(copy);
			memcpy(copy, inputs[i], k);
			st = parse(copy, k);
			free(copy);
			assert_int_equal(st, POP3_PARSE_INCOMPLETE);
		}
		assert_int_equal(parse(inputs[i], len), want);
		assert_string_equal(cmd.name, whole.name);
		assert_string_equal(cmd.arg, whole.arg);
		assert_int_equal(cmd.hasarg, whole.hasarg);
		assert_int_equal(cmd.consumed, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_pass),
	    cmocka_unit_test(test_password_with_spaces),
	    cmocka_unit_test(test_no_arg_commands),
	    cmocka_unit_test(test_auth_plain_initial_response),
	    cmocka_unit_test(test_case_insensitive),
	    cmocka_unit_test(test_lf_only),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_nul_and_cr_inside),
	    cmocka_unit_test(test_bad_keyword),
	    cmocka_unit_test(test_bad_then_good),
	    cmocka_unit_test(test_incomplete),
	    cmocka_unit_test(test_too_long),
	    cmocka_unit_test(test_argument_too_long),
	    cmocka_unit_test(test_max_line_boundary),
	    cmocka_unit_test(test_split_every_byte),
	};

	return cmocka_run_group_tests_name("pop3_parser", tests, NULL, NULL);
}
