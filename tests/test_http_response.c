/*
 * Upstream response heads: every framing the relay must tell apart,
 * everything two readers could frame differently refused, every cut
 * short of the end incomplete; and the head postern sends on, with
 * hop-by-hop fields gone, internal URIs rewritten and its own framing,
 * never a byte past the buffer it is given.
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

#define MAX_HEAD 8192

static struct http_response resp;

static enum http_parse_status
parse(const char *in, size_t len, size_t max_head, int head_request)
{
	memset(&resp, 0x5a, sizeof(resp));
	return http_response_parse(in, len, max_head, head_request, &resp);
}

static enum http_parse_status
parse_str(const char *in)
{
	return parse(in, strlen(in), MAX_HEAD, 0);
}

static void
assert_field(size_t i, const char *name, const char *value)
{
	assert_true(i < resp.nfields);
	assert_int_equal(resp.fields[i].namelen, strlen(name));
	assert_memory_equal(resp.fields[i].name, name, strlen(name));
	assert_int_equal(resp.fields[i].valuelen, strlen(value));
	assert_memory_equal(resp.fields[i].value, value, strlen(value));
}

static void
expect_framing(const char *in, int head_request, enum http_framing framing,
    int close)
{
	assert_int_equal(parse(in, strlen(in), MAX_HEAD, head_request),
	    HTTP_PARSE_OK);
	assert_int_equal(resp.framing, framing);
	assert_int_equal(resp.close, close);
	assert_int_equal(resp.headlen, strlen(in));
}

static void
expect_error(const char *in, size_t len)
{
	assert_int_equal(parse(in, len, MAX_HEAD, 0), HTTP_PARSE_ERROR);
	assert_non_null(resp.reason);
}

#define EXPECT_ERROR(s) expect_error((s), sizeof(s) - 1)

static void
test_length(void **state)
{
	static const char in[] = "HTTP/1.1 200 OK\r\n"
				 "Content-Length: 5\r\n"
				 "Server:   nginx \t\r\n"
				 "X-Empty:\r\n"
				 "\r\n"
				 "hello";

	(void)state;
	assert_int_equal(parse_str(in), HTTP_PARSE_OK);
	assert_int_equal(resp.headlen, sizeof(in) - 1 - 5);
	assert_int_equal(resp.version_minor, 1);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.reason_phraselen, 2);
	assert_memory_equal(resp.reason_phrase, "OK", 2);
	assert_int_equal(resp.nfields, 3);
	assert_field(0, "Content-Length", "5");
	assert_field(1, "Server", "nginx");
	assert_field(2, "X-Empty", "");
	assert_int_equal(resp.framing, HTTP_BODY_LENGTH);
	assert_int_equal(resp.content_length, 5);
	assert_int_equal(resp.close, 0);
}

static void
test_content_length_lists(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n"
		       "content-length: 007\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 0);
	assert_int_equal(resp.content_length, 7);
	expect_framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0,
	    HTTP_BODY_LENGTH, 0);
	assert_int_equal(resp.content_length, 0);
	expect_framing("HTTP/1.1 200 OK\r\n"
		       "Content-Length: 18446744073709551615\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 0);
	assert_true(resp.content_length == UINT64_MAX);
}

static void
test_chunked(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    0, HTTP_BODY_CHUNKED, 0);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
	    0, HTTP_BODY_CHUNKED, 0);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip , chunked"
		       "\r\n\r\n",
	    0, HTTP_BODY_CHUNKED, 0);
	/* the codings of all fields, in order */
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
		       "Transfer-Encoding: chunked\r\n\r\n",
	    0, HTTP_BODY_CHUNKED, 0);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
		       ",chunked,\r\n\r\n",
	    0, HTTP_BODY_CHUNKED, 0);
}

static void
test_close_delimited(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200 OK\r\n\r\n", 0, HTTP_BODY_CLOSE, 1);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
	    HTTP_BODY_CLOSE, 1);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip"
		       "\r\n\r\n",
	    0, HTTP_BODY_CLOSE, 1);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		       "Transfer-Encoding: gzip\r\n\r\n",
	    0, HTTP_BODY_CLOSE, 1);
}

static void
test_connection_close(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200 OK\r\nConnection: close\r\n"
		       "Content-Length: 1\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 1);
	expect_framing("HTTP/1.1 200 OK\r\nConnection: x-foo, Close\r\n"
		       "Content-Length: 1\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 1);
	expect_framing("HTTP/1.1 200 OK\r\nConnection: closed\r\n"
		       "Content-Length: 1\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 0);
	expect_framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0,
	    HTTP_BODY_LENGTH, 1);
	assert_int_equal(resp.version_minor, 0);
	expect_framing("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
		       "Content-Length: 1\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 0);
	expect_framing("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n"
		       "Content-Length: 1\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 1);
}

static void
test_no_body(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 1,
	    HTTP_BODY_NONE, 0);
	assert_int_equal(resp.content_length, 100);
	expect_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    1, HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 200 OK\r\n\r\n", 1, HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 204 No Content\r\n\r\n", 0, HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
	    0, HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 100 Continue\r\n\r\n", 0, HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 0,
	    HTTP_BODY_NONE, 0);
	expect_framing("HTTP/1.1 101 Switching Protocols\r\n"
		       "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	    0, HTTP_BODY_NONE, 0);
	assert_int_equal(resp.status, 101);
	/* a 205 or a 404 without framing fields reads to the close */
	expect_framing("HTTP/1.1 404 Not Found\r\n\r\n", 0, HTTP_BODY_CLOSE, 1);
}

static void
test_status_lines(void **state)
{
	(void)state;
	expect_framing("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0,
	    HTTP_BODY_LENGTH, 0);
	assert_int_equal(resp.reason_phraselen, 0);
	expect_framing("HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", 0,
	    HTTP_BODY_LENGTH, 0);
	assert_int_equal(resp.status, 599);
	assert_int_equal(resp.reason_phraselen, 0);
	expect_framing("HTTP/1.1 404 Not  \tFound \xc3\xa9\x01\r\n"
		       "Content-Length: 0\r\n\r\n",
	    0, HTTP_BODY_LENGTH, 0);
	assert_int_equal(resp.status, 404);
	assert_int_equal(resp.reason_phraselen, 15);
	expect_framing("HTTP/1.1 200  OK\r\nContent-Length: 0\r\n\r\n", 0,
	    HTTP_BODY_LENGTH, 0);
	assert_memory_equal(resp.reason_phrase, " OK", 3);
}

static void
test_bad_status_line(void **state)
{
	(void)state;
	EXPECT_ERROR("HTTP/2 200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/2.0 200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.2 200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/0.9 200 OK\r\n\r\n");
	EXPECT_ERROR("http/1.1 200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 099 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 600 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 20 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 2000 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 20x OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1  200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1\t200 OK\r\n\r\n");
	EXPECT_ERROR(" HTTP/1.1 200 OK\r\n\r\n");
	EXPECT_ERROR("\r\nHTTP/1.1 200 OK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 O\rK\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 O\0K\r\n\r\n");
	EXPECT_ERROR("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
	/* judged as soon as it is wrong, not when the head is whole */
	EXPECT_ERROR("HTTX");
	EXPECT_ERROR("HTTP/1.1 6");
}

static void
test_bad_fields(void **state)
{
	(void)state;
	/* obs-fold, and whitespace before the first field */
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\r\n\tc\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\n A: b\r\n\r\n");
	/* whitespace before the colon */
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length\t: 5\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA b: c\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\n: c\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA\"b: c\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nnocolon\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA\xc3\xa9: c\r\n\r\n");
	/* bare LF and lone CR, anywhere */
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\r\n\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA\n: b\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\r\n\rX");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\n\n");
	/* NUL in a name or a value */
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nA\0: b\r\n\r\n");
}

static void
test_bad_framing(void **state)
{
	static const char no_body[] = "HTTP/1.1 304 x\r\nContent-Length: 1\r\n"
				      "Content-Length: 2\r\n\r\n";

	(void)state;
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		     "Content-Length: 5\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		     "Transfer-Encoding: gzip\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		     "Content-Length: 6\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\n"
		     "Content-Length: 18446744073709551616\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked"
		     "\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, "
		     "chunked\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;a=b\r\n"
		     "\r\n");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n"
		     "\r\n");
	EXPECT_ERROR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* no exemption for a body that will not be read */
	assert_int_equal(parse(no_body, sizeof(no_body) - 1, MAX_HEAD, 1),
	    HTTP_PARSE_ERROR);
}

/* "HTTP/1.1 200 OK\r\n", n fields "Xnnn: v\r\n", the empty line. */
static char *
many_fields(size_t n, size_t *len)
{
	char *p;
	size_t i, off;

	p = malloc(32 + n * 16);
	assert_non_null(p);
	off = (size_t)sprintf(p, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < n; i++)
		off += (size_t)sprintf(p + off, "X%03zu: v\r\n", i);
	off += (size_t)sprintf(p + off, "\r\n");
	*len = off;
	return p;
}

static void
test_too_many_fields(void **state)
{
	char *p;
	size_t len;

	(void)state;
	p = many_fields(HTTP_MAX_FIELDS, &len);
	assert_int_equal(parse(p, len, MAX_HEAD, 0), HTTP_PARSE_OK);
	assert_int_equal(resp.nfields, HTTP_MAX_FIELDS);
	free(p);
	p = many_fields(HTTP_MAX_FIELDS + 1, &len);
	assert_int_equal(parse(p, len, MAX_HEAD, 0), HTTP_PARSE_ERROR);
	/* known as soon as the extra field starts */
	assert_int_equal(parse(p, len - 10, MAX_HEAD, 0), HTTP_PARSE_ERROR);
	free(p);
}

static void
test_too_long(void **state)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				 "\r\nhi";
	size_t head = sizeof(in) - 1 - 2;

	(void)state;
	assert_int_equal(parse(in, sizeof(in) - 1, head, 0), HTTP_PARSE_OK);
	assert_int_equal(resp.headlen, head);
	assert_int_equal(parse(in, sizeof(in) - 1, head - 1, 0),
	    HTTP_PARSE_ERROR);
	assert_non_null(resp.reason);
	/* incomplete: an error once it cannot end within the limit */
	assert_int_equal(parse(in, head - 1, head, 0), HTTP_PARSE_INCOMPLETE);
	assert_int_equal(parse(in, head - 1, head - 1, 0), HTTP_PARSE_ERROR);
	assert_int_equal(parse(in, head - 1, head - 2, 0), HTTP_PARSE_ERROR);
	assert_int_equal(parse(in, 0, 0, 0), HTTP_PARSE_ERROR);
}

/* Every proper prefix of a good head is incomplete, the whole OK. */
static void
test_prefixes(void **state)
{
	static const char *heads[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\n",
	    "HTTP/1.0 204\r\n\r\n",
	    "HTTP/1.1 301 Moved\r\nLocation: http://a/\r\nA:\r\n\r\n",
	    "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	struct http_response whole;
	size_t i, k, len;
	char *copy;

	(void)state;
	for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		len = strlen(heads[i]);
		assert_int_equal(parse(heads[i], len, MAX_HEAD, 0),
		    HTTP_PARSE_OK);
		whole = resp;
		for (k = 0; k < len; k++) {
			/* exact-size copies: ASan sees any over-read */
			copy = malloc(k ? k : 1);
			assert_non_null(copy);
			memcpy(copy, heads[i], k);
			assert_int_equal(parse(copy, k, MAX_HEAD, 0),
			    HTTP_PARSE_INCOMPLETE);
			free(copy);
		}
		copy = malloc(len);
		assert_non_null(copy);
		memcpy(copy, heads[i], len);
		assert_int_equal(parse(copy, len, len, 0), HTTP_PARSE_OK);
		assert_int_equal(resp.headlen, len);
		assert_int_equal(resp.status, whole.status);
		assert_int_equal(resp.framing, whole.framing);
		assert_int_equal(resp.nfields, whole.nfields);
		free(copy);
	}
}

/* ---- serialisation ---- */

static const char *const internal[] = {"mail.internal:8080", "backend", "b2:80",
    "s:443", "[::1]:8080"};

static struct http_rewrite
rewrite_spec(void)
{
	struct http_rewrite rw;

	memset(&rw, 0, sizeof(rw));
	rw.public_scheme = "https";
	rw.public_host = "mail.example.com";
	rw.internal = internal;
	rw.ninternal = sizeof(internal) / sizeof(internal[0]);
	rw.out_framing = HTTP_BODY_CLOSE;
	return rw;
}

/* Serialise at every size: -1 and nothing past outsz until it fits. */
static void
expect_serialized(const char *in, int head_request,
    const struct http_rewrite *rw, const char *want)
{
	char *out;
	size_t wlen = strlen(want), sz;
	ssize_t n;

	assert_int_equal(parse(in, strlen(in), MAX_HEAD, head_request),
	    HTTP_PARSE_OK);
	out = malloc(wlen + 2);
	assert_non_null(out);
	for (sz = 0; sz <= wlen + 1; sz++) {
		memset(out, '#', wlen + 2);
		n = http_response_serialize(&resp, rw, out, sz);
		assert_int_equal(out[sz], '#');
		if (sz < wlen) {
			assert_int_equal(n, -1);
			continue;
		}
		assert_int_equal(n, wlen);
		assert_memory_equal(out, want, wlen);
	}
	free(out);
}

static void
test_serialize_hop_by_hop(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	rw.out_framing = HTTP_BODY_CHUNKED;
	expect_serialized("HTTP/1.1 200 OK\r\n"
			  "Date: today\r\n"
			  "Connection: keep-alive, X-Secret\r\n"
			  "Keep-Alive: timeout=5\r\n"
			  "x-secret: 1\r\n"
			  "Transfer-Encoding: chunked\r\n"
			  "TE: trailers\r\n"
			  "Trailer: Expires\r\n"
			  "Upgrade: h2c\r\n"
			  "Proxy-Connection: close\r\n"
			  "Proxy-Authenticate: Basic\r\n"
			  "Content-Type:  text/html \r\n"
			  "Strict-Transport-Security: max-age=1\r\n"
			  "Set-Cookie: a=b\r\n"
			  "Set-Cookie: c=d\r\n"
			  "\r\n",
	    0, &rw,
	    "HTTP/1.1 200 OK\r\n"
	    "Date: today\r\n"
	    "Content-Type: text/html\r\n"
	    "Strict-Transport-Security: max-age=1\r\n"
	    "Set-Cookie: a=b\r\n"
	    "Set-Cookie: c=d\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "\r\n");
}

static void
test_serialize_framing(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	rw.out_framing = HTTP_BODY_LENGTH;
	rw.out_length = 1234;
	expect_serialized("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 0,
	    &rw, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
	rw.out_framing = HTTP_BODY_NONE;
	rw.close = 1;
	expect_serialized("HTTP/1.0 304 Not Modified\r\nConnection: "
			  "keep-alive\r\nETag: \"x\"\r\n\r\n",
	    0, &rw,
	    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n"
	    "Connection: close\r\n\r\n");
	rw.out_framing = HTTP_BODY_CLOSE;
	expect_serialized("HTTP/1.1 200 OK\r\n\r\n", 0, &rw,
	    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

static void
test_serialize_reason(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	expect_serialized("HTTP/1.1 404 Nicht gefunden\t!\r\n\r\n", 0, &rw,
	    "HTTP/1.1 404 Nicht gefunden\t!\r\n\r\n");
	expect_serialized("HTTP/1.1 404 Nicht gef\xc3\xbcnden\r\n\r\n", 0, &rw,
	    "HTTP/1.1 404 Not Found\r\n\r\n");
	expect_serialized("HTTP/1.1 404 a\x7f\r\n\r\n", 0, &rw,
	    "HTTP/1.1 404 Not Found\r\n\r\n");
	expect_serialized("HTTP/1.1 502 a\x01\r\n\r\n", 0, &rw,
	    "HTTP/1.1 502 Bad Gateway\r\n\r\n");
	expect_serialized("HTTP/1.0 200\r\n\r\n", 0, &rw,
	    "HTTP/1.1 200 OK\r\n\r\n");
	expect_serialized("HTTP/1.1 200 \r\n\r\n", 0, &rw,
	    "HTTP/1.1 200 OK\r\n\r\n");
}

static void
test_serialize_hsts(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	rw.hsts = "max-age=31536000";
	rw.close = 1;
	expect_serialized("HTTP/1.1 200 OK\r\n"
			  "strict-transport-security: max-age=0\r\n"
			  "X: y\r\n\r\n",
	    0, &rw,
	    "HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n"
	    "Strict-Transport-Security: max-age=31536000\r\n\r\n");
}

static void
test_serialize_websocket(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	rw.websocket = 1;
	rw.out_framing = HTTP_BODY_LENGTH;
	rw.close = 1;
	expect_serialized("HTTP/1.1 101 Switching Protocols\r\n"
			  "Upgrade: websocket\r\n"
			  "Connection: Upgrade\r\n"
			  "Sec-WebSocket-Accept: "
			  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
			  "\r\n",
	    0, &rw,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\n"
	    "\r\n");
}

static void
test_serialize_rewrites(void **state)
{
	struct http_rewrite rw = rewrite_spec();

	(void)state;
	expect_serialized("HTTP/1.1 302 Found\r\n"
			  "Location: http://mail.internal:8080/zimbra/?a=b\r\n"
			  "content-location: HTTPS://BACKEND/x\r\n"
			  "Refresh: 5; url=http://b2/y\r\n"
			  "Link: <http://backend/z>\r\n"
			  "X-Location: http://backend/\r\n"
			  "Location: /relative\r\n"
			  "\r\n",
	    0, &rw,
	    "HTTP/1.1 302 Found\r\n"
	    "Location: https://mail.example.com/zimbra/?a=b\r\n"
	    "content-location: https://mail.example.com/x\r\n"
	    "Refresh: 5; url=https://mail.example.com/y\r\n"
	    "Link: <http://backend/z>\r\n"
	    "X-Location: http://backend/\r\n"
	    "Location: /relative\r\n"
	    "\r\n");
	/* a field that does not name an internal host is left alone */
	expect_serialized("HTTP/1.1 302 Found\r\n"
			  "Location: http://mail.internal/zimbra/\r\n\r\n",
	    0, &rw,
	    "HTTP/1.1 302 Found\r\n"
	    "Location: http://mail.internal/zimbra/\r\n\r\n");
}

/* http_rewrite_uri on its own: want NULL for no rewrite. */
static void
expect_rewrite(const char *in, const char *want)
{
	struct http_rewrite rw = rewrite_spec();
	char out[256];
	size_t wlen, sz;
	ssize_t n;

	n = http_rewrite_uri(in, strlen(in), &rw, out, sizeof(out));
	if (want == NULL) {
		assert_int_equal(n, -1);
		return;
	}
	wlen = strlen(want);
	assert_int_equal(n, wlen);
	assert_memory_equal(out, want, wlen);
	for (sz = 0; sz <= wlen; sz++) {
		memset(out, '#', sizeof(out));
		n = http_rewrite_uri(in, strlen(in), &rw, out, sz);
		assert_int_equal(n, sz < wlen ? -1 : (ssize_t)wlen);
		assert_int_equal(out[sz], '#');
	}
}

static void
test_rewrite_uri(void **state)
{
	(void)state;
	expect_rewrite("http://mail.internal:8080/x?y#z",
	    "https://mail.example.com/x?y#z");
	expect_rewrite("HtTp://Mail.Internal:8080/x",
	    "https://mail.example.com/x");
	expect_rewrite("http://mail.internal:8080", "https://mail.example.com");
	expect_rewrite("http://mail.internal:8080?q",
	    "https://mail.example.com?q");
	expect_rewrite("http://mail.internal:8080#f",
	    "https://mail.example.com#f");
	expect_rewrite("http://mail.internal/x", NULL);
	expect_rewrite("http://mail.internal:8081/x", NULL);
	expect_rewrite("http://mail.internal:80800/x", NULL);
	expect_rewrite("http://mail.internal:8080x/", NULL);
	expect_rewrite("http://mail.internal.evil:8080/", NULL);
	expect_rewrite("http://user@mail.internal:8080/", NULL);
	expect_rewrite("http://mail.internal:8080@evil/", NULL);
	expect_rewrite("ftp://mail.internal:8080/", NULL);
	expect_rewrite("/x", NULL);
	expect_rewrite("", NULL);
	expect_rewrite("http:/", NULL);
	/* a browser ends the authority at a backslash too */
	expect_rewrite("http://backend\\x", "https://mail.example.com\\x");
	/* IPv6 literals */
	expect_rewrite("http://[::1]:8080/x", "https://mail.example.com/x");
	expect_rewrite("http://[::1]/x", NULL);
	expect_rewrite("http://[::1]x:8080/x", NULL);
	/* a network-path reference: no scheme, so no default port */
	expect_rewrite("//backend/x", "https://mail.example.com/x");
	expect_rewrite("//backend:80/x", NULL);
	expect_rewrite("//mail.internal:8080/x", "https://mail.example.com/x");
}

static void
test_rewrite_default_ports(void **state)
{
	(void)state;
	/* "backend": either scheme on its own default port */
	expect_rewrite("http://backend/x", "https://mail.example.com/x");
	expect_rewrite("https://backend/x", "https://mail.example.com/x");
	expect_rewrite("http://backend:80/x", "https://mail.example.com/x");
	expect_rewrite("http://backend:/x", "https://mail.example.com/x");
	expect_rewrite("https://backend:443/x", "https://mail.example.com/x");
	expect_rewrite("http://backend:443/x", NULL);
	expect_rewrite("http://backend:8080/x", NULL);
	/* "b2:80" is http's default, "s:443" https's */
	expect_rewrite("http://b2/x", "https://mail.example.com/x");
	expect_rewrite("http://B2:0080/x", "https://mail.example.com/x");
	expect_rewrite("https://b2/x", NULL);
	expect_rewrite("https://b2:80/x", "https://mail.example.com/x");
	expect_rewrite("https://s/x", "https://mail.example.com/x");
	expect_rewrite("http://s/x", NULL);
	expect_rewrite("http://s:443/x", "https://mail.example.com/x");
}

static void
test_rewrite_refresh(void **state)
{
	(void)state;
	expect_rewrite("5; url=http://backend/x",
	    "5; url=https://mail.example.com/x");
	expect_rewrite("0;URL=http://backend/x",
	    "0;URL=https://mail.example.com/x");
	expect_rewrite("5 ; Url = 'http://backend/x'",
	    "5 ; Url = 'https://mail.example.com/x'");
	expect_rewrite("1.5, url=\"http://backend\"",
	    "1.5, url=\"https://mail.example.com\"");
	expect_rewrite("5;http://backend/x", "5;https://mail.example.com/x");
	expect_rewrite("5", NULL);
	expect_rewrite("5;", NULL);
	expect_rewrite("5; url=/x", NULL);
	expect_rewrite("5; url=http://other/x", NULL);
	expect_rewrite("x; url=http://backend/x", NULL);
	expect_rewrite("5 url=http://backend/x", NULL);
}

static void
test_rewrite_no_public(void **state)
{
	static const char *const odd[] = {"x:70000", ":80", "", NULL, "x:7a"};
	struct http_rewrite rw = rewrite_spec();
	char out[64];

	(void)state;
	rw.public_host = NULL;
	assert_int_equal(http_rewrite_uri("http://backend/", 15, &rw, out,
			     sizeof(out)),
	    -1);
	rw = rewrite_spec();
	rw.ninternal = 0;
	assert_int_equal(http_rewrite_uri("http://backend/", 15, &rw, out,
			     sizeof(out)),
	    -1);
	/* entries that are no authority never match, even themselves */
	rw = rewrite_spec();
	rw.internal = odd;
	rw.ninternal = sizeof(odd) / sizeof(odd[0]);
	assert_int_equal(http_rewrite_uri("http://x:70000/", 15, &rw, out,
			     sizeof(out)),
	    -1);
	assert_int_equal(http_rewrite_uri("http://:80/", 11, &rw, out,
			     sizeof(out)),
	    -1);
	assert_int_equal(http_rewrite_uri("http:///", 8, &rw, out, sizeof(out)),
	    -1);
	assert_int_equal(http_rewrite_uri("http://x:7a/", 12, &rw, out,
			     sizeof(out)),
	    -1);
}

/* What is sent parses again, with the same status and the new framing. */
static void
test_serialize_reparses(void **state)
{
	static const char in[] = "HTTP/1.1 307 Temporary Redirect\r\n"
				 "Location: http://backend:80/a\r\n"
				 "Transfer-Encoding: gzip, chunked\r\n"
				 "Connection: close\r\n\r\n";
	struct http_rewrite rw = rewrite_spec();
	char out[512];
	ssize_t n;

	(void)state;
	rw.out_framing = HTTP_BODY_CHUNKED;
	assert_int_equal(parse_str(in), HTTP_PARSE_OK);
	n = http_response_serialize(&resp, &rw, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(parse(out, (size_t)n, MAX_HEAD, 0), HTTP_PARSE_OK);
	assert_int_equal(resp.status, 307);
	assert_int_equal(resp.headlen, n);
	assert_int_equal(resp.framing, HTTP_BODY_CHUNKED);
	assert_int_equal(resp.close, 0);
	assert_int_equal(resp.nfields, 2);
	assert_field(0, "Location", "https://mail.example.com/a");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_length),
	    cmocka_unit_test(test_content_length_lists),
	    cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_close_delimited),
	    cmocka_unit_test(test_connection_close),
	    cmocka_unit_test(test_no_body),
	    cmocka_unit_test(test_status_lines),
	    cmocka_unit_test(test_bad_status_line),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_bad_framing),
	    cmocka_unit_test(test_too_many_fields),
	    cmocka_unit_test(test_too_long),
	    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_serialize_hop_by_hop),
	    cmocka_unit_test(test_serialize_framing),
	    cmocka_unit_test(test_serialize_reason),
	    cmocka_unit_test(test_serialize_hsts),
	    cmocka_unit_test(test_serialize_websocket),
	    cmocka_unit_test(test_serialize_rewrites),
	    cmocka_unit_test(test_rewrite_uri),
	    cmocka_unit_test(test_rewrite_default_ports),
	    cmocka_unit_test(test_rewrite_refresh),
	    cmocka_unit_test(test_rewrite_no_public),
	    cmocka_unit_test(test_serialize_reparses),
	};

	return cmocka_run_group_tests_name("http_response", tests, NULL, NULL);
}
