/*
 * Response heads from upstreams, and the head postern sends on in their
 * place.  An upstream is trusted to route to but not to frame messages
 * sanely, so its head is read as strictly as a client's request: a head
 * the relay and the client could frame differently is refused (502),
 * and what is forwarded is postern's own serialisation, with its own
 * framing fields, never the upstream's bytes.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* What the scanning helpers return besides 1 (done). */
#define SCAN_MORE 0
#define SCAN_BAD  (-1)
#define SCAN_END  2 /* the empty line that ends the head */

struct cursor {
	const char *p;
	size_t len; /* readable: the input, capped at max_head */
	size_t off;
};

/* What the framing fields say, gathered over all of them. */
struct framing_scan {
	int te;		  /* a Transfer-Encoding field was seen */
	size_t ncodings;  /* transfer codings named so far */
	int chunked;	  /* "chunked" was one of them */
	int chunked_last; /* ... and the last so far */
	int cl;		  /* a Content-Length field was seen */
	uint64_t cl_value;
	int conn_close;
	int keep_alive;
};

static int
bad(struct http_response *r, const char *reason)
{
	r->reason = reason;
	return SCAN_BAD;
}

/* The LF after a CR at c->off; a CR alone or a bare LF is refused. */
static int
scan_crlf(struct cursor *c, struct http_response *r)
{
	if (c->off >= c->len)
		return SCAN_MORE;
	if (c->p[c->off] == '\n')
		return bad(r, "bare LF");
	if (c->p[c->off] != '\r')
		return bad(r, "line not ended by CRLF");
	if (c->off + 1 >= c->len)
		return SCAN_MORE;
	if (c->p[c->off + 1] != '\n')
		return bad(r, "CR not followed by LF");
	c->off += 2;
	return 1;
}

/* Text up to the CR: no NUL, no LF; CR only as the start of CRLF. */
static int
scan_text(struct cursor *c, struct http_response *r)
{
	const char *q;

	for (; c->off < c->len; c->off++) {
		q = c->p + c->off;
		if (*q == '\r')
			return 1;
		if (*q == '\n')
			return bad(r, "bare LF");
		if (*q == '\0')
			return bad(r, "NUL in response head");
	}
	return SCAN_MORE;
}

/* "HTTP/1.x SSS": judged byte by byte, so a wrong prefix fails early. */
static int
scan_version_status(struct cursor *c, struct http_response *r)
{
	static const char proto[] = "HTTP/1.";
	size_t i;
	unsigned char ch;

	for (i = 0; i < 13; i++) {
		if (c->off + i >= c->len)
			return SCAN_MORE;
		ch = c->p[c->off + i];
		if (i < 7 && ch != proto[i])
			return bad(r, "not an HTTP/1.x response");
		if (i == 7 && ch != '0' && ch != '1')
			return bad(r, "unsupported HTTP version");
		if (i == 8 && ch != ' ')
			return bad(r, "bad status line");
		if (i == 9 && (ch < '1' || ch > '5'))
			return bad(r, "bad status code");
		if (i > 9 && i < 12 && (ch < '0' || ch > '9'))
			return bad(r, "bad status code");
		if (i == 12 && ch != ' ' && ch != '\r' && ch != '\n')
			return bad(r, "bad status code");
	}
	r->version_minor = c->p[c->off + 7] - '0';
	r->status = (c->p[c->off + 9] - '0') * 100 +
	    (c->p[c->off + 10] - '0') * 10 + (c->p[c->off + 11] - '0');
	c->off += 12;
	return 1;
}

/* The reason phrase may be empty and its SP may be missing. */
static int
scan_status_line(struct cursor *c, struct http_response *r)
{
	int rv;

	if ((rv = scan_version_status(c, r)) != 1)
		return rv;
	if (c->p[c->off] == ' ')
		c->off++;
	r->reason_phrase = c->p + c->off;
	if ((rv = scan_text(c, r)) != 1)
		return rv;
	r->reason_phraselen = c->p + c->off - r->reason_phrase;
	return scan_crlf(c, r);
}

static void
trim_ows(const char **v, size_t *len)
{
	while (*len > 0 && http_is_ws((*v)[0])) {
		(*v)++;
		(*len)--;
	}
	while (*len > 0 && http_is_ws((*v)[*len - 1]))
		(*len)--;
}

/* "name:" with a token name and nothing between it and the colon. */
static int
scan_field_name(struct cursor *c, struct http_response *r, struct http_field *f)
{
	unsigned char ch;

	f->name = c->p + c->off;
	while (c->off < c->len && http_is_tchar(c->p[c->off]))
		c->off++;
	if (c->off >= c->len)
		return SCAN_MORE;
	f->namelen = c->p + c->off - f->name;
	ch = c->p[c->off];
	if (ch == ':' && f->namelen > 0) {
		c->off++;
		return 1;
	}
	if (http_is_ws(ch) && f->namelen > 0)
		return bad(r, "whitespace before colon");
	if (ch == '\n')
		return bad(r, "bare LF");
	return bad(r, "bad field name");
}

/* One field line, or SCAN_END at the empty line. */
static int
scan_field(struct cursor *c, struct http_response *r)
{
	struct http_field f;
	int rv;

	if (c->off >= c->len)
		return SCAN_MORE;
	if (c->p[c->off] == '\r' || c->p[c->off] == '\n')
		return (rv = scan_crlf(c, r)) == 1 ? SCAN_END : rv;
	/* obs-fold, or whitespace before the first field: both refused */
	if (http_is_ws(c->p[c->off]))
		return bad(r, "line starts with whitespace");
	if (r->nfields == HTTP_MAX_FIELDS)
		return bad(r, "too many fields");
	if ((rv = scan_field_name(c, r, &f)) != 1)
		return rv;
	f.value = c->p + c->off;
	if ((rv = scan_text(c, r)) != 1)
		return rv;
	f.valuelen = c->p + c->off - f.value;
	if ((rv = scan_crlf(c, r)) != 1)
		return rv;
	trim_ows(&f.value, &f.valuelen);
	r->fields[r->nfields++] = f;
	return 1;
}

/*
 * The next element of a comma-separated list, OWS trimmed; 0 at the
 * end.  Empty elements are returned too ("5," is "5" and ""): what may
 * be skipped is the caller's to say.  *pos starts at 0.
 */
static int
next_element(const char *v, size_t len, size_t *pos, const char **elem,
    size_t *elemlen)
{
	const char *comma;

	if (*pos > len)
		return 0;
	*elem = v + *pos;
	comma = memchr(*elem, ',', len - *pos);
	*elemlen = comma != NULL ? (size_t)(comma - *elem) : len - *pos;
	*pos += *elemlen + 1;
	trim_ows(elem, elemlen);
	return 1;
}

static int
element_is(const char *elem, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(elem, word, len) == 0;
}

static int
all_tchar(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!http_is_tchar(s[i]))
			return 0;
	return len > 0;
}

/* Codings accumulate over all Transfer-Encoding fields, in order. */
static int
scan_te(const struct http_field *f, struct framing_scan *fs,
    struct http_response *r)
{
	const char *e;
	size_t pos = 0, elen;

	fs->te = 1;
	while (next_element(f->value, f->valuelen, &pos, &e, &elen)) {
		if (elen == 0)
			continue;
		if (!all_tchar(e, elen))
			return bad(r, "bad Transfer-Encoding");
		fs->ncodings++;
		fs->chunked_last = element_is(e, elen, "chunked");
		if (fs->chunked_last && fs->chunked)
			return bad(r, "chunked applied twice");
		fs->chunked |= fs->chunked_last;
	}
	return 1;
}

static int
parse_decimal(const char *s, size_t len, uint64_t *v)
{
	size_t i;
	uint64_t d;

	*v = 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (uint64_t)(s[i] - '0');
		if (*v > (UINT64_MAX - d) / 10)
			return -1;
		*v = *v * 10 + d;
	}
	return len > 0 ? 0 : -1;
}

/* Every value, in a list or in repeated fields, must be the same. */
static int
scan_cl(const struct http_field *f, struct framing_scan *fs,
    struct http_response *r)
{
	const char *e;
	size_t pos = 0, elen;
	uint64_t v;

	while (next_element(f->value, f->valuelen, &pos, &e, &elen)) {
		if (parse_decimal(e, elen, &v) == -1)
			return bad(r, "bad Content-Length");
		if (fs->cl && v != fs->cl_value)
			return bad(r, "differing Content-Length");
		fs->cl = 1;
		fs->cl_value = v;
	}
	return 1;
}

static void
scan_connection(const struct http_field *f, struct framing_scan *fs)
{
	const char *e;
	size_t pos = 0, elen;

	while (next_element(f->value, f->valuelen, &pos, &e, &elen)) {
		if (element_is(e, elen, "close"))
			fs->conn_close = 1;
		else if (element_is(e, elen, "keep-alive"))
			fs->keep_alive = 1;
	}
}

static int
scan_framing_fields(struct http_response *r, struct framing_scan *fs)
{
	const struct http_field *f;
	size_t i;

	memset(fs, 0, sizeof(*fs));
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		if (http_field_is(f, "Transfer-Encoding")) {
			if (scan_te(f, fs, r) == SCAN_BAD)
				return SCAN_BAD;
		} else if (http_field_is(f, "Content-Length")) {
			if (scan_cl(f, fs, r) == SCAN_BAD)
				return SCAN_BAD;
		} else if (http_field_is(f, "Connection"))
			scan_connection(f, fs);
	}
	return 1;
}

/*
 * RFC 9112 section 6.3, in its order, and one step stricter: an HTTP/1.0
 * response with Transfer-Encoding, which the RFC has read as faulty
 * framing and the connection closed after it, is refused outright.
 */
static int
decide_framing(struct http_response *r, int head_request)
{
	struct framing_scan fs;

	if (scan_framing_fields(r, &fs) == SCAN_BAD)
		return SCAN_BAD;
	if (fs.te && fs.cl)
		return bad(r, "Transfer-Encoding with Content-Length");
	if (fs.te && fs.ncodings == 0)
		return bad(r, "empty Transfer-Encoding");
	if (fs.te && r->version_minor == 0)
		return bad(r, "Transfer-Encoding in HTTP/1.0");
	r->content_length = fs.cl ? fs.cl_value : 0;
	r->close = fs.conn_close || (r->version_minor == 0 && !fs.keep_alive);
	if (head_request || r->status < 200 || r->status == 204 ||
	    r->status == 304)
		r->framing = HTTP_BODY_NONE;
	else if (fs.te && fs.chunked_last)
		r->framing = HTTP_BODY_CHUNKED;
	else if (fs.cl)
		r->framing = HTTP_BODY_LENGTH;
	else
		r->framing = HTTP_BODY_CLOSE;
	if (r->framing == HTTP_BODY_CLOSE)
		r->close = 1;
	return 1;
}

static int
scan_head(struct cursor *c, struct http_response *r)
{
	int rv;

	if ((rv = scan_status_line(c, r)) != 1)
		return rv;
	while ((rv = scan_field(c, r)) == 1)
		;
	return rv;
}

/*
 * Only the first max_head bytes are looked at: a head that has not
 * ended by then never will within the limit, so it is an error, not
 * incomplete.
 */
enum http_parse_status
http_response_parse(const char *in, size_t len, size_t max_head,
    int head_request, struct http_response *r)
{
	struct cursor c;
	int rv;

	memset(r, 0, sizeof(*r));
	c.p = in;
	c.len = len < max_head ? len : max_head;
	c.off = 0;
	rv = scan_head(&c, r);
	if (rv == SCAN_MORE && len >= max_head)
		rv = bad(r, "response head too long");
	if (rv == SCAN_MORE)
		return HTTP_PARSE_INCOMPLETE;
	if (rv == SCAN_BAD)
		return HTTP_PARSE_ERROR;
	r->headlen = c.off;
	if (decide_framing(r, head_request) == SCAN_BAD)
		return HTTP_PARSE_ERROR;
	return HTTP_PARSE_OK;
}

/* ---- rewriting URIs that name an internal authority ---- */

#define RW_NOMATCH (-1)
#define RW_NOSPACE (-2)

static void
skip_ows(const char *v, size_t len, size_t *i)
{
	while (*i < len && http_is_ws(v[*i]))
		(*i)++;
}

/*
 * Refresh: "5; url=URI", and the forms browsers also take ("5;URI",
 * "5, url = 'URI'").  Returns where the URI starts, or 0 when the value
 * is not of that form (it may then be a plain URI); *quote is the quote
 * the URI was opened with, which is not part of it.
 */
static size_t
refresh_prefix(const char *v, size_t len, char *quote)
{
	size_t i = 0, j;

	*quote = '\0';
	while (i < len && ((v[i] >= '0' && v[i] <= '9') || v[i] == '.'))
		i++;
	if (i == 0)
		return 0;
	skip_ows(v, len, &i);
	if (i >= len || (v[i] != ';' && v[i] != ','))
		return 0;
	i++;
	skip_ows(v, len, &i);
	if (len - i >= 3 && strncasecmp(v + i, "url", 3) == 0) {
		j = i + 3;
		skip_ows(v, len, &j);
		if (j < len && v[j] == '=') {
			i = j + 1;
			skip_ows(v, len, &i);
		}
	}
	if (i < len && (v[i] == '\'' || v[i] == '"'))
		*quote = v[i++];
	return i;
}

/*
 * The authority of "http://", "https://" or "//": its offset and
 * length, and the port it implies when it names none (0 for "//",
 * which says nothing about the scheme).  -1 if the value is not one.
 */
static int
uri_authority(const char *u, size_t len, size_t *auth, size_t *authlen,
    long *default_port)
{
	size_t i;

	if (len >= 7 && strncasecmp(u, "http://", 7) == 0) {
		*auth = 7;
		*default_port = 80;
	} else if (len >= 8 && strncasecmp(u, "https://", 8) == 0) {
		*auth = 8;
		*default_port = 443;
	} else if (len >= 2 && u[0] == '/' && u[1] == '/') {
		*auth = 2;
		*default_port = 0;
	} else
		return -1;
	/* browsers end an http(s) authority at a backslash as well */
	for (i = *auth; i < len; i++)
		if (strchr("/?#\\", u[i]) != NULL)
			break;
	*authlen = i - *auth;
	return 0;
}

/* "host", "host:port" or "[v6]:port"; port -1 if it is not a port. */
static void
split_authority(const char *a, size_t len, long default_port, size_t *hostlen,
    long *port)
{
	const char *colon, *close;
	size_t i, plen;

	if (len > 0 && a[0] == '[' && (close = memchr(a, ']', len)) != NULL)
		colon = close + 1 < a + len ? close + 1 : NULL;
	else
		colon = memchr(a, ':', len);
	*hostlen = colon != NULL ? (size_t)(colon - a) : len;
	*port = default_port;
	if (colon == NULL || colon + 1 == a + len)
		return;
	if (*colon != ':' || (plen = a + len - colon - 1) > 5) {
		*port = -1;
		return;
	}
	for (*port = 0, i = 1; i <= plen; i++) {
		if (colon[i] < '0' || colon[i] > '9') {
			*port = -1;
			return;
		}
		*port = *port * 10 + (colon[i] - '0');
	}
	if (*port > 65535)
		*port = -1;
}

/*
 * An internal entry matches when the hosts are equal ignoring case and
 * the ports are equal once a missing port stands for the scheme's
 * default: entry "host:80" matches "http://host/", "host:443" matches
 * "https://host/", and "host" matches either scheme on its default
 * port.  Userinfo is never matched, so "http://x@host/" stays as it is.
 */
static int
internal_match(const char *a, size_t alen, long default_port,
    const struct http_rewrite *rw)
{
	size_t i, hostlen, ehostlen;
	long port, eport;
	const char *e;

	split_authority(a, alen, default_port, &hostlen, &port);
	if (hostlen == 0 || port < 0)
		return 0;
	for (i = 0; i < rw->ninternal; i++) {
		if ((e = rw->internal[i]) == NULL)
			continue;
		split_authority(e, strlen(e), default_port, &ehostlen, &eport);
		if (ehostlen == hostlen && eport == port &&
		    strncasecmp(e, a, hostlen) == 0)
			return 1;
	}
	return 0;
}

static int
put_piece(char *out, size_t outsz, size_t *n, const char *s, size_t len)
{
	if (len > outsz - *n)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	return 0;
}

static ssize_t
rewrite_value(const char *v, size_t len, const struct http_rewrite *rw,
    char *out, size_t outsz)
{
	size_t pre, ulen, auth, authlen, rest, n = 0;
	long default_port;
	char quote;

	if (rw->public_scheme == NULL || rw->public_host == NULL)
		return RW_NOMATCH;
	pre = refresh_prefix(v, len, &quote);
	ulen = len - pre;
	if (quote != '\0' && ulen > 0 && v[len - 1] == quote)
		ulen--;
	if (uri_authority(v + pre, ulen, &auth, &authlen, &default_port) ==
		-1 ||
	    !internal_match(v + pre + auth, authlen, default_port, rw))
		return RW_NOMATCH;
	rest = pre + auth + authlen;
	if (put_piece(out, outsz, &n, v, pre) == -1 ||
	    put_piece(out, outsz, &n, rw->public_scheme,
		strlen(rw->public_scheme)) == -1 ||
	    put_piece(out, outsz, &n, "://", 3) == -1 ||
	    put_piece(out, outsz, &n, rw->public_host,
		strlen(rw->public_host)) == -1 ||
	    put_piece(out, outsz, &n, v + rest, len - rest) == -1)
		return RW_NOSPACE;
	return (ssize_t)n;
}

/* The result is not NUL-terminated: it is a field value, with a length. */
ssize_t
http_rewrite_uri(const char *value, size_t len, const struct http_rewrite *rw,
    char *out, size_t outsz)
{
	ssize_t n;

	n = rewrite_value(value, len, rw, out, outsz);
	return n < 0 ? -1 : n;
}

/* ---- serialisation ---- */

struct outbuf {
	char *p;
	size_t size;
	size_t len;
	int full; /* something did not fit: the result is -1 */
};

static void
put(struct outbuf *o, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (o->full || n > o->size - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
put_str(struct outbuf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void
put_u64(struct outbuf *o, uint64_t v)
{
	char buf[24];
	int n;

	n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	put(o, buf, (size_t)n);
}

/* Only a phrase a client cannot misread is passed on. */
static int
reason_is_clean(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != '\t' && (s[i] < 0x20 || s[i] > 0x7e))
			return 0;
	return len > 0;
}

static void
put_status_line(struct outbuf *o, const struct http_response *r)
{
	put_str(o, "HTTP/1.1 ");
	put_u64(o, (uint64_t)r->status);
	put_str(o, " ");
	if (reason_is_clean(r->reason_phrase, r->reason_phraselen))
		put(o, r->reason_phrase, r->reason_phraselen);
	else
		put_str(o, http_status_text(r->status));
	put_str(o, "\r\n");
}

static int
named_by_connection(const struct http_response *r, const struct http_field *f)
{
	const char *e;
	size_t i, pos, elen;

	for (i = 0; i < r->nfields; i++) {
		if (!http_field_is(&r->fields[i], "Connection"))
			continue;
		pos = 0;
		while (next_element(r->fields[i].value, r->fields[i].valuelen,
		    &pos, &e, &elen))
			if (elen == f->namelen &&
			    strncasecmp(e, f->name, elen) == 0)
				return 1;
	}
	return 0;
}

/*
 * Proxy-Authenticate goes too: postern is no proxy a client logs in
 * to, and a challenge for one would only confuse it.
 */
static int
dropped(const struct http_response *r, const struct http_field *f,
    const struct http_rewrite *rw)
{
	static const char *const hop[] = {"Connection", "Keep-Alive", "TE",
	    "Trailer", "Transfer-Encoding", "Content-Length", "Upgrade",
	    "Proxy-Connection", "Proxy-Authenticate"};
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (http_field_is(f, hop[i]))
			return 1;
	if (rw->hsts != NULL && http_field_is(f, "Strict-Transport-Security"))
		return 1;
	return named_by_connection(r, f);
}

static int
rewritable(const struct http_field *f)
{
	return http_field_is(f, "Location") ||
	    http_field_is(f, "Content-Location") || http_field_is(f, "Refresh");
}

static void
put_field(struct outbuf *o, const struct http_field *f,
    const struct http_rewrite *rw)
{
	ssize_t n = RW_NOMATCH;

	put(o, f->name, f->namelen);
	put_str(o, ": ");
	if (o->full)
		return;
	if (rewritable(f))
		n = rewrite_value(f->value, f->valuelen, rw, o->p + o->len,
		    o->size - o->len);
	if (n == RW_NOSPACE)
		o->full = 1;
	else if (n >= 0)
		o->len += (size_t)n;
	else
		put(o, f->value, f->valuelen);
	put_str(o, "\r\n");
}

/* What postern itself says about the connection and the body. */
static void
put_own_fields(struct outbuf *o, const struct http_response *r,
    const struct http_rewrite *rw)
{
	size_t i;

	if (rw->websocket) {
		put_str(o, "Connection: Upgrade\r\n");
		for (i = 0; i < r->nfields; i++)
			if (http_field_is(&r->fields[i], "Upgrade"))
				put_field(o, &r->fields[i], rw);
	} else {
		if (rw->out_framing == HTTP_BODY_LENGTH) {
			put_str(o, "Content-Length: ");
			put_u64(o, rw->out_length);
			put_str(o, "\r\n");
		} else if (rw->out_framing == HTTP_BODY_CHUNKED)
			put_str(o, "Transfer-Encoding: chunked\r\n");
		if (rw->close)
			put_str(o, "Connection: close\r\n");
	}
	if (rw->hsts != NULL) {
		put_str(o, "Strict-Transport-Security: ");
		put_str(o, rw->hsts);
		put_str(o, "\r\n");
	}
}

/*
 * out must not overlap the buffer r points into.  Nothing is written
 * past outsz; on -1 the contents of out are unspecified.
 */
ssize_t
http_response_serialize(const struct http_response *r,
    const struct http_rewrite *rw, char *out, size_t outsz)
{
	struct outbuf o = {out, outsz, 0, 0};
	size_t i;

	put_status_line(&o, r);
	for (i = 0; i < r->nfields; i++)
		if (!dropped(r, &r->fields[i], rw))
			put_field(&o, &r->fields[i], rw);
	put_own_fields(&o, r, rw);
	put_str(&o, "\r\n");
	return o.full ? -1 : (ssize_t)o.len;
}
