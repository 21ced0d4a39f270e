/*
 * Fuzz the chunked de-framer as the relay drives it.  The first bytes
 * say how the rest is cut into pieces; whatever the cut, the outcome
 * (data, where the body ends, error or not) must be the one of feeding
 * it whole, no call may take more than it was given or hand back more
 * data than the chunk declared, a lenient reader must find the same
 * body in whatever it accepts, and the data, re-framed with
 * http_chunk_header, must de-frame again to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NCUTS 4
#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

struct outcome {
	enum http_chunk_status last; /* DONE, ERROR, or MORE: ran out */
	char *data;
	size_t datalen;
	size_t end; /* input consumed */
};

/* One piece, from an exact-size copy: ASan sees any read past it. */
static size_t
feed(struct http_chunked *c, const char *in, size_t n, struct outcome *o)
{
	enum http_chunk_status st;
	uint64_t before;
	size_t pos, used;
	char *copy;

	CHECK((copy = malloc(n ? n : 1)) != NULL);
	memcpy(copy, in, n);
	for (pos = 0; pos < n; pos += used) {
		before = c->remaining;
		st = http_chunked_step(c, copy + pos, n - pos, &used);
		CHECK(used <= n - pos);
		if (st == HTTP_CHUNK_ERROR) {
			CHECK(c->reason != NULL);
			o->last = st;
			break;
		}
		CHECK(used > 0);
		if (st == HTTP_CHUNK_DATA) {
			/* never more than the chunk has left */
			CHECK(used <= before);
			CHECK(c->remaining == before - used);
			memcpy(o->data + o->datalen, copy + pos, used);
			o->datalen += used;
		}
		if (st == HTTP_CHUNK_DONE) {
			o->last = st;
			pos += used;
			break;
		}
	}
	free(copy);
	return pos;
}

/* Pieces of the sizes in cuts[], round and round; none: whole. */
static void
deframe(const char *in, size_t len, const uint8_t *cuts, size_t ncuts,
    struct outcome *o)
{
	struct http_chunked c;
	size_t n, k = 0;

	o->last = HTTP_CHUNK_MORE;
	o->datalen = 0;
	o->end = 0;
	http_chunked_init(&c);
	while (o->end < len && o->last == HTTP_CHUNK_MORE) {
		n = len - o->end;
		if (ncuts > 0 && (size_t)cuts[k % ncuts] + 1 < n)
			n = (size_t)cuts[k % ncuts] + 1;
		k++;
		o->end += feed(&c, in + o->end, n, o);
	}
}

static int
same(const struct outcome *a, const struct outcome *b)
{
	if (a->last != b->last || a->datalen != b->datalen)
		return 0;
	/* where an error is seen may differ; where the body ends may not */
	if (a->last == HTTP_CHUNK_DONE && a->end != b->end)
		return 0;
	return memcmp(a->data, b->data, a->datalen) == 0;
}

/* Find "\r\n" at or after *pos and step past it. */
static int
skip_line(const char *in, size_t len, size_t *pos)
{
	for (; *pos + 1 < len; (*pos)++)
		if (in[*pos] == '\r' && in[*pos + 1] == '\n') {
			*pos += 2;
			return 0;
		}
	return -1;
}

/*
 * A lenient reader, as a naive upstream or client might be: hex size,
 * anything to the CRLF, data, CRLF; lines to an empty one after the
 * last chunk.  Whatever the de-framer accepts it must read the same.
 */
static int
hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
		return (ch | 0x20) - 'a' + 10;
	return -1;
}

static int
lenient(const char *in, size_t len, struct outcome *o)
{
	size_t pos = 0, start;
	uint64_t size;

	o->datalen = 0;
	for (;;) {
		start = pos;
		for (size = 0; pos < len && hex_digit(in[pos]) >= 0; pos++)
			size = size * 16 + (uint64_t)hex_digit(in[pos]);
		if (pos == start || skip_line(in, len, &pos) == -1)
			return -1;
		if (size == 0)
			break;
		if (size > len - pos || len - pos - size < 2 ||
		    memcmp(in + pos + size, "\r\n", 2) != 0)
			return -1;
		memcpy(o->data + o->datalen, in + pos, size);
		o->datalen += size;
		pos += size + 2;
	}
	while (pos + 1 < len && memcmp(in + pos, "\r\n", 2) != 0)
		if (skip_line(in, len, &pos) == -1)
			return -1;
	if (pos + 1 >= len)
		return -1;
	o->end = pos + 2;
	return 0;
}

/* The data again, in chunks of the cut sizes, then a last chunk. */
static size_t
reframe(const struct outcome *o, const uint8_t *cuts, char *out, size_t outsz)
{
	size_t off = 0, n = 0, k, h, i = 0;

	while (off < o->datalen) {
		k = (size_t)cuts[i++ % NCUTS] + 1;
		if (k > o->datalen - off)
			k = o->datalen - off;
		CHECK((h = http_chunk_header(out + n, outsz - n, k)) > 0);
		n += h;
		CHECK(k + 2 <= outsz - n);
		memcpy(out + n, o->data + off, k);
		n += k;
		memcpy(out + n, "\r\n", 2);
		n += 2;
		off += k;
	}
	CHECK(outsz - n >= 5);
	CHECK(http_chunk_header(out + n, 3, 0) == 3);
	n += 3;
	memcpy(out + n, "\r\n", 2);
	return n + 2;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + NCUTS;
	struct outcome whole, cut, again, naive;
	size_t len, n, bufsz;
	char *buf;

	if (size < NCUTS)
		return 0;
	len = size - NCUTS;
	CHECK((whole.data = malloc(len + 1)) != NULL);
	CHECK((cut.data = malloc(len + 1)) != NULL);
	deframe(in, len, NULL, 0, &whole);
	deframe(in, len, data, NCUTS, &cut);
	CHECK(same(&whole, &cut));
	CHECK(whole.end <= len);
	if (whole.last == HTTP_CHUNK_DONE) {
		CHECK((naive.data = malloc(len + 1)) != NULL);
		CHECK(lenient(in, len, &naive) == 0);
		CHECK(naive.end == whole.end && naive.datalen == whole.datalen);
		CHECK(memcmp(naive.data, whole.data, whole.datalen) == 0);
		free(naive.data);
	}
	/* at most one header and CRLF per data byte, and the last chunk */
	bufsz = whole.datalen * 21 + 8;
	CHECK((buf = malloc(bufsz)) != NULL);
	n = reframe(&whole, data, buf, bufsz);
	CHECK((again.data = malloc(n)) != NULL);
	deframe(buf, n, data + 1, NCUTS - 1, &again);
	CHECK(again.last == HTTP_CHUNK_DONE && again.end == n);
	CHECK(again.datalen == whole.datalen);
	CHECK(memcmp(again.data, whole.data, whole.datalen) == 0);
	free(again.data);
	free(buf);
	free(whole.data);
	free(cut.data);
	return 0;
}
