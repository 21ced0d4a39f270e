/*
 * JSON escaping of hostile strings: what reaches the audit log must be
 * one valid JSON string, whatever bytes a client chose as its user name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static const char *
esc(const char *src, size_t len)
{
	static char buf[512];
	size_t off = 0;

	assert_int_equal(json_append_string(buf, sizeof(buf), &off, src, len),
	    0);
	assert_int_equal(off, strlen(buf));
	return buf;
}

#define ESC(s) esc((s), sizeof(s) - 1)

static void
test_plain_ascii(void **state)
{
	(void)state;
	assert_string_equal(ESC("user1@example.org"), "\"user1@example.org\"");
	assert_string_equal(ESC(""), "\"\"");
}

static void
test_quotes_and_backslashes(void **state)
{
	(void)state;
	assert_string_equal(ESC("a\"b"), "\"a\\\"b\"");
	assert_string_equal(ESC("a\\b"), "\"a\\\\b\"");
	assert_string_equal(ESC("\"},{\"result\":\"ok"),
	    "\"\\\"},{\\\"result\\\":\\\"ok\"");
}

static void
test_control_bytes(void **state)
{
	(void)state;
	assert_string_equal(ESC("a\r\nb"), "\"a\\r\\nb\"");
	assert_string_equal(ESC("\t"), "\"\\t\"");
	assert_string_equal(ESC("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
	/* an embedded NUL is data, not the end of the string */
	assert_string_equal(esc("a\0b", 3), "\"a\\u0000b\"");
}

static void
test_valid_utf8_kept(void **state)
{
	(void)state;
	assert_string_equal(ESC("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
	assert_string_equal(ESC("\xe2\x82\xac"), "\"\xe2\x82\xac\"");
	assert_string_equal(ESC("\xf0\x9f\x93\xa7"), "\"\xf0\x9f\x93\xa7\"");
}

static void
test_invalid_utf8_replaced(void **state)
{
	(void)state;
	assert_string_equal(ESC("\xff"), "\"\\ufffd\"");
	assert_string_equal(ESC("a\xc3"), "\"a\\ufffd\""); /* truncated */
	assert_string_equal(ESC("\xc0\xaf"),
	    "\"\\ufffd\\ufffd\""); /* overlong */
	assert_string_equal(ESC("\xed\xa0\x80"),
	    "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
	assert_string_equal(ESC("\xf4\x90\x80\x80"),
	    "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	assert_string_equal(ESC("\xe2\x28\xa1"), "\"\\ufffd(\\ufffd\"");
}

static void
test_output_has_no_raw_controls(void **state)
{
	char in[256];
	const char *out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)i;
	{
		static char buf[4096];
		size_t off = 0;

		assert_int_equal(json_append_string(buf, sizeof(buf), &off, in,
				     sizeof(in)),
		    0);
		out = buf;
	}
	for (i = 0; out[i] != '\0'; i++)
		assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

static void
test_full_buffer_fails(void **state)
{
	char buf[8];
	size_t off = 0;

	(void)state;
	assert_int_equal(json_append_string(buf, sizeof(buf), &off,
			     "abcdefghij", 10),
	    -1);
	off = 0;
	assert_int_equal(json_append_string(buf, sizeof(buf), &off, "abc", 3),
	    0);
	assert_string_equal(buf, "\"abc\"");
	off = 0;
	assert_int_equal(json_append_string(buf, 6, &off, "\"\"", 2), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_ascii),
	    cmocka_unit_test(test_quotes_and_backslashes),
	    cmocka_unit_test(test_control_bytes),
	    cmocka_unit_test(test_valid_utf8_kept),
	    cmocka_unit_test(test_invalid_utf8_replaced),
	    cmocka_unit_test(test_output_has_no_raw_controls),
	    cmocka_unit_test(test_full_buffer_fails),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
