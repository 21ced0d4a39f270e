/*
 * SASL PLAIN decoding (RFC 4616): authzid NUL authcid NUL passwd, base64.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <resolv.h>
#include <string.h>

#include "authproc.h"

struct creds {
	char authzid[USER_MAX_LEN + 1];
	char user[USER_MAX_LEN + 1];
	char pass[PASS_MAX_LEN + 1];
};

/* base64 of raw, which may contain NULs */
static size_t
encode(const void *raw, size_t len, char *out, size_t outsz)
{
	int n;

	n = b64_ntop(raw, len, out, outsz);
	assert_true(n >= 0);
	return (size_t)n;
}

static int
decode_raw(const void *raw, size_t len, struct creds *c)
{
	char b64[4096];
	size_t n;

	n = encode(raw, len, b64, sizeof(b64));
	return sasl_plain_decode(b64, n, c->authzid, sizeof(c->authzid),
	    c->user, sizeof(c->user), c->pass, sizeof(c->pass));
}

static void
fill(struct creds *c)
{
	memset(c, 'X', sizeof(*c));
}

/* On failure the password buffer must hold no trace of input. */
static void
assert_zeroed(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_int_equal(p[i], '\0');
}

static void
test_valid_no_authzid(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("\0bob\0s3cret", 11, &c), 0);
	assert_string_equal(c.authzid, "");
	assert_string_equal(c.user, "bob");
	assert_string_equal(c.pass, "s3cret");
}

static void
test_valid_with_authzid(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("admin\0bob@example.com\0pa ss word", 32,
			     &c),
	    0);
	assert_string_equal(c.authzid, "admin");
	assert_string_equal(c.user, "bob@example.com");
	assert_string_equal(c.pass, "pa ss word");
}

static void
test_known_vector(void **state)
{
	struct creds c;
	const char *b64 = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"; /* RFC 4616 */

	(void)state;
	fill(&c);
	assert_int_equal(sasl_plain_decode(b64, strlen(b64), c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    0);
	assert_string_equal(c.authzid, "");
	assert_string_equal(c.user, "tim");
	assert_string_equal(c.pass, "tanstaaftanstaaf");
}

static void
test_length_is_respected(void **state)
{
	struct creds c;
	const char *b64 = "AGJvYgBwdw==garbage";

	(void)state;
	/* only the first len bytes are the response */
	fill(&c);
	assert_int_equal(sasl_plain_decode(b64, 12, c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    0);
	assert_string_equal(c.user, "bob");
	assert_string_equal(c.pass, "pw");
	/* and the whole string is not valid base64 */
	fill(&c);
	assert_int_equal(sasl_plain_decode(b64, strlen(b64), c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_empty_user(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("\0\0secret", 8, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	fill(&c);
	assert_int_equal(decode_raw("admin\0\0secret", 13, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_empty_password(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("\0bob\0", 5, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	fill(&c);
	assert_int_equal(decode_raw("\0\0", 2, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_extra_nul(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("\0bob\0pass\0", 10, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	fill(&c);
	assert_int_equal(decode_raw("a\0bob\0pa\0ss", 11, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_missing_nul(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(decode_raw("bobpassword", 11, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	fill(&c);
	assert_int_equal(decode_raw("bob\0password", 12, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_invalid_base64(void **state)
{
	struct creds c;
	const char *bad[] = {
	    "!!!!",
	    "AGJvYgBwdw",	/* missing padding */
	    "AGJvYgBwdw=",	/* short padding */
	    "AGJv=YgBwdw==",	/* padding in the middle */
	    "AGJvYgBwdw==AA==", /* data after padding */
	    "A",
	    "*",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fill(&c);
		assert_int_equal(sasl_plain_decode(bad[i], strlen(bad[i]),
				     c.authzid, sizeof(c.authzid), c.user,
				     sizeof(c.user), c.pass, sizeof(c.pass)),
		    -1);
		assert_zeroed(c.pass, sizeof(c.pass));
	}
}

static void
test_empty_input(void **state)
{
	struct creds c;

	(void)state;
	fill(&c);
	assert_int_equal(sasl_plain_decode("", 0, c.authzid, sizeof(c.authzid),
			     c.user, sizeof(c.user), c.pass, sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	/* "=" alone decodes to nothing */
	fill(&c);
	assert_int_equal(sasl_plain_decode("====", 4, c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_embedded_nul_in_base64(void **state)
{
	struct creds c;
	const char b64[] = "AGJvYgBwdw==";
	char buf[sizeof(b64)];

	(void)state;
	memcpy(buf, b64, sizeof(b64));
	buf[4] = '\0';
	fill(&c);
	assert_int_equal(sasl_plain_decode(buf, sizeof(b64) - 1, c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
	/* a trailing NUL inside the given length is just as bad */
	fill(&c);
	assert_int_equal(sasl_plain_decode(b64, sizeof(b64), c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

/* Build authzid NUL user NUL pass with fields of the given lengths. */
static size_t
build(char *raw, size_t zlen, size_t ulen, size_t plen)
{
	size_t o = 0;

	memset(raw + o, 'z', zlen);
	o += zlen;
	raw[o++] = '\0';
	memset(raw + o, 'u', ulen);
	o += ulen;
	raw[o++] = '\0';
	memset(raw + o, 'p', plen);
	o += plen;
	return o;
}

static void
test_maximal_fields(void **state)
{
	struct creds c;
	char raw[4096];
	size_t n;

	(void)state;
	n = build(raw, USER_MAX_LEN, USER_MAX_LEN, PASS_MAX_LEN);
	fill(&c);
	assert_int_equal(decode_raw(raw, n, &c), 0);
	assert_int_equal(strlen(c.authzid), USER_MAX_LEN);
	assert_int_equal(strlen(c.user), USER_MAX_LEN);
	assert_int_equal(strlen(c.pass), PASS_MAX_LEN);
}

static void
test_overlong_fields(void **state)
{
	struct creds c;
	char raw[4096];
	size_t n;

	(void)state;
	n = build(raw, USER_MAX_LEN + 1, 3, 3);
	fill(&c);
	assert_int_equal(decode_raw(raw, n, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));

	n = build(raw, 0, USER_MAX_LEN + 1, 3);
	fill(&c);
	assert_int_equal(decode_raw(raw, n, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));

	n = build(raw, 0, 3, PASS_MAX_LEN + 1);
	fill(&c);
	assert_int_equal(decode_raw(raw, n, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));

	/* the whole blob beyond what any valid response can be */
	n = build(raw, USER_MAX_LEN, USER_MAX_LEN, PASS_MAX_LEN + 200);
	fill(&c);
	assert_int_equal(decode_raw(raw, n, &c), -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

static void
test_small_destination(void **state)
{
	char z[4], u[4], p[4];
	char b64[64];
	size_t n;

	(void)state;
	/* the caller's sizes bound the fields, not the protocol maxima */
	n = encode("\0bob\0pwd", 8, b64, sizeof(b64));
	assert_int_equal(sasl_plain_decode(b64, n, z, sizeof(z), u, sizeof(u),
			     p, sizeof(p)),
	    0);
	assert_string_equal(u, "bob");
	assert_string_equal(p, "pwd");
	n = encode("\0bobby\0pwd", 10, b64, sizeof(b64));
	memset(p, 'X', sizeof(p));
	assert_int_equal(sasl_plain_decode(b64, n, z, sizeof(z), u, sizeof(u),
			     p, sizeof(p)),
	    -1);
	assert_zeroed(p, sizeof(p));
	n = encode("\0bob\0pwdx", 9, b64, sizeof(b64));
	memset(p, 'X', sizeof(p));
	assert_int_equal(sasl_plain_decode(b64, n, z, sizeof(z), u, sizeof(u),
			     p, sizeof(p)),
	    -1);
	assert_zeroed(p, sizeof(p));
}

static void
test_huge_base64(void **state)
{
	struct creds c;
	static char b64[100000];

	(void)state;
	memset(b64, 'A', sizeof(b64));
	fill(&c);
	assert_int_equal(sasl_plain_decode(b64, sizeof(b64), c.authzid,
			     sizeof(c.authzid), c.user, sizeof(c.user), c.pass,
			     sizeof(c.pass)),
	    -1);
	assert_zeroed(c.pass, sizeof(c.pass));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_no_authzid),
	    cmocka_unit_test(test_valid_with_authzid),
	    cmocka_unit_test(test_known_vector),
	    cmocka_unit_test(test_length_is_respected),
	    cmocka_unit_test(test_empty_user),
	    cmocka_unit_test(test_empty_password),
	    cmocka_unit_test(test_extra_nul),
	    cmocka_unit_test(test_missing_nul),
	    cmocka_unit_test(test_invalid_base64),
	    cmocka_unit_test(test_empty_input),
	    cmocka_unit_test(test_embedded_nul_in_base64),
	    cmocka_unit_test(test_maximal_fields),
	    cmocka_unit_test(test_overlong_fields),
	    cmocka_unit_test(test_small_destination),
	    cmocka_unit_test(test_huge_base64),
	};

	return cmocka_run_group_tests_name("sasl", tests, NULL, NULL);
}
