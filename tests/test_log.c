/*
 * log_escape(): untrusted bytes must never reach a log line unescaped,
 * and the result must always be a NUL-terminated string that fits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "log.h"

/* Escape a C string into a large buffer and compare. */
static void
check_escape(const char *in, size_t inlen, const char *want)
{
	char out[256];
	size_t n;

	memset(out, 'Z', sizeof(out));
	n = log_escape(out, sizeof(out), in, inlen);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void
test_printable_unchanged(void **state)
{
	(void)state;
	check_escape("a1 LOGIN user pass", 18, "a1 LOGIN user pass");
	check_escape("~!@#$%^&*()_+{}", 15, "~!@#$%^&*()_+{}");
	check_escape("", 0, "");
}

static void
test_control_bytes(void **state)
{
	(void)state;
	check_escape("a\x01z", 3, "a\\x01z");
	check_escape("\x1b[2J", 4, "\\x1b[2J");
	check_escape("\x7f", 1, "\\x7f");
	check_escape("\t", 1, "\\t");
	check_escape("\x1f\x00", 2, "\\x1f\\x00");
}

static void
test_backslash(void **state)
{
	(void)state;
	/* a literal backslash must not be confusable with an escape */
	check_escape("\\", 1, "\\\\");
	check_escape("\\x41", 4, "\\\\x41");
	check_escape("a\\n", 3, "a\\\\n");
}

static void
test_crlf(void **state)
{
	(void)state;
	/* a forged second log line is the attack this prevents */
	check_escape("ok\r\nfake: line", 14, "ok\\r\\nfake: line");
	check_escape("\n", 1, "\\n");
	check_escape("\r", 1, "\\r");
}

static void
test_eight_bit(void **state)
{
	(void)state;
	check_escape("\x80\xff\xc3\xa9", 4, "\\x80\\xff\\xc3\\xa9");
	check_escape("caf\xe9", 4, "caf\\xe9");
}

static void
test_embedded_nul_uses_length(void **state)
{
	(void)state;
	/* the source length counts, not strlen */
	check_escape("ab\0cd", 5, "ab\\x00cd");
}

static void
test_dstsz_zero_untouched(void **state)
{
	char out[4] = {'x', 'y', 'z', 'w'};

	(void)state;
	assert_int_equal(log_escape(out, 0, "abc", 3), 0);
	assert_memory_equal(out, "xyzw", 4);
}

/*
 * For every small buffer size: the output is NUL-terminated within the
 * buffer, nothing past dstsz is written, the return value is its length,
 * and it is either the whole escaped input or a prefix of it with "...".
 */
static void
check_small_sizes(const char *in, size_t inlen, const char *full)
{
	char out[32];
	size_t dstsz, n, fulllen = strlen(full);

	for (dstsz = 1; dstsz <= 10; dstsz++) {
		memset(out, 'Z', sizeof(out));
		n = log_escape(out, dstsz, in, inlen);
		assert_true(n < dstsz);
		assert_int_equal(out[n], '\0');
		assert_int_equal(strlen(out), n);
		assert_int_equal(out[dstsz], 'Z');
		if (fulllen < dstsz) {
			assert_string_equal(out, full);
			continue;
		}
		/* truncated: a prefix of the escaped text plus the marker */
		if (dstsz < 4) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(n >= 3);
		assert_memory_equal(out + n - 3, "...", 3);
		assert_memory_equal(out, full, n - 3);
	}
}

static void
test_truncation_small_buffers(void **state)
{
	(void)state;
	check_small_sizes("abcdefghijklmnop", 16, "abcdefghijklmnop");
	check_small_sizes("ab\ncd\x01"
			  "ef",
	    8, "ab\\ncd\\x01ef");
	check_small_sizes("\xff\xff\xff", 3, "\\xff\\xff\\xff");
	check_small_sizes("abc", 3, "abc");
	check_small_sizes("abcdefgh", 8, "abcdefgh");
}

static void
test_exact_fit_not_truncated(void **state)
{
	char out[5];

	(void)state;
	/* four characters and the NUL fit exactly: no marker */
	assert_int_equal(log_escape(out, sizeof(out), "abcd", 4), 4);
	assert_string_equal(out, "abcd");
	/* one more does not */
	assert_int_equal(log_escape(out, sizeof(out), "abcde", 5), 4);
	assert_string_equal(out, "a...");
}

static void
test_truncation_large_input(void **state)
{
	char in[4096], out[64];
	size_t n;

	(void)state;
	memset(in, '\n', sizeof(in));
	n = log_escape(out, sizeof(out), in, sizeof(in));
	assert_true(n < sizeof(out));
	assert_int_equal(strlen(out), n);
	assert_memory_equal(out + n - 3, "...", 3);
	assert_memory_equal(out, "\\n\\n\\n", 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_printable_unchanged),
	    cmocka_unit_test(test_control_bytes),
	    cmocka_unit_test(test_backslash),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_eight_bit),
	    cmocka_unit_test(test_embedded_nul_uses_length),
	    cmocka_unit_test(test_dstsz_zero_untouched),
	    cmocka_unit_test(test_truncation_small_buffers),
	    cmocka_unit_test(test_exact_fit_not_truncated),
	    cmocka_unit_test(test_truncation_large_input),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
