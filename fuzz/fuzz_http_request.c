/*
 * Fuzz the HTTP request-head parser with small limits.  A head it
 * accepts must point only into the input, end in an empty line, be
 * INCOMPLETE when cut short, and serialise into a head that parses
 * again to the same method, target and framing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_HEAD   2048
#define MAX_TARGET 512
#define MAX_BODY   100000
#define OUT_MAX	   (2 * MAX_HEAD + 1024)

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static const struct http_limits limits = {MAX_HEAD, MAX_TARGET, MAX_BODY};

static int
within(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void
check_value(const struct http_field *f)
{
	size_t i;

	for (i = 0; i < f->valuelen; i++)
		CHECK(f->value[i] != '\r' && f->value[i] != '\n' &&
		    f->value[i] != '\0');
	if (f->valuelen > 0) {
		CHECK(f->value[0] != ' ' && f->value[0] != '\t');
		CHECK(f->value[f->valuelen - 1] != ' ' &&
		    f->value[f->valuelen - 1] != '\t');
	}
	CHECK(f->namelen > 0);
}

static void
check_ok(const char *buf, size_t len, const struct http_request *r)
{
	size_t i;

	CHECK(r->headlen >= 4 && r->headlen <= len && r->headlen <= MAX_HEAD);
	CHECK(memcmp(buf + r->headlen - 4, "\r\n\r\n", 4) == 0);
	CHECK(within(r->method, r->methodlen, buf, r->headlen));
	CHECK(r->methodlen > 0 && r->methodlen <= 32);
	CHECK(r->targetlen > 0 && r->targetlen <= MAX_TARGET);
	CHECK(within(r->target, r->targetlen, buf, r->headlen) ||
	    (r->targetlen == 1 && r->target[0] == '/' &&
		(r->flags & HTTP_REQ_ABSOLUTE)));
	CHECK(
	    r->target[0] == '/' || (r->targetlen == 1 && r->target[0] == '*'));
	CHECK(within(r->host, r->hostlen, buf, r->headlen) && r->hostlen > 0);
	CHECK(r->nfields > 0 && r->nfields <= HTTP_MAX_FIELDS);
	for (i = 0; i < r->nfields; i++) {
		CHECK(within(r->fields[i].name, r->fields[i].namelen, buf,
		    r->headlen));
		CHECK(within(r->fields[i].value, r->fields[i].valuelen, buf,
		    r->headlen));
		check_value(&r->fields[i]);
	}
	CHECK(r->framing == HTTP_BODY_NONE || r->framing == HTTP_BODY_LENGTH ||
	    r->framing == HTTP_BODY_CHUNKED);
	if (r->framing == HTTP_BODY_LENGTH)
		CHECK(r->content_length <= MAX_BODY);
	else
		CHECK(r->content_length == 0);
	if (r->framing == HTTP_BODY_CHUNKED)
		CHECK(!(r->flags & HTTP_REQ_HTTP10));
}

/* A copy of exactly n bytes, so that ASan sees any read beyond it. */
static enum http_parse_status
parse_copy(const char *buf, size_t n, const struct http_limits *lim,
    struct http_request *r)
{
	enum http_parse_status st;
	char *copy;

	CHECK((copy = malloc(n ? n : 1)) != NULL);
	memcpy(copy, buf, n);
	st = http_request_parse(copy, n, lim, r);
	free(copy);
	return st;
}

static void
check_prefixes(const char *buf, const struct http_request *r)
{
	static struct http_request again;

	CHECK(parse_copy(buf, r->headlen - 1, &limits, &again) ==
	    HTTP_PARSE_INCOMPLETE);
	CHECK(parse_copy(buf, r->headlen / 2, &limits, &again) ==
	    HTTP_PARSE_INCOMPLETE);
	CHECK(http_request_parse(buf, r->headlen, &limits, &again) ==
	    HTTP_PARSE_OK);
	CHECK(again.headlen == r->headlen && again.nfields == r->nfields &&
	    again.flags == r->flags && again.framing == r->framing);
}

static void
check_reparse(const char *out, size_t n, const struct http_request *r)
{
	static const struct http_limits big = {OUT_MAX, MAX_TARGET, MAX_BODY};
	static struct http_request again;
	enum http_parse_status st;

	st = http_request_parse(out, n, &big, &again);
	/* postern adds up to six fields of its own */
	if (st == HTTP_PARSE_ERROR && again.status == 431 &&
	    r->nfields + 6 > HTTP_MAX_FIELDS)
		return;
	CHECK(st == HTTP_PARSE_OK);
	CHECK(again.headlen == n);
	CHECK(again.methodlen == r->methodlen &&
	    memcmp(again.method, r->method, r->methodlen) == 0);
	CHECK(again.targetlen == r->targetlen &&
	    memcmp(again.target, r->target, r->targetlen) == 0);
	CHECK(again.hostlen == r->hostlen &&
	    memcmp(again.host, r->host, r->hostlen) == 0);
	CHECK(again.framing == r->framing);
	CHECK(again.content_length == r->content_length);
	CHECK((again.flags & HTTP_REQ_WEBSOCKET) ==
	    (r->flags & HTTP_REQ_WEBSOCKET));
	CHECK(!(again.flags & (HTTP_REQ_HTTP10 | HTTP_REQ_ABSOLUTE)));
}

static void
check_serialize(const struct http_request *r, int trust)
{
	static char out[OUT_MAX];
	struct http_forward fwd = {"2001:db8::7", "https", trust};
	ssize_t n;
	char *small;

	n = http_request_serialize(r, &fwd, out, sizeof(out));
	CHECK(n > 0 && (size_t)n <= sizeof(out));
	CHECK(memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
	check_reparse(out, (size_t)n, r);
	/* one byte short fails, and ASan watches the edge */
	CHECK((small = malloc((size_t)n - 1)) != NULL);
	CHECK(http_request_serialize(r, &fwd, small, (size_t)n - 1) == -1);
	free(small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request r;
	const char *buf = (const char *)data;

	switch (http_request_parse(buf, size, &limits, &r)) {
	case HTTP_PARSE_OK:
		check_ok(buf, size, &r);
		check_prefixes(buf, &r);
		check_serialize(&r, (int)(size & 1));
		break;
	case HTTP_PARSE_INCOMPLETE:
		CHECK(size < MAX_HEAD);
		break;
	case HTTP_PARSE_ERROR:
		CHECK(r.reason != NULL);
		CHECK(r.status == 400 || r.status == 413 || r.status == 414 ||
		    r.status == 417 || r.status == 431 || r.status == 501 ||
		    r.status == 505);
		break;
	default:
		abort();
	}
	return 0;
}
