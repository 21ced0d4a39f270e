/*
 * HTTP/1.1 request heads (RFC 9112), read strictly: whatever a second
 * parser behind postern could read another way is refused, so the head
 * postern routes by is the head the upstream sees.  The head that goes
 * upstream is postern's own serialisation of what was parsed here.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define METHOD_MAX	32 /* longer method tokens are refused */
#define EMPTY_LINES_MAX 4  /* CRLFs tolerated before the request line */
#define VERSION_LEN	8  /* "HTTP/1.1" */

/* absolute-form with an empty path stands for "/" */
static const char root_path[] = "/";

struct scan {
	const char *buf;
	size_t len;
	size_t end; /* min(len, max_head): nothing past it is looked at */
	size_t max_head;
	size_t pos;
	int in_line;	       /* still in the request line */
	int done;	       /* the empty line that ends the head was read */
	const char *authority; /* of an absolute-form target */
	size_t authoritylen;
};

static enum http_parse_status
fail(struct http_request *req, int status, const char *reason)
{
	req->status = status;
	req->reason = reason;
	return HTTP_PARSE_ERROR;
}

/*
 * The fewest bytes a head still needs when the input runs out: inside a
 * line, its CRLF and the empty line; after a CR, the LF and the empty
 * line; at the start of a field line, the empty line; after its CR, LF.
 */
#define NEED_LINE    4
#define NEED_LF	     3
#define NEED_EMPTY   2
#define NEED_LAST_LF 1

/*
 * Out of bytes.  Only wait for more if the head could still end within
 * max_head: a peer must not hold a growing buffer in authproc.
 */
static enum http_parse_status
more(const struct scan *sc, struct http_request *req, size_t need)
{
	if (sc->len >= sc->max_head || need > sc->max_head - sc->len)
		return sc->in_line ? fail(req, 414, "request line too long")
				   : fail(req, 431, "head too large");
	return HTTP_PARSE_INCOMPLETE;
}

static int
is_vchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int
span_is(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static int
span_is_ci(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && strncasecmp(s, lit, len) == 0;
}

/*
 * Next member of a comma-separated list (RFC 9110 5.6.1), OWS trimmed;
 * empty members are skipped as the list rules allow.  0 at the end.
 */
static int
list_next(const char *v, size_t len, size_t *pos, const char **elem,
    size_t *elen)
{
	size_t i = *pos, start, end;

	for (;;) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i == len) {
			*pos = i;
			return 0;
		}
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (end > start)
			break;
	}
	*pos = i;
	*elem = v + start;
	*elen = end - start;
	return 1;
}

/* Like list_next, but an empty member is reported, not skipped. */
static int
list_next_strict(const char *v, size_t len, size_t *pos, const char **elem,
    size_t *elen)
{
	size_t i = *pos, start, end;

	if (i > len)
		return 0;
	start = i;
	while (i < len && v[i] != ',')
		i++;
	end = i;
	while (start < end && is_ows(v[start]))
		start++;
	while (end > start && is_ows(v[end - 1]))
		end--;
	*pos = i + 1; /* past the comma, or past len at the end */
	*elem = v + start;
	*elen = end - start;
	return 1;
}

static int
list_has_span(const char *v, size_t len, const char *tok, size_t toklen)
{
	const char *e;
	size_t pos = 0, elen;

	while (list_next(v, len, &pos, &e, &elen))
		if (elen == toklen && strncasecmp(e, tok, toklen) == 0)
			return 1;
	return 0;
}

/* RFC 9112 2.2: a server should ignore empty lines before the request. */
static enum http_parse_status
skip_empty_lines(struct scan *sc, struct http_request *req)
{
	int n;

	for (n = 0;; n++) {
		if (sc->pos == sc->end)
			return more(sc, req, NEED_LINE);
		if (sc->buf[sc->pos] == '\n')
			return fail(req, 400, "bare LF");
		if (sc->buf[sc->pos] != '\r')
			return HTTP_PARSE_OK;
		if (sc->pos + 1 == sc->end)
			return more(sc, req, NEED_LF);
		if (sc->buf[sc->pos + 1] != '\n')
			return fail(req, 400, "bare CR");
		if (n == EMPTY_LINES_MAX)
			return fail(req, 400, "too many empty lines");
		sc->pos += 2;
	}
}

static enum http_parse_status
parse_method(struct scan *sc, struct http_request *req)
{
	size_t start = sc->pos;

	while (sc->pos < sc->end && http_is_tchar(sc->buf[sc->pos])) {
		sc->pos++;
		if (sc->pos - start > METHOD_MAX)
			return fail(req, 400, "method too long");
	}
	if (sc->pos == sc->end)
		return more(sc, req, NEED_LINE);
	if (sc->pos == start || sc->buf[sc->pos] != ' ')
		return fail(req, 400, "bad method");
	req->method = sc->buf + start;
	req->methodlen = sc->pos - start;
	sc->pos++;
	/* a tunnel would carry bytes postern could not look at */
	if (span_is(req->method, req->methodlen, "CONNECT"))
		return fail(req, 501, "CONNECT not supported");
	return HTTP_PARSE_OK;
}

static enum http_parse_status
parse_target(struct scan *sc, const struct http_limits *lim,
    struct http_request *req)
{
	size_t start = sc->pos;

	while (sc->pos < sc->end && is_vchar(sc->buf[sc->pos])) {
		sc->pos++;
		if (sc->pos - start > lim->max_target)
			return fail(req, 414, "target too long");
	}
	if (sc->pos == sc->end)
		return more(sc, req, NEED_LINE);
	if (sc->pos == start || sc->buf[sc->pos] != ' ')
		return fail(req, 400, "bad target");
	req->target = sc->buf + start;
	req->targetlen = sc->pos - start;
	sc->pos++;
	return HTTP_PARSE_OK;
}

/* The version and the CRLF that ends the request line. */
static enum http_parse_status
parse_version(struct scan *sc, struct http_request *req, const char **v)
{
	size_t start = sc->pos;

	while (sc->pos < sc->end && is_vchar(sc->buf[sc->pos])) {
		sc->pos++;
		if (sc->pos - start > VERSION_LEN)
			return fail(req, 400, "bad HTTP version");
	}
	if (sc->pos == sc->end)
		return more(sc, req, NEED_LINE);
	if (sc->buf[sc->pos] == '\n')
		return fail(req, 400, "bare LF");
	if (sc->buf[sc->pos] != '\r' || sc->pos - start != VERSION_LEN)
		return fail(req, 400, "bad HTTP version");
	if (sc->pos + 1 == sc->end)
		return more(sc, req, NEED_LF);
	if (sc->buf[sc->pos + 1] != '\n')
		return fail(req, 400, "bare CR");
	sc->pos += 2;
	*v = sc->buf + start;
	return HTTP_PARSE_OK;
}

static enum http_parse_status
check_version(const char *v, struct http_request *req)
{
	if (memcmp(v, "HTTP/1.1", VERSION_LEN) == 0)
		return HTTP_PARSE_OK;
	if (memcmp(v, "HTTP/1.0", VERSION_LEN) == 0) {
		req->flags |= HTTP_REQ_HTTP10;
		return HTTP_PARSE_OK;
	}
	if (memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
	    !is_digit(v[7]))
		return fail(req, 400, "bad HTTP version");
	/* "PRI * HTTP/2.0": h2 prior knowledge, which postern does not do */
	if (memcmp(v, "HTTP/2.0", VERSION_LEN) == 0)
		return fail(req, 400, "HTTP/2 preface");
	return fail(req, 505, "HTTP version not supported");
}

/*
 * absolute-form: keep the authority to hold against Host, and reduce
 * the target to its path and query.
 */
static enum http_parse_status
reduce_absolute(struct scan *sc, struct http_request *req, size_t skip)
{
	const char *a = req->target + skip;
	size_t n = req->targetlen - skip, i = 0;

	while (i < n && a[i] != '/' && a[i] != '?')
		i++;
	if (i == 0)
		return fail(req, 400, "absolute-form without authority");
	if (i < n && a[i] == '?')
		return fail(req, 400, "absolute-form without path");
	sc->authority = a;
	sc->authoritylen = i;
	if (i == n) {
		req->target = root_path;
		req->targetlen = 1;
	} else {
		req->target = a + i;
		req->targetlen = n - i;
	}
	req->flags |= HTTP_REQ_ABSOLUTE;
	return HTTP_PARSE_OK;
}

static enum http_parse_status
check_target(struct scan *sc, struct http_request *req)
{
	const char *t = req->target;
	size_t n = req->targetlen;

	/* a fragment is never sent; it would read differently upstream */
	if (memchr(t, '#', n) != NULL)
		return fail(req, 400, "fragment in target");
	if (t[0] == '/')
		return HTTP_PARSE_OK;
	if (n == 1 && t[0] == '*') {
		if (!span_is(req->method, req->methodlen, "OPTIONS"))
			return fail(req, 400, "asterisk-form without OPTIONS");
		return HTTP_PARSE_OK;
	}
	if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
		return reduce_absolute(sc, req, 7);
	if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		return reduce_absolute(sc, req, 8);
	return fail(req, 400, "bad target");
}

static enum http_parse_status
parse_request_line(struct scan *sc, const struct http_limits *lim,
    struct http_request *req)
{
	enum http_parse_status st;
	const char *version = NULL;

	if ((st = parse_method(sc, req)) != HTTP_PARSE_OK ||
	    (st = parse_target(sc, lim, req)) != HTTP_PARSE_OK ||
	    (st = parse_version(sc, req, &version)) != HTTP_PARSE_OK ||
	    (st = check_version(version, req)) != HTTP_PARSE_OK)
		return st;
	return check_target(sc, req);
}

/* A field value: field-vchar, SP and HTAB up to CRLF (RFC 9110 5.5). */
static enum http_parse_status
parse_value(struct scan *sc, struct http_request *req, struct http_field *f)
{
	size_t start = sc->pos, end;
	unsigned char c;

	for (; sc->pos < sc->end; sc->pos++) {
		c = sc->buf[sc->pos];
		if (c == '\r')
			break;
		if (c == '\n')
			return fail(req, 400, "bare LF");
		if (c == '\0')
			return fail(req, 400, "NUL in field value");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(req, 400,
			    "control character in field value");
	}
	if (sc->pos == sc->end)
		return more(sc, req, NEED_LINE);
	if (sc->pos + 1 == sc->end)
		return more(sc, req, NEED_LF);
	if (sc->buf[sc->pos + 1] != '\n')
		return fail(req, 400, "CR in field value");
	end = sc->pos;
	sc->pos += 2;
	while (start < end && is_ows(sc->buf[start]))
		start++;
	while (end > start && is_ows(sc->buf[end - 1]))
		end--;
	f->value = sc->buf + start;
	f->valuelen = end - start;
	return HTTP_PARSE_OK;
}

/* One field line, or the empty line that ends the head. */
static enum http_parse_status
parse_field(struct scan *sc, struct http_request *req)
{
	struct http_field f;
	size_t start = sc->pos;
	enum http_parse_status st;
	char c;

	if (sc->pos == sc->end)
		return more(sc, req, NEED_EMPTY);
	c = sc->buf[sc->pos];
	if (c == '\r') {
		if (sc->pos + 1 == sc->end)
			return more(sc, req, NEED_LAST_LF);
		if (sc->buf[sc->pos + 1] != '\n')
			return fail(req, 400, "bare CR");
		sc->pos += 2;
		sc->done = 1;
		return HTTP_PARSE_OK;
	}
	if (c == '\n')
		return fail(req, 400, "bare LF");
	if (is_ows(c))
		return fail(req, 400, "obs-fold");
	if (req->nfields == HTTP_MAX_FIELDS)
		return fail(req, 431, "too many fields");
	while (sc->pos < sc->end && http_is_tchar(sc->buf[sc->pos]))
		sc->pos++;
	if (sc->pos == sc->end)
		return more(sc, req, NEED_LINE);
	if (is_ows(sc->buf[sc->pos]))
		return fail(req, 400, "whitespace before colon");
	if (sc->buf[sc->pos] != ':' || sc->pos == start)
		return fail(req, 400, "bad field name");
	f.name = sc->buf + start;
	f.namelen = sc->pos - start;
	sc->pos++;
	if ((st = parse_value(sc, req, &f)) != HTTP_PARSE_OK)
		return st;
	req->fields[req->nfields++] = f;
	return HTTP_PARSE_OK;
}

/*
 * A host name or IP literal and a port, nothing else: no userinfo, path,
 * list separator or space, since it goes on into X-Forwarded-Host.
 */
static int
plausible_authority(const char *h, size_t n)
{
	size_t i;
	unsigned char c;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		c = h[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    is_digit(c))
			continue;
		if (strchr("-._~:[]", c) == NULL || c == '\0')
			return 0;
	}
	return 1;
}

static enum http_parse_status
check_host(const struct scan *sc, struct http_request *req)
{
	const struct http_field *host = NULL;
	size_t i;

	for (i = 0; i < req->nfields; i++) {
		if (!http_field_is(&req->fields[i], "Host"))
			continue;
		if (host != NULL)
			return fail(req, 400, "several Host fields");
		host = &req->fields[i];
	}
	if (host == NULL)
		return fail(req, 400, "no Host");
	if (!plausible_authority(host->value, host->valuelen))
		return fail(req, 400, "bad Host");
	req->host = host->value;
	req->hostlen = host->valuelen;
	if (sc->authority != NULL &&
	    (sc->authoritylen != req->hostlen ||
		strncasecmp(sc->authority, req->host, req->hostlen) != 0))
		return fail(req, 400, "absolute-form for another host");
	return HTTP_PARSE_OK;
}

/* Digits only, at most 2^62: anything a peer might read otherwise fails. */
static int
parse_length(const char *s, size_t n, uint64_t *out)
{
	const uint64_t max = UINT64_C(1) << 62;
	uint64_t v = 0, d;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Every Content-Length member, over every field, must say the same. */
static enum http_parse_status
content_length(struct http_request *req, int *seen)
{
	const struct http_field *f;
	const char *e;
	size_t i, pos, elen;
	uint64_t v;

	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "Content-Length"))
			continue;
		pos = 0;
		while (
		    list_next_strict(f->value, f->valuelen, &pos, &e, &elen)) {
			if (parse_length(e, elen, &v) == -1)
				return fail(req, 400, "bad Content-Length");
			if (*seen && v != req->content_length)
				return fail(req, 400,
				    "differing Content-Length");
			req->content_length = v;
			*seen = 1;
		}
	}
	return HTTP_PARSE_OK;
}

/*
 * Transfer-Encoding over every field: chunked once and last.  Another
 * coding before it is refused too: postern forwards chunked alone, and
 * would otherwise drop a coding the body still carries.
 */
static enum http_parse_status
transfer_encoding(struct http_request *req, int *seen)
{
	const struct http_field *f;
	const char *e;
	size_t i, pos, elen;
	int nchunked = 0, last_chunked = 0, other = 0;

	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "Transfer-Encoding"))
			continue;
		*seen = 1;
		pos = 0;
		while (list_next(f->value, f->valuelen, &pos, &e, &elen)) {
			last_chunked = span_is_ci(e, elen, "chunked");
			if (last_chunked)
				nchunked++;
			else
				other = 1;
		}
	}
	if (!*seen)
		return HTTP_PARSE_OK;
	if (nchunked > 1)
		return fail(req, 400, "chunked twice");
	if (!last_chunked)
		return fail(req, 400,
		    "Transfer-Encoding not ending in chunked");
	if (other)
		return fail(req, 501, "transfer coding not supported");
	return HTTP_PARSE_OK;
}

static enum http_parse_status
check_framing(const struct http_limits *lim, struct http_request *req)
{
	enum http_parse_status st;
	int te = 0, cl = 0;

	if ((st = content_length(req, &cl)) != HTTP_PARSE_OK ||
	    (st = transfer_encoding(req, &te)) != HTTP_PARSE_OK)
		return st;
	if (te && cl)
		return fail(req, 400, "Content-Length with Transfer-Encoding");
	if (te && (req->flags & HTTP_REQ_HTTP10))
		return fail(req, 400, "Transfer-Encoding in HTTP/1.0");
	if (te) {
		req->framing = HTTP_BODY_CHUNKED;
		req->content_length = 0;
	} else if (cl) {
		if (lim->max_body != 0 && req->content_length > lim->max_body)
			return fail(req, 413, "body too large");
		req->framing = HTTP_BODY_LENGTH;
	} else
		req->framing = HTTP_BODY_NONE;
	return HTTP_PARSE_OK;
}

/*
 * Only 100-continue is defined (RFC 9110 10.1.1); anything else is an
 * expectation postern cannot meet: 417.  HTTP/1.0 expectations are
 * ignored, as the RFC requires for 100-continue.
 */
static enum http_parse_status
check_expect(struct http_request *req)
{
	const struct http_field *f;
	const char *e;
	size_t i, pos, elen;

	if (req->flags & HTTP_REQ_HTTP10)
		return HTTP_PARSE_OK;
	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "Expect"))
			continue;
		pos = 0;
		while (list_next(f->value, f->valuelen, &pos, &e, &elen)) {
			if (!span_is_ci(e, elen, "100-continue"))
				return fail(req, 417,
				    "unsupported expectation");
			req->flags |= HTTP_REQ_EXPECT_100;
		}
	}
	return HTTP_PARSE_OK;
}

static void
connection_flags(struct http_request *req)
{
	const struct http_field *f, *upgrade = NULL;
	size_t i, nupgrade = 0;
	int close = 0, keepalive = 0, conn_upgrade = 0;

	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (http_field_is(f, "Connection")) {
			close |= http_list_has(f->value, f->valuelen, "close");
			keepalive |=
			    http_list_has(f->value, f->valuelen, "keep-alive");
			conn_upgrade |=
			    http_list_has(f->value, f->valuelen, "upgrade");
		} else if (http_field_is(f, "Upgrade")) {
			upgrade = f;
			nupgrade++;
		}
	}
	if (close || ((req->flags & HTTP_REQ_HTTP10) && !keepalive))
		req->flags |= HTTP_REQ_CLOSE;
	/* RFC 6455 4.1: an HTTP/1.1 GET; one Upgrade field, or it is vague */
	if (span_is(req->method, req->methodlen, "GET") &&
	    !(req->flags & HTTP_REQ_HTTP10) && conn_upgrade && nupgrade == 1 &&
	    http_list_has(upgrade->value, upgrade->valuelen, "websocket"))
		req->flags |= HTTP_REQ_WEBSOCKET;
}

enum http_parse_status
http_request_parse(const char *buf, size_t len, const struct http_limits *lim,
    struct http_request *req)
{
	struct scan sc;
	enum http_parse_status st;

	memset(req, 0, sizeof(*req));
	memset(&sc, 0, sizeof(sc));
	sc.buf = buf;
	sc.len = len;
	sc.max_head = lim->max_head;
	sc.end = len < lim->max_head ? len : lim->max_head;
	sc.in_line = 1;
	if ((st = skip_empty_lines(&sc, req)) != HTTP_PARSE_OK ||
	    (st = parse_request_line(&sc, lim, req)) != HTTP_PARSE_OK)
		return st;
	sc.in_line = 0;
	while (!sc.done)
		if ((st = parse_field(&sc, req)) != HTTP_PARSE_OK)
			return st;
	req->headlen = sc.pos;
	if ((st = check_host(&sc, req)) != HTTP_PARSE_OK ||
	    (st = check_framing(lim, req)) != HTTP_PARSE_OK ||
	    (st = check_expect(req)) != HTTP_PARSE_OK)
		return st;
	if (span_is(req->method, req->methodlen, "HEAD"))
		req->flags |= HTTP_REQ_HEAD;
	connection_flags(req);
	return HTTP_PARSE_OK;
}

const struct http_field *
http_request_field(const struct http_request *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nfields; i++)
		if (http_field_is(&req->fields[i], name))
			return &req->fields[i];
	return NULL;
}

/* ---- the head postern forwards ---- */

struct outbuf {
	char *p;
	size_t sz;
	size_t n;
	int full;
};

static void
put(struct outbuf *o, const char *s, size_t len)
{
	if (o->full || len > o->sz - o->n) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->n, s, len);
	o->n += len;
}

static void
put_str(struct outbuf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void
put_field(struct outbuf *o, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	put(o, name, namelen);
	put(o, ": ", 2);
	put(o, value, valuelen);
	put(o, "\r\n", 2);
}

/* Hop-by-hop, or written afresh by postern. */
static const char *const dropped[] = {"Host", "Connection", "Keep-Alive", "TE",
    "Trailer", "Transfer-Encoding", "Content-Length", "Upgrade",
    "Proxy-Connection", "Proxy-Authorization", "X-Real-IP", "Forwarded"};

/*
 * Families a client could use to pass for a proxy: Zimbra and Jetty read
 * X-Forwarded-* and X-Originating-* from their trusted proxies.  The
 * client's X-Forwarded-For is handled on its own.
 */
static const char *const dropped_prefix[] = {"X-Forwarded-", "X-Originating-"};

static int
named_by_connection(const struct http_request *req, const struct http_field *f)
{
	const struct http_field *c;
	size_t i;

	for (i = 0; i < req->nfields; i++) {
		c = &req->fields[i];
		if (http_field_is(c, "Connection") &&
		    list_has_span(c->value, c->valuelen, f->name, f->namelen))
			return 1;
	}
	return 0;
}

static int
forwarded_as_is(const struct http_request *req, const struct http_field *f)
{
	size_t i, plen;

	for (i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
		if (http_field_is(f, dropped[i]))
			return 0;
	for (i = 0; i < sizeof(dropped_prefix) / sizeof(dropped_prefix[0]);
	     i++) {
		plen = strlen(dropped_prefix[i]);
		if (f->namelen >= plen &&
		    strncasecmp(f->name, dropped_prefix[i], plen) == 0)
			return 0;
	}
	/*
	 * An HTTP/1.0 client's expectation was ignored; so must upstream.
	 * One authproc met (it read the whole body) is met.
	 */
	if ((req->flags & (HTTP_REQ_HTTP10 | HTTP_REQ_CONTINUED)) &&
	    http_field_is(f, "Expect"))
		return 0;
	return !named_by_connection(req, f);
}

static void
put_framing(struct outbuf *o, const struct http_request *req)
{
	char num[32];
	int n;

	if (req->framing == HTTP_BODY_LENGTH) {
		n = snprintf(num, sizeof(num), "%llu",
		    (unsigned long long)req->content_length);
		put_field(o, "Content-Length", 14, num, (size_t)n);
	} else if (req->framing == HTTP_BODY_CHUNKED)
		put_str(o, "Transfer-Encoding: chunked\r\n");
}

static void
put_websocket(struct outbuf *o, const struct http_request *req)
{
	const struct http_field *up;

	if (!(req->flags & HTTP_REQ_WEBSOCKET) ||
	    (up = http_request_field(req, "Upgrade")) == NULL)
		return;
	put_str(o, "Connection: Upgrade\r\n");
	put_field(o, "Upgrade", 7, up->value, up->valuelen);
}

/* A trusted client's own X-Forwarded-For goes first, as one list. */
static void
put_forwarded_for(struct outbuf *o, const struct http_request *req,
    const struct http_forward *fwd)
{
	const struct http_field *f;
	size_t i;

	put_str(o, "X-Forwarded-For: ");
	for (i = 0; fwd->trust_forwarded && i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "X-Forwarded-For") || f->valuelen == 0 ||
		    named_by_connection(req, f))
			continue;
		put(o, f->value, f->valuelen);
		put(o, ", ", 2);
	}
	put_str(o, fwd->client_addr);
	put_str(o, "\r\n");
}

ssize_t
http_request_serialize(const struct http_request *req,
    const struct http_forward *fwd, char *out, size_t outsz)
{
	struct outbuf o = {out, outsz, 0, 0};
	const struct http_field *f;
	size_t i;

	put(&o, req->method, req->methodlen);
	put(&o, " ", 1);
	put(&o, req->target, req->targetlen);
	put_str(&o, " HTTP/1.1\r\n");
	put_field(&o, "Host", 4, req->host, req->hostlen);
	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (forwarded_as_is(req, f))
			put_field(&o, f->name, f->namelen, f->value,
			    f->valuelen);
	}
	put_framing(&o, req);
	put_websocket(&o, req);
	put_forwarded_for(&o, req, fwd);
	put_field(&o, "X-Real-IP", 9, fwd->client_addr,
	    strlen(fwd->client_addr));
	put_field(&o, "X-Forwarded-Proto", 17, fwd->scheme,
	    strlen(fwd->scheme));
	put_field(&o, "X-Forwarded-Host", 16, req->host, req->hostlen);
	put(&o, "\r\n", 2);
	if (o.full || o.n > SSIZE_MAX)
		return -1;
	return (ssize_t)o.n;
}
