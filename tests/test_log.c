/*
 * log_escape(): untrusted bytes must never reach a log line unescaped,
 * and the result must always be a NUL-terminated string that fits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

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

static int soon_calls;

static void
count_soon(void)
{
	soon_calls++;
}

/* Whatever sits in the pipe that stands in for stderr, NUL-terminated. */
static size_t
drain(int fd, char *buf, size_t size)
{
	ssize_t n;
	size_t got = 0;

	while (got < size - 1 && (n = read(fd, buf + got, size - 1 - got)) > 0)
		got += n;
	buf[got] = '\0';
	return got;
}

/*
 * Deferred logging: info lines wait for log_flush(), asking for it once
 * per batch; a warning writes what waited first, so order holds.
 */
static void
test_deferred_lines(void **state)
{
	char buf[4096];
	int p[2], saved;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	saved = dup(STDERR_FILENO);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	log_init(LOG_TO_STDERR, 0, "t");
	log_defer(count_soon);

	log_info("one");
	log_info("two \x01");
	assert_int_equal(soon_calls, 1);
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);
	log_flush();
	drain(p[0], buf, sizeof(buf));
	assert_string_equal(buf, "t: one\nt: two \\x01\n");

	log_info("three");
	assert_int_equal(soon_calls, 2);
	log_warnx("four");
	drain(p[0], buf, sizeof(buf));
	assert_string_equal(buf, "t: three\nt: four\n");
	log_flush();
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);

	log_defer(NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_printable_unchanged),
	    cmocka_unit_test(test_deferred_lines),
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
