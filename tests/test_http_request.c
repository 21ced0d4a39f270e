/*
 * HTTP/1.1 request heads (RFC 9112): strict parsing and the head postern
 * forwards upstream.
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

#define MAX_HEAD   1024
#define MAX_TARGET 256
#define MAX_BODY   1000000

static const struct http_limits limits = {MAX_HEAD, MAX_TARGET, MAX_BODY};

static struct http_request req;
static char *copy; /* the parsed bytes: req points into them */

/* An exact-size copy, so that ASan sees any read past len. */
static enum http_parse_status
parse_lim(const char *in, size_t len, const struct http_limits *lim)
{
	free(copy);
	copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, in, len);
	memset(&req, 0x5a, sizeof(req));
	return http_request_parse(copy, len, lim, &req);
}

static enum http_parse_status
parse(const char *in)
{
	return parse_lim(in, strlen(in), &limits);
}

static void
expect_ok(const char *in)
{
	assert_int_equal(parse(in), HTTP_PARSE_OK);
	assert_int_equal(req.headlen, strlen(in));
}

static void
expect_error(const char *in, int status)
{
	assert_int_equal(parse(in), HTTP_PARSE_ERROR);
	assert_int_equal(req.status, status);
	assert_non_null(req.reason);
}

static void
expect_reason(const char *in, int status, const char *reason)
{
	expect_error(in, status);
	assert_string_equal(req.reason, reason);
}

static void
assert_span(const char *p, size_t len, const char *want)
{
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
}

static void
assert_field(size_t i, const char *name, const char *value)
{
	assert_true(i < req.nfields);
	assert_span(req.fields[i].name, req.fields[i].namelen, name);
	assert_span(req.fields[i].value, req.fields[i].valuelen, value);
}

static int
group_teardown(void **state)
{
	(void)state;
	free(copy);
	copy = NULL;
	return 0;
}

static void
test_simple_get(void **state)
{
	(void)state;
	expect_ok("GET /home/bob/inbox?fmt=json HTTP/1.1\r\n"
		  "Host: mail.example.com\r\n"
		  "User-Agent: test\r\n"
		  "\r\n");
	assert_span(req.method, req.methodlen, "GET");
	assert_span(req.target, req.targetlen, "/home/bob/inbox?fmt=json");
	assert_span(req.host, req.hostlen, "mail.example.com");
	assert_int_equal(req.nfields, 2);
	assert_field(0, "Host", "mail.example.com");
	assert_field(1, "User-Agent", "test");
	assert_int_equal(req.framing, HTTP_BODY_NONE);
	assert_int_equal(req.flags, 0);
}

static void
test_body_not_consumed(void **state)
{
	const char *in = "POST /x HTTP/1.1\r\nHost: h\r\n"
			 "Content-Length: 4\r\n\r\nbody";

	(void)state;
	assert_int_equal(parse(in), HTTP_PARSE_OK);
	assert_int_equal(req.headlen, strlen(in) - 4);
	assert_int_equal(req.framing, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 4);
	/* a second request pipelined behind is not looked at either */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE\n\0"),
	    HTTP_PARSE_OK);
	assert_int_equal(req.headlen, 27);
}

static void
test_ows_trimmed(void **state)
{
	(void)state;
	expect_ok("GET / HTTP/1.1\r\nHost:h\r\nA: \t x y \t \r\nB:\r\n"
		  "C:   \r\n\r\n");
	assert_field(0, "Host", "h");
	assert_field(1, "A", "x y");
	assert_field(2, "B", "");
	assert_field(3, "C", "");
	/* obs-text and HTAB are field content */
	expect_ok("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\tau "
		  "lait\r\n\r\n");
	assert_field(1, "X", "caf\xc3\xa9\tau lait");
}

static void
test_leading_empty_lines(void **state)
{
	(void)state;
	expect_ok("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_span(req.method, req.methodlen, "GET");
	expect_ok("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
	expect_reason("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	    400, "too many empty lines");
	expect_reason("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare LF");
	expect_reason("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare CR");
	assert_int_equal(parse("\r\n\r\n"), HTTP_PARSE_INCOMPLETE);
	assert_int_equal(parse("\r"), HTTP_PARSE_INCOMPLETE);
}

static void
test_methods(void **state)
{
	char line[128];

	(void)state;
	expect_ok("PROPFIND /dav/ HTTP/1.1\r\nHost: h\r\n\r\n");
	expect_ok("X-MS-ENUMATTS /x HTTP/1.1\r\nHost: h\r\n\r\n");
	/* methods are case-sensitive tokens: "get" is another method */
	expect_ok("get / HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_span(req.method, req.methodlen, "get");
	expect_reason("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad method");
	expect_reason("GE@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad method");
	expect_reason("G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad method");
	expect_reason(" / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad method");
	expect_reason("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad method");
	expect_reason("GET\r\n\r\n", 400, "bad method");
	expect_reason("\x16\x03\x01\x02\x00\x01", 400, "bad method");
	/* 32 is the longest method */
	snprintf(line, sizeof(line), "%s / HTTP/1.1\r\nHost: h\r\n\r\n",
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF");
	expect_ok(line);
	snprintf(line, sizeof(line), "%s / HTTP/1.1\r\nHost: h\r\n\r\n",
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG");
	expect_reason(line, 400, "method too long");
	/* and is refused before the line ends */
	expect_reason("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", 400,
	    "method too long");
	expect_reason("CONNECT mail.example.com:443 HTTP/1.1\r\n"
		      "Host: mail.example.com:443\r\n\r\n",
	    501, "CONNECT not supported");
}

static void
test_separators(void **state)
{
	(void)state;
	expect_reason("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad target");
	expect_reason("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET /\r\nHost: h\r\n\r\n", 400, "bad target");
	expect_reason("GET / HTTP/1.1\rHost: h\r\n\r\n", 400, "bare CR");
}

static void
test_versions(void **state)
{
	(void)state;
	expect_ok("GET / HTTP/1.0\r\nHost: h\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_HTTP10 | HTTP_REQ_CLOSE);
	expect_ok("GET / HTTP/1.0\r\nHost: h\r\nConnection: "
		  "Keep-Alive\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_HTTP10);
	expect_reason("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505,
	    "HTTP version not supported");
	expect_error("GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505);
	expect_error("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
	expect_reason("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 400,
	    "HTTP/2 preface");
	expect_reason("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400,
	    "HTTP/2 preface");
	expect_reason("GET / http/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET / HTTP/1\r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400,
	    "bad HTTP version");
	expect_reason("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF");
}

static void
test_targets(void **state)
{
	static const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: "
					 "h\r\n\r\n";

	(void)state;
	expect_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_span(req.target, req.targetlen, "*");
	assert_int_equal(req.flags & HTTP_REQ_ABSOLUTE, 0);
	expect_reason("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "asterisk-form without OPTIONS");
	expect_reason("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad target");
	expect_reason("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad target");
	expect_reason("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "fragment in target");
	expect_reason("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad target");
	expect_reason("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad target");
	expect_reason("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad target");
	assert_int_equal(parse_lim(nul_target, sizeof(nul_target) - 1, &limits),
	    HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 400);
	assert_string_equal(req.reason, "bad target");
}

static void
test_absolute_form(void **state)
{
	(void)state;
	expect_ok("GET http://mail.example.com/home/bob?x=1 HTTP/1.1\r\n"
		  "Host: mail.example.com\r\n\r\n");
	assert_span(req.target, req.targetlen, "/home/bob?x=1");
	assert_true(req.flags & HTTP_REQ_ABSOLUTE);
	/* scheme and host compare case-insensitively */
	expect_ok("GET HTTPS://Mail.Example.COM:443/ HTTP/1.1\r\n"
		  "Host: mail.example.com:443\r\n\r\n");
	assert_span(req.target, req.targetlen, "/");
	expect_ok("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_span(req.target, req.targetlen, "/");
	assert_true(req.flags & HTTP_REQ_ABSOLUTE);
	expect_reason("GET http://evil.example.net/ HTTP/1.1\r\n"
		      "Host: mail.example.com\r\n\r\n",
	    400, "absolute-form for another host");
	expect_reason("GET http://mail.example.com:8080/ HTTP/1.1\r\n"
		      "Host: mail.example.com\r\n\r\n",
	    400, "absolute-form for another host");
	expect_reason("GET http://bob@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "absolute-form for another host");
	expect_reason("GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "absolute-form without authority");
	expect_reason("GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "absolute-form without path");
}

static void
test_target_limit(void **state)
{
	char buf[MAX_HEAD + 64];
	size_t n;

	(void)state;
	/* a target of max_target bytes is fine, one more is not */
	n = (size_t)snprintf(buf, sizeof(buf),
	    "GET /%0*d HTTP/1.1\r\n"
	    "Host: h\r\n\r\n",
	    MAX_TARGET - 1, 0);
	assert_true(n < sizeof(buf));
	expect_ok(buf);
	assert_int_equal(req.targetlen, MAX_TARGET);
	snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n",
	    MAX_TARGET, 0);
	expect_reason(buf, 414, "target too long");
	/* refused without waiting for the end of the line */
	snprintf(buf, sizeof(buf), "GET /%0*d", MAX_TARGET, 0);
	expect_reason(buf, 414, "target too long");
	snprintf(buf, sizeof(buf), "GET /%0*d", MAX_TARGET - 1, 0);
	assert_int_equal(parse(buf), HTTP_PARSE_INCOMPLETE);
}

static void
test_request_line_over_head_limit(void **state)
{
	struct http_limits lim = {64, 1024, 0};
	char buf[256];

	(void)state;
	/* max_target allows it but the head limit does not: still 414 */
	snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", 80,
	    0);
	assert_int_equal(parse_lim(buf, strlen(buf), &lim), HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 414);
	assert_int_equal(parse_lim(buf, 64, &lim), HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 414);
	/* a line cut at 61 bytes needs CRLF CRLF more: 65 > 64 */
	assert_int_equal(parse_lim(buf, 61, &lim), HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 414);
	assert_int_equal(parse_lim(buf, 60, &lim), HTTP_PARSE_INCOMPLETE);
}

/*
 * A head cut short in a field value, ending in tail, which still needs
 * need bytes: waits if that fits max_head, else 431 at once.
 */
static void
cut_at_limit(const char *tail, size_t need)
{
	const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
	char buf[MAX_HEAD + 64];
	int pad = (int)(MAX_HEAD - need - strlen(start) - strlen(tail));

	snprintf(buf, sizeof(buf), "%s%0*d%s", start, pad, 0, tail);
	assert_int_equal(strlen(buf) + need, MAX_HEAD);
	assert_int_equal(parse(buf), HTTP_PARSE_INCOMPLETE);
	snprintf(buf, sizeof(buf), "%s%0*d%s", start, pad + 1, 0, tail);
	expect_reason(buf, 431, "head too large");
}

static void
test_head_limit(void **state)
{
	const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
	char buf[MAX_HEAD + 64];
	size_t pad;

	(void)state;
	/* exactly max_head bytes */
	pad = MAX_HEAD - strlen(start) - 4;
	snprintf(buf, sizeof(buf), "%s%0*d\r\n\r\n", start, (int)pad, 0);
	assert_int_equal(strlen(buf), MAX_HEAD);
	expect_ok(buf);
	/* one more */
	snprintf(buf, sizeof(buf), "%s%0*d\r\n\r\n", start, (int)pad + 1, 0);
	expect_reason(buf, 431, "head too large");
	/* incomplete, but already at the limit: no point waiting */
	snprintf(buf, sizeof(buf), "%s%0*d", start, (int)pad + 4, 0);
	assert_int_equal(strlen(buf), MAX_HEAD);
	expect_reason(buf, 431, "head too large");
	/* nor when what must still come cannot fit */
	cut_at_limit("", 4);	   /* CRLF CRLF */
	cut_at_limit("\r", 3);	   /* LF CRLF */
	cut_at_limit("\r\n", 2);   /* CRLF */
	cut_at_limit("\r\n\r", 1); /* LF */
	/* and the limit holds when more than the head is buffered */
	snprintf(buf, sizeof(buf), "%s%0*d\r\n\r\nBODY", start, (int)pad + 1,
	    0);
	expect_error(buf, 431);
}

static void
test_too_many_fields(void **state)
{
	struct http_limits lim = {8192, 256, 0};
	char buf[4096];
	size_t n, i;

	(void)state;
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (i = 1; i < HTTP_MAX_FIELDS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "F%zu: v\r\n",
		    i);
	memcpy(buf + n, "\r\n", 3);
	assert_int_equal(parse_lim(buf, n + 2, &lim), HTTP_PARSE_OK);
	assert_int_equal(req.nfields, HTTP_MAX_FIELDS);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "F%zu: v\r\n\r\n", i);
	assert_int_equal(parse_lim(buf, n, &lim), HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 431);
	assert_string_equal(req.reason, "too many fields");
}

static void
test_field_syntax(void **state)
{
	(void)state;
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400,
	    "obs-fold");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400,
	    "obs-fold");
	expect_reason("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "obs-fold");
	expect_reason("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400,
	    "whitespace before colon");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: "
		      "5\r\n\r\n",
	    400, "whitespace before colon");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400,
	    "bad field name");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", 400,
	    "bad field name");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400,
	    "bad field name");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: v\r\n\r\n", 400,
	    "bad field name");
}

static void
test_field_value_controls(void **state)
{
	static const char nul_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX: "
					"a\0b\r\n\r\n";

	(void)state;
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400,
	    "CR in field value");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", 400,
	    "bare LF");
	assert_int_equal(parse_lim(nul_value, sizeof(nul_value) - 1, &limits),
	    HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 400);
	assert_string_equal(req.reason, "NUL in field value");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
		      "b\r\n\r\n",
	    400, "control character in field value");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[0m\r\n\r\n", 400,
	    "control character in field value");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400,
	    "control character in field value");
	/* refused as soon as seen */
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\n", 400, "bare LF");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb", 400,
	    "CR in field value");
}

static void
test_bare_lf(void **state)
{
	(void)state;
	expect_reason("GET / HTTP/1.1\nHost: h\n\n", 400, "bare LF");
	expect_reason("GET / HTTP/1.1\r\nHost: h\n\r\n", 400, "bare LF");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bare LF");
	expect_reason("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 400, "bare CR");
}

static void
test_host(void **state)
{
	(void)state;
	expect_reason("GET / HTTP/1.1\r\n\r\n", 400, "no Host");
	expect_reason("GET / HTTP/1.0\r\nX: y\r\n\r\n", 400, "no Host");
	expect_reason("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400,
	    "several Host fields");
	expect_reason("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400,
	    "several Host fields");
	expect_reason("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400, "bad Host");
	expect_reason("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400,
	    "bad Host");
	expect_ok("GET / HTTP/1.1\r\nHOST:  mail.example.com:8443 \r\n\r\n");
	assert_span(req.host, req.hostlen, "mail.example.com:8443");
	expect_ok("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n");
	expect_ok("GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n");
}

static void
test_content_length(void **state)
{
	(void)state;
	expect_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(req.framing, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 0);
	expect_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42, 42\r\n"
		  "content-length: 042\r\n\r\n");
	assert_int_equal(req.framing, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 42);
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n"
		      "Content-Length: 43\r\n\r\n",
	    400, "differing Content-Length");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 5\r\n"
		      "\r\n",
	    400, "differing Content-Length");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
		      "+5\r\n\r\n",
	    400, "bad Content-Length");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
		     "0x5\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 "
		     "5\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n",
	    400);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\n"
		     "Content-Length: 18446744073709551621\r\n\r\n",
	    400);
}

static void
test_content_length_limits(void **state)
{
	struct http_limits nolimit = {MAX_HEAD, MAX_TARGET, 0};
	const char *max = "POST / HTTP/1.1\r\nHost: h\r\n"
			  "Content-Length: 4611686018427387904\r\n\r\n";
	const char *over = "POST / HTTP/1.1\r\nHost: h\r\n"
			   "Content-Length: 4611686018427387905\r\n\r\n";

	(void)state;
	/* 2^62 is the largest length there is */
	assert_int_equal(parse_lim(max, strlen(max), &nolimit), HTTP_PARSE_OK);
	assert_true(req.content_length == UINT64_C(1) << 62);
	assert_int_equal(parse_lim(over, strlen(over), &nolimit),
	    HTTP_PARSE_ERROR);
	assert_int_equal(req.status, 400);
	expect_reason(max, 413, "body too large");
	expect_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n"
		  "\r\n");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
		      "1000001\r\n"
		      "\r\n",
	    413, "body too large");
}

static void
test_transfer_encoding(void **state)
{
	(void)state;
	expect_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
		  "\r\n");
	assert_int_equal(req.framing, HTTP_BODY_CHUNKED);
	expect_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n"
		  "\r\n");
	assert_int_equal(req.framing, HTTP_BODY_CHUNKED);
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n",
	    400, "Content-Length with Transfer-Encoding");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	    400, "Content-Length with Transfer-Encoding");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
		      "gzip\r\n"
		      "\r\n",
	    400, "Transfer-Encoding not ending in chunked");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked, gzip\r\n\r\n",
	    400, "Transfer-Encoding not ending in chunked");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked\r\n"
		      "Transfer-Encoding: identity\r\n\r\n",
	    400, "Transfer-Encoding not ending in chunked");
	expect_reason("POST / HTTP/1.1\r\nHost: "
		      "h\r\nTransfer-Encoding:\r\n\r\n",
	    400, "Transfer-Encoding not ending in chunked");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked, chunked\r\n\r\n",
	    400, "chunked twice");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n",
	    400, "chunked twice");
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked;ext=1\r\n\r\n",
	    400, "Transfer-Encoding not ending in chunked");
	/* a coding postern would drop when it forwards chunked alone */
	expect_reason("POST / HTTP/1.1\r\nHost: h\r\n"
		      "Transfer-Encoding: gzip, chunked\r\n\r\n",
	    501, "transfer coding not supported");
	expect_reason("POST / HTTP/1.0\r\nHost: h\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n",
	    400, "Transfer-Encoding in HTTP/1.0");
}

static void
test_flags(void **state)
{
	(void)state;
	expect_ok("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_HEAD);
	expect_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, "
		  "CLOSE\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_CLOSE);
	expect_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n");
	assert_int_equal(req.flags, 0);
	expect_ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
		  "Content-Length: 3\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_EXPECT_100);
	expect_reason("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
	    417, "unsupported expectation");
	expect_error("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x\r\n"
		     "\r\n",
	    417);
	/* an HTTP/1.0 client's expectations are ignored */
	expect_ok("PUT / HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_HTTP10 | HTTP_REQ_CLOSE);
	expect_ok("PUT / HTTP/1.0\r\nHost: h\r\nExpect: other\r\n\r\n");
}

static void
test_websocket(void **state)
{
	(void)state;
	expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		  "Connection: keep-alive, Upgrade\r\n"
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Version: 13\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_WEBSOCKET);
	expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: foo, WebSocket\r\n"
		  "Connection: upgrade\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_WEBSOCKET);
	expect_ok("POST /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		  "Connection: Upgrade\r\n\r\n");
	assert_int_equal(req.flags, 0);
	expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
	assert_int_equal(req.flags, 0);
	expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
		  "Connection: Upgrade\r\n\r\n");
	assert_int_equal(req.flags, 0);
	expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		  "Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n");
	assert_int_equal(req.flags, 0);
	expect_ok("GET /ws HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n"
		  "Connection: Upgrade\r\n\r\n");
	assert_int_equal(req.flags, HTTP_REQ_HTTP10 | HTTP_REQ_CLOSE);
}

static void
test_request_field(void **state)
{
	const struct http_field *f;

	(void)state;
	expect_ok("GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\ncookie: b=2\r\n"
		  "\r\n");
	f = http_request_field(&req, "COOKIE");
	assert_non_null(f);
	assert_span(f->value, f->valuelen, "a=1");
	assert_ptr_equal(http_request_field(&req, "host"), &req.fields[0]);
	assert_null(http_request_field(&req, "Cook"));
	assert_null(http_request_field(&req, "Cookies"));
}

static void
test_incomplete(void **state)
{
	(void)state;
	assert_int_equal(parse(""), HTTP_PARSE_INCOMPLETE);
	assert_int_equal(parse("GET"), HTTP_PARSE_INCOMPLETE);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n"),
	    HTTP_PARSE_INCOMPLETE);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\r"),
	    HTTP_PARSE_INCOMPLETE);
}

static const char *const valid[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "\r\n\r\nHEAD /x HTTP/1.0\r\nHost: a.b:80\r\nConnection: keep-alive\r\n"
    "\r\n",
    "POST /service/soap HTTP/1.1\r\nHost: mail.example.com\r\n"
    "Content-Type: application/soap+xml\r\nContent-Length: 12, 12\r\n"
    "Expect: 100-continue\r\n\r\n",
    "PUT /dav/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET http://h/ws?x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nX:\r\nY: \t\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
};

static void
assert_same(const struct http_request *a, const struct http_request *b)
{
	size_t i;

	assert_int_equal(a->headlen, b->headlen);
	assert_int_equal(a->methodlen, b->methodlen);
	assert_memory_equal(a->method, b->method, a->methodlen);
	assert_int_equal(a->targetlen, b->targetlen);
	assert_memory_equal(a->target, b->target, a->targetlen);
	assert_int_equal(a->hostlen, b->hostlen);
	assert_memory_equal(a->host, b->host, a->hostlen);
	assert_int_equal(a->framing, b->framing);
	assert_true(a->content_length == b->content_length);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->nfields, b->nfields);
	for (i = 0; i < a->nfields; i++) {
		assert_int_equal(a->fields[i].namelen, b->fields[i].namelen);
		assert_int_equal(a->fields[i].valuelen, b->fields[i].valuelen);
	}
}

static void
test_split_every_byte(void **state)
{
	static struct http_request whole;
	size_t i, k, len;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		len = strlen(valid[i]);
		/* parsed in place: whole's pointers stay valid */
		assert_int_equal(http_request_parse(valid[i], len, &limits,
				     &whole),
		    HTTP_PARSE_OK);
		assert_int_equal(whole.headlen, len);
		for (k = 0; k < len; k++)
			assert_int_equal(parse_lim(valid[i], k, &limits),
			    HTTP_PARSE_INCOMPLETE);
		assert_int_equal(parse_lim(valid[i], len, &limits),
		    HTTP_PARSE_OK);
		/* pointers differ (a new copy); lengths and values do not */
		assert_same(&req, &whole);
	}
}

/* ---- serialisation ---- */

static const struct http_forward fwd = {"192.0.2.7", "https", 0};
static const struct http_forward fwd_trust = {"192.0.2.7", "https", 1};

static void
expect_forward(const char *in, const struct http_forward *f, const char *want)
{
	char out[4096];
	ssize_t n;

	expect_ok(in);
	n = http_request_serialize(&req, f, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(want));
	assert_memory_equal(out, want, (size_t)n);
}

static void
test_serialize_plain(void **state)
{
	(void)state;
	expect_forward("GET /home/bob HTTP/1.1\r\nHost: mail.example.com\r\n"
		       "Accept: */*\r\nCookie: a=b\r\n\r\n",
	    &fwd,
	    "GET /home/bob HTTP/1.1\r\n"
	    "Host: mail.example.com\r\n"
	    "Accept: */*\r\n"
	    "Cookie: a=b\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\n"
	    "X-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: mail.example.com\r\n"
	    "\r\n");
}

static void
test_serialize_hop_by_hop(void **state)
{
	(void)state;
	expect_forward("POST /x HTTP/1.0\r\nhost: h\r\nA: 1\r\n"
		       "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
		       "TE: trailers\r\nTrailer: X-Sum\r\n"
		       "Content-Length: 3\r\nUpgrade: h2c\r\n"
		       "Proxy-Connection: keep-alive\r\n"
		       "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
		       "X-Real-IP: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
		       "X-Forwarded-Host: evil\r\nX-Forwarded-For: 10.0.0.2\r\n"
		       "x-forwarded-port: 1\r\nForwarded: for=10.0.0.3\r\n"
		       "X-Originating-IP: 10.0.0.4\r\nExpect: 100-continue\r\n"
		       "B: 2\r\n\r\n",
	    &fwd,
	    "POST /x HTTP/1.1\r\n"
	    "Host: h\r\n"
	    "A: 1\r\n"
	    "B: 2\r\n"
	    "Content-Length: 3\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\n"
	    "X-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n"
	    "\r\n");
}

static void
test_serialize_connection_named(void **state)
{
	(void)state;
	/* what Connection names goes, but not what postern writes itself */
	expect_forward("PUT /x HTTP/1.1\r\nHost: h\r\n"
		       "Connection: X-Secret, host, Content-Length\r\n"
		       "Connection: transfer-encoding, x-real-ip, "
		       "X-Forwarded-For, X-Forwarded-Proto, "
		       "X-Forwarded-Host\r\n"
		       "X-Secret: s\r\nX-Kept: k\r\nTransfer-Encoding: "
		       "chunked\r\n"
		       "\r\n",
	    &fwd,
	    "PUT /x HTTP/1.1\r\n"
	    "Host: h\r\n"
	    "X-Kept: k\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\n"
	    "X-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n"
	    "\r\n");
}

static void
test_serialize_forwarded_for(void **state)
{
	const char *in = "GET / HTTP/1.1\r\nHost: h\r\n"
			 "X-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n"
			 "X-Forwarded-For:\r\n"
			 "X-Forwarded-For: 198.51.100.3\r\n\r\n";

	(void)state;
	expect_forward(in, &fwd,
	    "GET / HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
	expect_forward(in, &fwd_trust,
	    "GET / HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 198.51.100.3, "
	    "192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
	/* trusted or not, the client never sets X-Real-IP or the others */
	expect_forward("GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 1.1.1.1\r\n"
		       "X-Forwarded-Proto: http\r\n\r\n",
	    &fwd_trust,
	    "GET / HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
}

static void
test_serialize_websocket(void **state)
{
	(void)state;
	expect_forward("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		       "Connection: keep-alive, Upgrade\r\n"
		       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		       "Sec-WebSocket-Version: 13\r\n\r\n",
	    &fwd,
	    "GET /ws HTTP/1.1\r\nHost: h\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
	/* not a WebSocket request: Upgrade goes */
	expect_forward("POST /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		       "Connection: Upgrade\r\n\r\n",
	    &fwd,
	    "POST /ws HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
}

static void
test_serialize_forms(void **state)
{
	(void)state;
	/* absolute-form goes upstream as origin-form */
	expect_forward("GET http://H/a?b HTTP/1.1\r\nHost: h\r\n\r\n", &fwd,
	    "GET /a?b HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
	expect_forward("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &fwd,
	    "OPTIONS * HTTP/1.1\r\nHost: h\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
	/* an HTTP/1.1 client's expectation is the upstream's to meet */
	expect_forward("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
		       "Content-Length: 10\r\n\r\n",
	    &fwd,
	    "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	    "Content-Length: 10\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\n"
	    "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: h\r\n\r\n");
}

static void
test_serialize_short_buffer(void **state)
{
	char want[4096], out[4096];
	ssize_t n;
	size_t sz;

	(void)state;
	expect_ok(valid[4]);
	n = http_request_serialize(&req, &fwd_trust, want, sizeof(want));
	assert_true(n > 0);
	for (sz = 0; sz < (size_t)n; sz++) {
		memset(out, 'Z', sizeof(out));
		assert_int_equal(http_request_serialize(&req, &fwd_trust, out,
				     sz),
		    -1);
		assert_int_equal(out[sz], 'Z');
		assert_int_equal(out[sizeof(out) - 1], 'Z');
	}
	memset(out, 'Z', sizeof(out));
	assert_int_equal(http_request_serialize(&req, &fwd_trust, out, sz), n);
	assert_memory_equal(out, want, (size_t)n);
	assert_int_equal(out[n], 'Z');
}

static void
test_serialize_reparse(void **state)
{
	char out[4096], method[64], target[MAX_TARGET + 1];
	enum http_framing framing;
	uint64_t length;
	unsigned int ws;
	ssize_t n;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		assert_int_equal(parse(valid[i]), HTTP_PARSE_OK);
		n = http_request_serialize(&req, &fwd_trust, out, sizeof(out));
		assert_true(n > 0);
		/* what the first parse said, before its bytes go */
		snprintf(method, sizeof(method), "%.*s", (int)req.methodlen,
		    req.method);
		snprintf(target, sizeof(target), "%.*s", (int)req.targetlen,
		    req.target);
		framing = req.framing;
		length = req.content_length;
		ws = req.flags & HTTP_REQ_WEBSOCKET;
		assert_int_equal(parse_lim(out, (size_t)n, &limits),
		    HTTP_PARSE_OK);
		assert_int_equal(req.headlen, (size_t)n);
		assert_span(req.method, req.methodlen, method);
		assert_span(req.target, req.targetlen, target);
		assert_int_equal(req.framing, framing);
		assert_true(req.content_length == length);
		assert_int_equal(req.flags & HTTP_REQ_HTTP10, 0);
		assert_int_equal(req.flags & HTTP_REQ_WEBSOCKET, ws);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_body_not_consumed),
	    cmocka_unit_test(test_ows_trimmed),
	    cmocka_unit_test(test_leading_empty_lines),
	    cmocka_unit_test(test_methods),
	    cmocka_unit_test(test_separators),
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_targets),
	    cmocka_unit_test(test_absolute_form),
	    cmocka_unit_test(test_target_limit),
	    cmocka_unit_test(test_request_line_over_head_limit),
	    cmocka_unit_test(test_head_limit),
	    cmocka_unit_test(test_too_many_fields),
	    cmocka_unit_test(test_field_syntax),
	    cmocka_unit_test(test_field_value_controls),
	    cmocka_unit_test(test_bare_lf),
	    cmocka_unit_test(test_host),
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_content_length_limits),
	    cmocka_unit_test(test_transfer_encoding),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_websocket),
	    cmocka_unit_test(test_request_field),
	    cmocka_unit_test(test_incomplete),
	    cmocka_unit_test(test_split_every_byte),
	    cmocka_unit_test(test_serialize_plain),
	    cmocka_unit_test(test_serialize_hop_by_hop),
	    cmocka_unit_test(test_serialize_connection_named),
	    cmocka_unit_test(test_serialize_forwarded_for),
	    cmocka_unit_test(test_serialize_websocket),
	    cmocka_unit_test(test_serialize_forms),
	    cmocka_unit_test(test_serialize_short_buffer),
	    cmocka_unit_test(test_serialize_reparse),
	};

	return cmocka_run_group_tests_name("http_request", tests, NULL,
	    group_teardown);
}
