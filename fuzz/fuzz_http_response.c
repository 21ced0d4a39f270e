/*
 * Fuzz the upstream response head parser and the serialiser behind it.
 * The first byte chooses the options (HEAD request, the framing and
 * fields postern adds); the rest is the head.  A head that parses must
 * lie within what was read, be incomplete one byte short, and its
 * serialisation, which must never pass the buffer it is given, must
 * parse again with the same status and postern's framing and without
 * a hop-by-hop field postern did not write itself.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_HEAD 4096
#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static const char *const internal[] = {"backend:8080", "mail.internal", "b2:80",
    "[::1]:443"};

static int
inside(const char *p, size_t len, const char *base, size_t baselen)
{
	return p >= base && p <= base + baselen && len <= baselen &&
	    (size_t)(p - base) <= baselen - len;
}

static void
check_fields(const struct http_response *r, const char *in)
{
	const struct http_field *f;
	size_t i;

	CHECK(r->nfields <= HTTP_MAX_FIELDS);
	CHECK(r->status >= 100 && r->status <= 599);
	CHECK(r->version_minor == 0 || r->version_minor == 1);
	CHECK(inside(r->reason_phrase, r->reason_phraselen, in, r->headlen));
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		CHECK(f->namelen > 0);
		CHECK(inside(f->name, f->namelen, in, r->headlen));
		CHECK(inside(f->value, f->valuelen, in, r->headlen));
		CHECK(memchr(f->value, '\r', f->valuelen) == NULL);
		CHECK(memchr(f->value, '\n', f->valuelen) == NULL);
		CHECK(memchr(f->value, '\0', f->valuelen) == NULL);
		CHECK(f->valuelen == 0 ||
		    (f->value[0] != ' ' && f->value[0] != '\t' &&
			f->value[f->valuelen - 1] != ' ' &&
			f->value[f->valuelen - 1] != '\t'));
	}
}

static void
check_framing(const struct http_response *r, int head_request)
{
	if (head_request || r->status < 200 || r->status == 204 ||
	    r->status == 304)
		CHECK(r->framing == HTTP_BODY_NONE);
	if (r->framing == HTTP_BODY_CLOSE)
		CHECK(r->close);
}

static void
options(uint8_t b, int *head_request, struct http_rewrite *rw)
{
	static const enum http_framing framings[] = {HTTP_BODY_NONE,
	    HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED, HTTP_BODY_CLOSE};

	memset(rw, 0, sizeof(*rw));
	*head_request = b & 1;
	rw->out_framing = framings[(b >> 1) & 3];
	rw->out_length = b * 1000003ULL;
	rw->close = (b >> 3) & 1;
	rw->hsts = (b >> 4) & 1 ? "max-age=63072000" : NULL;
	rw->websocket = (b >> 5) & 1;
	rw->public_scheme = (b >> 6) & 1 ? "https" : "http";
	rw->public_host = "mail.example.com";
	rw->internal = internal;
	rw->ninternal = sizeof(internal) / sizeof(internal[0]);
}

/* Fields postern writes itself must be there only when it wrote them. */
static void
check_hop_by_hop(const struct http_response *out, const struct http_rewrite *rw)
{
	static const char *const never[] = {"Keep-Alive", "TE", "Trailer",
	    "Proxy-Connection", "Proxy-Authenticate"};
	const struct http_field *f;
	size_t i, j;

	for (i = 0; i < out->nfields; i++) {
		f = &out->fields[i];
		for (j = 0; j < sizeof(never) / sizeof(never[0]); j++)
			CHECK(!http_field_is(f, never[j]));
		if (http_field_is(f, "Content-Length"))
			CHECK(!rw->websocket &&
			    rw->out_framing == HTTP_BODY_LENGTH);
		if (http_field_is(f, "Transfer-Encoding"))
			CHECK(!rw->websocket &&
			    rw->out_framing == HTTP_BODY_CHUNKED);
		if (http_field_is(f, "Upgrade"))
			CHECK(rw->websocket);
		if (http_field_is(f, "Strict-Transport-Security") &&
		    rw->hsts != NULL)
			CHECK(f->valuelen == strlen(rw->hsts) &&
			    memcmp(f->value, rw->hsts, f->valuelen) == 0);
	}
}

/* The serialisation parses again, as the client will read it. */
static void
check_reparse(const struct http_response *r, const char *out, size_t n,
    int head_request, const struct http_rewrite *rw)
{
	static struct http_response again;
	enum http_parse_status st;
	size_t lines = 0, i;

	for (i = 0; i + 1 < n; i++)
		lines += out[i] == '\r' && out[i + 1] == '\n';
	st = http_response_parse(out, n, n, head_request, &again);
	/* the fields postern adds may take it over the limit */
	if (lines - 2 > HTTP_MAX_FIELDS) {
		CHECK(st == HTTP_PARSE_ERROR);
		return;
	}
	CHECK(st == HTTP_PARSE_OK);
	CHECK(again.headlen == n);
	CHECK(again.status == r->status);
	CHECK(again.version_minor == 1);
	CHECK(again.nfields == lines - 2);
	check_hop_by_hop(&again, rw);
	if (again.framing == HTTP_BODY_NONE || rw->websocket)
		return;
	if (rw->out_framing == HTTP_BODY_LENGTH)
		CHECK(again.framing == HTTP_BODY_LENGTH &&
		    again.content_length == rw->out_length);
	else if (rw->out_framing == HTTP_BODY_CHUNKED)
		CHECK(again.framing == HTTP_BODY_CHUNKED);
	else
		CHECK(again.framing == HTTP_BODY_CLOSE);
}

static void
check_serialize(const struct http_response *r, int head_request,
    const struct http_rewrite *rw)
{
	size_t outsz = 2 * r->headlen + 8192;
	char *out, *tight;
	ssize_t n, m;

	CHECK((out = malloc(outsz)) != NULL);
	n = http_response_serialize(r, rw, out, outsz);
	CHECK(n > 0 && (size_t)n < outsz);
	/* one byte short: -1, and ASan sees any write past the end */
	CHECK((tight = malloc((size_t)n - 1)) != NULL);
	CHECK(http_response_serialize(r, rw, tight, (size_t)n - 1) == -1);
	free(tight);
	CHECK((tight = malloc((size_t)n)) != NULL);
	m = http_response_serialize(r, rw, tight, (size_t)n);
	CHECK(m == n && memcmp(tight, out, (size_t)n) == 0);
	check_reparse(r, tight, (size_t)n, head_request, rw);
	free(tight);
	free(out);
}

/* Each value through the rewriter alone, into a buffer that just fits. */
static void
check_rewrites(const struct http_response *r, const struct http_rewrite *rw)
{
	char buf[MAX_HEAD + 64], *tight;
	size_t i;
	ssize_t n;

	for (i = 0; i < r->nfields; i++) {
		n = http_rewrite_uri(r->fields[i].value, r->fields[i].valuelen,
		    rw, buf, sizeof(buf));
		if (n <= 0)
			continue;
		CHECK((size_t)n <= r->fields[i].valuelen + 64);
		CHECK((tight = malloc((size_t)n)) != NULL);
		CHECK(
		    http_rewrite_uri(r->fields[i].value, r->fields[i].valuelen,
			rw, tight, (size_t)n - 1) == -1);
		CHECK(http_rewrite_uri(r->fields[i].value,
			  r->fields[i].valuelen, rw, tight, (size_t)n) == n);
		CHECK(memcmp(tight, buf, (size_t)n) == 0);
		free(tight);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_response r, shorter;
	struct http_rewrite rw;
	int head_request;
	char *copy;
	size_t len;

	if (size < 1)
		return 0;
	options(data[0], &head_request, &rw);
	len = size - 1;
	CHECK((copy = malloc(len ? len : 1)) != NULL);
	memcpy(copy, data + 1, len);
	switch (http_response_parse(copy, len, MAX_HEAD, head_request, &r)) {
	case HTTP_PARSE_OK:
		CHECK(
		    r.headlen > 0 && r.headlen <= len && r.headlen <= MAX_HEAD);
		check_fields(&r, copy);
		check_framing(&r, head_request);
		CHECK(http_response_parse(copy, r.headlen - 1, MAX_HEAD,
			  head_request, &shorter) == HTTP_PARSE_INCOMPLETE);
		check_rewrites(&r, &rw);
		check_serialize(&r, head_request, &rw);
		break;
	case HTTP_PARSE_INCOMPLETE:
		CHECK(len < MAX_HEAD);
		break;
	case HTTP_PARSE_ERROR:
		CHECK(r.reason != NULL);
		break;
	default:
		abort();
	}
	free(copy);
	return 0;
}
