/*
 * The chunked de-framer: good bodies fed whole, a byte at a time and cut
 * at every point must give the same data and end at the same byte;
 * every malformed framing must be an error however it is cut; the
 * bytes after a body are never taken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define DATA_MAX 8192

/* What one run of the de-framer over some input gave. */
struct run {
	enum http_chunk_status last; /* DONE, ERROR or MORE (ran out) */
	char data[DATA_MAX];
	size_t datalen;
	size_t end; /* input bytes consumed when it stopped */
	const char *reason;
};

/*
 * One piece of input, from an exact-size copy so that ASan sees any
 * read past it; the caller's loop as the relay will have it.  Returns
 * the bytes consumed.
 */
static size_t
feed(struct http_chunked *c, const char *in, size_t n, struct run *r)
{
	enum http_chunk_status st;
	size_t pos, used;
	char *copy;

	copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, in, n);
	for (pos = 0; pos < n; pos += used) {
		st = http_chunked_step(c, copy + pos, n - pos, &used);
		assert_true(used <= n - pos);
		if (st == HTTP_CHUNK_ERROR) {
			r->last = st;
			break;
		}
		/* with input to hand, every call makes progress */
		assert_true(used > 0);
		if (st == HTTP_CHUNK_DATA) {
			assert_true(used <= DATA_MAX - r->datalen);
			memcpy(r->data + r->datalen, copy + pos, used);
			r->datalen += used;
		}
		if (st == HTTP_CHUNK_DONE) {
			r->last = st;
			pos += used;
			break;
		}
	}
	free(copy);
	return pos;
}

/* Pieces of at most `piece` bytes (0: whole) or, with cut, two pieces. */
static void
run_split(const char *in, size_t len, size_t piece, size_t cut, struct run *r)
{
	struct http_chunked c;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->last = HTTP_CHUNK_MORE;
	http_chunked_init(&c);
	while (r->end < len && r->last == HTTP_CHUNK_MORE) {
		n = len - r->end;
		if (piece > 0 && piece < n)
			n = piece;
		if (cut > r->end && cut - r->end < n)
			n = cut - r->end;
		r->end += feed(&c, in + r->end, n, r);
	}
	r->reason = c.reason;
	if (r->last == HTTP_CHUNK_ERROR)
		assert_non_null(r->reason);
}

static void
run_pieces(const char *in, size_t len, size_t piece, struct run *r)
{
	run_split(in, len, piece, 0, r);
}

static void
run_cut(const char *in, size_t len, size_t cut, struct run *r)
{
	run_split(in, len, 0, cut, r);
}

static void
expect_body(const char *in, size_t len, const char *data, size_t end)
{
	struct run r;
	size_t piece, k;

	for (piece = 0; piece <= 3; piece++) {
		run_pieces(in, len, piece, &r);
		assert_int_equal(r.last, HTTP_CHUNK_DONE);
		assert_int_equal(r.datalen, strlen(data));
		assert_memory_equal(r.data, data, r.datalen);
		assert_int_equal(r.end, end);
	}
	for (k = 0; k <= len; k++) {
		run_cut(in, len, k, &r);
		assert_int_equal(r.last, HTTP_CHUNK_DONE);
		assert_int_equal(r.datalen, strlen(data));
		assert_memory_equal(r.data, data, r.datalen);
		assert_int_equal(r.end, end);
	}
}

static void
expect_body_str(const char *in, const char *data)
{
	expect_body(in, strlen(in), data, strlen(in));
}

/* An error, however the input is cut, and never a DONE first. */
static void
expect_error_len(const char *in, size_t len)
{
	struct run r;
	size_t piece, k;

	for (piece = 0; piece <= 2; piece++) {
		run_pieces(in, len, piece, &r);
		assert_int_equal(r.last, HTTP_CHUNK_ERROR);
	}
	for (k = 0; k <= len; k++) {
		run_cut(in, len, k, &r);
		assert_int_equal(r.last, HTTP_CHUNK_ERROR);
		assert_non_null(r.reason);
	}
}

static void
expect_error(const char *in)
{
	expect_error_len(in, strlen(in));
}

/* For inputs with a NUL in them. */
#define EXPECT_ERROR_BIN(s) expect_error_len((s), sizeof(s) - 1)

static void
test_simple(void **state)
{
	(void)state;
	expect_body_str("5\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body_str("0\r\n\r\n", "");
	expect_body_str("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	    "hello world");
	/* hex both cases, leading zeros */
	expect_body_str("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n",
	    "0123456789abcdefghij");
	expect_body_str("0005\r\nhello\r\n000\r\n\r\n", "hello");
	/* data is opaque: CR, LF and framing look-alikes inside it */
	expect_body_str("7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", "\r\n0\r\n\r\n");
}

static void
test_nul_in_data(void **state)
{
	static const char in[] = "3\r\na\0b\r\n0\r\n\r\n";
	struct run r;

	(void)state;
	run_pieces(in, sizeof(in) - 1, 1, &r);
	assert_int_equal(r.last, HTTP_CHUNK_DONE);
	assert_int_equal(r.datalen, 3);
	assert_memory_equal(r.data, "a\0b", 3);
}

static void
test_extensions(void **state)
{
	(void)state;
	expect_body_str("5;name\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body_str("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
	expect_body_str("5;a;b=c;d=\"q s\"\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body_str("5;a=\"\\\"x\\\\\"\r\nhello\r\n0\r\n\r\n", "hello");
	/* BWS before ';' and around '=', as the RFC's grammar has it */
	expect_body_str("5 ;a\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body_str("5\t; a = b ; c\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body_str("5;a=\"\xc3\xa9\"\r\nhello\r\n0\r\n\r\n", "hello");
}

static void
test_trailers(void **state)
{
	(void)state;
	expect_body_str("5\r\nhello\r\n0\r\nExpires: never\r\n\r\n", "hello");
	expect_body_str("0\r\nA: 1\r\nB:2\r\nC:\r\n\r\n", "");
	expect_body_str("0\r\nX-Obs: \xff\x80 text\t\r\n\r\n", "");
}

static void
test_rest_not_consumed(void **state)
{
	static const char body[] = "5\r\nhello\r\n0\r\nT: v\r\n\r\n";
	char in[128];
	size_t blen = sizeof(body) - 1;

	(void)state;
	snprintf(in, sizeof(in), "%sGET /next HTTP/1.1\r\n\r\n", body);
	expect_body(in, strlen(in), "hello", blen);
	/* even garbage after the end is left alone */
	memcpy(in, body, blen);
	memcpy(in + blen, "\n\n\r\0", 4);
	expect_body(in, blen + 4, "hello", blen);
}

static void
test_step_contract(void **state)
{
	static const char in[] = "3\r\nabc\r\n0\r\n\r\nX";
	struct http_chunked c;
	size_t used = 99;

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_step(&c, in, 0, &used), HTTP_CHUNK_MORE);
	assert_int_equal(used, 0);
	/* framing up to the data, then stop: the data comes alone */
	assert_int_equal(http_chunked_step(&c, in, sizeof(in) - 1, &used),
	    HTTP_CHUNK_MORE);
	assert_int_equal(used, 3);
	assert_int_equal(c.remaining, 3);
	assert_int_equal(http_chunked_step(&c, in + 3, 2, &used),
	    HTTP_CHUNK_DATA);
	assert_int_equal(used, 2);
	assert_int_equal(http_chunked_step(&c, in + 5, 0, &used),
	    HTTP_CHUNK_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(http_chunked_step(&c, in + 5, sizeof(in) - 6, &used),
	    HTTP_CHUNK_DATA);
	assert_int_equal(used, 1);
	/* all the framing to the end, not the byte after it */
	assert_int_equal(http_chunked_step(&c, in + 6, sizeof(in) - 7, &used),
	    HTTP_CHUNK_DONE);
	assert_int_equal(used, sizeof(in) - 7 - 1);
	/* and it stays done */
	assert_int_equal(http_chunked_step(&c, "X", 1, &used), HTTP_CHUNK_DONE);
	assert_int_equal(used, 0);
}

static void
test_more_when_short(void **state)
{
	struct http_chunked c;
	size_t used;

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_step(&c, "1f;x=\"a", 7, &used),
	    HTTP_CHUNK_MORE);
	assert_int_equal(used, 7);
	assert_int_equal(http_chunked_step(&c, "\"\r", 2, &used),
	    HTTP_CHUNK_MORE);
	assert_int_equal(used, 2);
	assert_int_equal(http_chunked_step(&c, "\n", 1, &used),
	    HTTP_CHUNK_MORE);
	assert_int_equal(used, 1);
	assert_int_equal(c.remaining, 0x1f);
}

static void
test_error_sticks(void **state)
{
	struct http_chunked c;
	size_t used = 99;

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_step(&c, "5x\r\n", 4, &used),
	    HTTP_CHUNK_ERROR);
	assert_int_equal(used, 1);
	assert_non_null(c.reason);
	assert_int_equal(http_chunked_step(&c, "5\r\n", 3, &used),
	    HTTP_CHUNK_ERROR);
	assert_int_equal(used, 0);
}

static void
test_bad_size(void **state)
{
	(void)state;
	expect_error("g\r\n");
	expect_error("\r\n");
	expect_error(";a\r\n");
	expect_error(" 5\r\n");
	expect_error("\t5\r\n");
	expect_error("5 \r\n");
	expect_error("5 5\r\n");
	expect_error("5\t\r\n");
	expect_error("-5\r\n");
	expect_error("+5\r\n");
	expect_error("0x5\r\n");
	expect_error("5g\r\n");
	expect_error("5,\r\n");
	EXPECT_ERROR_BIN("5\0\r\n");
	EXPECT_ERROR_BIN("\0\r\n");
	/* an end that is not the last chunk's is still framing */
	expect_error("5\r\nhello\r\n\r\n");
}

static void
test_bad_line_ends(void **state)
{
	(void)state;
	expect_error("5\nhello\r\n0\r\n\r\n");
	expect_error("5\rhello\r\n0\r\n\r\n");
	expect_error("5\r\r\nhello\r\n0\r\n\r\n");
	expect_error("5\r\nhello\n0\r\n\r\n");
	expect_error("5\r\nhello\r0\r\n\r\n");
	expect_error("5\r\nhello\n\r\n0\r\n\r\n");
	expect_error("0\n\r\n");
	expect_error("0\r\n\n");
	expect_error("0\r\n\rX");
	expect_error("0\r\nA: b\n\r\n");
	expect_error("0\r\nA: b\rc\r\n\r\n");
	expect_error("5;a\nhello\r\n0\r\n\r\n");
}

static void
test_bad_data_end(void **state)
{
	(void)state;
	/* more data than declared */
	expect_error("3\r\nhello\r\n0\r\n\r\n");
	expect_error("5\r\nhelloX\r\n0\r\n\r\n");
	expect_error("5\r\nhello0\r\n\r\n");
	expect_error("5\r\nhello \r\n0\r\n\r\n");
}

static void
test_bad_extensions(void **state)
{
	(void)state;
	expect_error("5;\r\nhello\r\n0\r\n\r\n");
	expect_error("5;;a\r\nhello\r\n0\r\n\r\n");
	expect_error("5;=v\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a \r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=v \r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\"v\" \r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\"v\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\"v\x01\"\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\"v\"x\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=v=w\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a@b\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=b c\r\nhello\r\n0\r\n\r\n");
	expect_error("5;a=\"\\\x7f\"\r\nhello\r\n0\r\n\r\n");
	EXPECT_ERROR_BIN("5;a=\"\0\"\r\nhello\r\n0\r\n\r\n");
}

static void
test_bad_trailers(void **state)
{
	(void)state;
	expect_error("0\r\n Folded: x\r\n\r\n");
	expect_error("0\r\nA: b\r\n c\r\n\r\n");
	expect_error("0\r\nA: b\r\n\tc\r\n\r\n");
	expect_error("0\r\nnocolon\r\n\r\n");
	expect_error("0\r\nA : b\r\n\r\n");
	expect_error("0\r\n: b\r\n\r\n");
	expect_error("0\r\nA@: b\r\n\r\n");
	EXPECT_ERROR_BIN("0\r\nA: b\0c\r\n\r\n");
	EXPECT_ERROR_BIN("0\r\nA\0: b\r\n\r\n");
}

/* A size line of exactly n bytes before its CRLF: "1" and zeros. */
static char *
size_line(size_t n, const char *tail)
{
	char *p;

	p = malloc(n + strlen(tail) + 1);
	assert_non_null(p);
	memset(p, '0', n);
	p[n - 1] = '1';
	strcpy(p + n, tail);
	return p;
}

static void
test_overflow(void **state)
{
	struct run r;
	char *p;

	(void)state;
	/* 2^60 - 1 is the largest chunk */
	run_pieces("fffffffffffffff\r\nab", 19, 0, &r);
	assert_int_equal(r.last, HTTP_CHUNK_MORE);
	assert_int_equal(r.datalen, 2);
	expect_error("1000000000000000\r\n");
	expect_error("ffffffffffffffff\r\n");
	expect_error("10000000000000000000000\r\n");
	/* leading zeros do not count against the value */
	p = size_line(HTTP_CHUNK_LINE_MAX, "\r\nx\r\n0\r\n\r\n");
	expect_body_str(p, "x");
	free(p);
	run_pieces("00000000000000000000fffffffffffffff\r\n", 37, 1, &r);
	assert_int_equal(r.last, HTTP_CHUNK_MORE);
}

static void
test_line_too_long(void **state)
{
	char *p;
	size_t n;

	(void)state;
	p = size_line(HTTP_CHUNK_LINE_MAX + 1, "\r\nx\r\n0\r\n\r\n");
	expect_error(p);
	free(p);
	/* with an extension: the whole line counts */
	n = HTTP_CHUNK_LINE_MAX;
	p = malloc(n + 32);
	assert_non_null(p);
	memcpy(p, "1;", 2);
	memset(p + 2, 'e', n - 2);
	strcpy(p + n, "\r\nx\r\n0\r\n\r\n");
	expect_body_str(p, "x");
	memset(p + 2, 'e', n - 1);
	strcpy(p + n + 1, "\r\nx\r\n0\r\n\r\n");
	expect_error(p);
	/* and it is refused before its end arrives */
	memset(p + 2, 'e', n);
	expect_error_len(p, n + 2);
	free(p);
}

/* "0\r\n", then trailer fields making a section of exactly n bytes. */
static char *
trailer_body(size_t n)
{
	char *p, *q;
	size_t left = n - 2, line;

	p = malloc(n + 8);
	assert_non_null(p);
	memcpy(p, "0\r\n", 3);
	q = p + 3;
	while (left > 0) {
		line = left > 1000 ? 1000 : left;
		/* never leave less than the shortest line, "X:\r\n" */
		if (left - line > 0 && left - line < 4)
			line = left - 4;
		assert_true(line >= 4);
		memcpy(q, "X:", 2);
		memset(q + 2, 'v', line - 4);
		memcpy(q + line - 2, "\r\n", 2);
		q += line;
		left -= line;
	}
	memcpy(q, "\r\n", 3);
	return p;
}

static void
test_trailer_too_long(void **state)
{
	char *p;

	(void)state;
	p = trailer_body(HTTP_TRAILER_MAX);
	assert_int_equal(strlen(p), 3 + HTTP_TRAILER_MAX);
	expect_body_str(p, "");
	free(p);
	p = trailer_body(HTTP_TRAILER_MAX + 1);
	expect_error(p);
	free(p);
}

static void
test_chunk_header(void **state)
{
	char buf[32];
	struct {
		size_t len;
		const char *want;
	} cases[] = {
	    {0, "0\r\n"},
	    {1, "1\r\n"},
	    {15, "f\r\n"},
	    {16, "10\r\n"},
	    {500, "1f4\r\n"},
	    {0xabcdef, "abcdef\r\n"},
	    {SIZE_MAX, "ffffffffffffffff\r\n"},
	};
	size_t i, n, sz, want;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		want = strlen(cases[i].want);
		for (sz = 0; sz <= want + 1; sz++) {
			memset(buf, '#', sizeof(buf));
			n = http_chunk_header(buf, sz, cases[i].len);
			assert_int_equal(n, sz < want ? 0 : want);
			/* nothing written past what it was given */
			assert_int_equal(buf[sz], '#');
			if (n > 0)
				assert_memory_equal(buf, cases[i].want, want);
		}
	}
}

/* De-framed data, re-chunked with http_chunk_header, de-frames again. */
static void
test_rechunk(void **state)
{
	static const char in[] = "3;x="
				 "y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT:"
				 " 1\r\n\r\n";
	struct run r, again;
	char out[256];
	size_t n = 0, off, k;

	(void)state;
	run_pieces(in, sizeof(in) - 1, 0, &r);
	assert_int_equal(r.last, HTTP_CHUNK_DONE);
	/* uneven pieces, and an empty chunk only at the end */
	for (off = 0, k = 1; off < r.datalen; off += k, k += 4) {
		if (k > r.datalen - off)
			k = r.datalen - off;
		n += http_chunk_header(out + n, sizeof(out) - n, k);
		memcpy(out + n, r.data + off, k);
		n += k;
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	n += http_chunk_header(out + n, sizeof(out) - n, 0);
	memcpy(out + n, "\r\n", 2);
	n += 2;
	run_pieces(out, n, 1, &again);
	assert_int_equal(again.last, HTTP_CHUNK_DONE);
	assert_int_equal(again.end, n);
	assert_int_equal(again.datalen, r.datalen);
	assert_memory_equal(again.data, r.data, r.datalen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple),
	    cmocka_unit_test(test_nul_in_data),
	    cmocka_unit_test(test_extensions),
	    cmocka_unit_test(test_trailers),
	    cmocka_unit_test(test_rest_not_consumed),
	    cmocka_unit_test(test_step_contract),
	    cmocka_unit_test(test_more_when_short),
	    cmocka_unit_test(test_error_sticks),
	    cmocka_unit_test(test_bad_size),
	    cmocka_unit_test(test_bad_line_ends),
	    cmocka_unit_test(test_bad_data_end),
	    cmocka_unit_test(test_bad_extensions),
	    cmocka_unit_test(test_bad_trailers),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_line_too_long),
	    cmocka_unit_test(test_trailer_too_long),
	    cmocka_unit_test(test_chunk_header),
	    cmocka_unit_test(test_rechunk),
	};

	return cmocka_run_group_tests_name("http_chunked", tests, NULL, NULL);
}
