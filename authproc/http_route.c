/*
 * Which account an HTTP request is for, so that it goes to that account's
 * mailbox server the way Zimbra's own proxy routes it: the user in the
 * path, the user of Basic credentials, or the account id inside the
 * auth token.  Nothing here authenticates: a wrong key only picks a
 * wrong upstream, which then refuses or proxies on its own.
 */
#include <resolv.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define BASIC_B64_MAX 4096 /* longer Basic credentials are refused */
#define TOKEN_MAX     4096 /* longer zauthtoken arguments are ignored */
#define NAME_BUFSZ    (HTTP_USER_MAX + 2) /* room for a leading '~' */

#define DECODE_MALFORMED (-1)
#define DECODE_TOO_LONG	 (-2)

static const char *const default_prefixes[] = {"/home/", "/service/home/",
    "/dav/", "/principals/users/", "/calendars/", "/addressbooks/"};

void
http_route_conf_default(struct http_route_conf *conf)
{
	size_t i;

	memset(conf, 0, sizeof(*conf));
	conf->use_path = 1;
	conf->use_basic = 1;
	conf->use_cookie = 1;
	for (i = 0; i < sizeof(default_prefixes) / sizeof(default_prefixes[0]);
	     i++)
		memcpy(conf->prefixes[i], default_prefixes[i],
		    strlen(default_prefixes[i]) + 1);
	conf->nprefixes = i;
	memcpy(conf->cookie, "ZM_AUTH_TOKEN", sizeof("ZM_AUTH_TOKEN"));
}

int
http_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode once into out, NUL-terminated; the length, or
 * DECODE_MALFORMED (checked over all of the input, so that the answer
 * does not depend on outsz) or DECODE_TOO_LONG.
 */
ssize_t
http_pct_decode(const char *in, size_t len, char *out, size_t outsz,
    int plus_is_space)
{
	size_t i, n = 0;
	int hi, lo, c;

	for (i = 0; i < len; i++, n++) {
		c = (unsigned char)in[i];
		if (c == '+' && plus_is_space)
			c = ' ';
		else if (c == '%') {
			if (len - i < 3 ||
			    (hi = http_hex_digit(in[i + 1])) == -1 ||
			    (lo = http_hex_digit(in[i + 2])) == -1)
				return DECODE_MALFORMED;
			c = hi << 4 | lo;
			i += 2;
		}
		if (n + 1 < outsz)
			out[n] = (char)c;
	}
	if (n + 1 > outsz)
		return DECODE_TOO_LONG;
	out[n] = '\0';
	return (ssize_t)n;
}

/* A name to route by: no controls, spaces or '/', not a dot segment. */
int
http_usable_name(const char *s, size_t n)
{
	size_t i;
	unsigned char c;

	if (n == 0 || n > HTTP_USER_MAX)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c <= 0x20 || c == 0x7f || c == '/')
			return 0;
	}
	return 1;
}

static void
set_key(struct http_route_key *key, enum http_key_kind kind,
    enum http_key_source src, const char *s, size_t n)
{
	key->kind = kind;
	key->source = src;
	memcpy(key->key, s, n);
	key->key[n] = '\0';
}

/* The query of a target: after the first '?'. */
static void
query_of(const char *t, size_t len, const char **q, size_t *qlen)
{
	const char *mark = memchr(t, '?', len);

	if (mark == NULL) {
		*q = t + len;
		*qlen = 0;
	} else {
		*q = mark + 1;
		*qlen = len - (size_t)(mark + 1 - t);
	}
}

/* The raw value of the first argument called name (case-insensitive). */
static int
query_find(const char *t, size_t len, const char *name, const char **val,
    size_t *vlen)
{
	const char *q, *pair, *amp, *eq;
	size_t qlen, plen, nlen = strlen(name);

	query_of(t, len, &q, &qlen);
	while (qlen > 0) {
		pair = q;
		amp = memchr(q, '&', qlen);
		plen = amp != NULL ? (size_t)(amp - q) : qlen;
		q += plen;
		qlen -= plen;
		if (amp != NULL) {
			q++;
			qlen--;
		}
		eq = memchr(pair, '=', plen);
		if ((eq != NULL ? (size_t)(eq - pair) : plen) != nlen ||
		    strncasecmp(pair, name, nlen) != 0)
			continue;
		*val = eq != NULL ? eq + 1 : pair + plen;
		*vlen = eq != NULL ? plen - nlen - 1 : 0;
		return 1;
	}
	return 0;
}

/* '+' stays '+': ActiveSync and Zimbra arguments are not form-encoded. */
int
http_query_arg(const char *target, size_t len, const char *name, char *out,
    size_t outsz)
{
	const char *v;
	size_t vlen;
	ssize_t n;

	if (outsz > 0)
		out[0] = '\0';
	if (!query_find(target, len, name, &v, &vlen))
		return 0;
	if (outsz == 0 || (n = http_pct_decode(v, vlen, out, outsz, 0)) < 0 ||
	    memchr(out, '\0', (size_t)n) != NULL) {
		if (outsz > 0)
			out[0] = '\0';
		return -1;
	}
	return 1;
}

/*
 * Decode a name, drop a leading '~' (Zimbra's "/home/~user/") and keep it
 * if usable.  1: a key was set, 0: no usable name, -1: malformed.
 */
static int
name_key(const char *raw, size_t rawlen, enum http_key_source src,
    struct http_route_key *key)
{
	char name[NAME_BUFSZ];
	const char *s = name;
	ssize_t n;

	n = http_pct_decode(raw, rawlen, name, sizeof(name), 0);
	if (n == DECODE_MALFORMED)
		return -1;
	if (n < 0)
		return 0;
	if (n > 0 && name[0] == '~') {
		s++;
		n--;
	}
	if (!http_usable_name(s, (size_t)n))
		return 0;
	set_key(key, HTTP_KEY_USER, src, s, (size_t)n);
	return 1;
}

static size_t
path_len(const char *t, size_t len)
{
	const char *mark = memchr(t, '?', len);

	return mark != NULL ? (size_t)(mark - t) : len;
}

/* The segment after the first configured prefix the path starts with. */
static int
prefix_key(const char *t, size_t len, const struct http_route_conf *conf,
    struct http_route_key *key)
{
	size_t i, plen, pathlen = path_len(t, len), seg, end;
	uint32_t n = conf->nprefixes;

	if (n > HTTP_MAX_PREFIXES)
		n = HTTP_MAX_PREFIXES;
	for (i = 0; i < n; i++) {
		plen = strnlen(conf->prefixes[i], HTTP_PREFIX_MAX);
		if (plen == 0 || plen > pathlen ||
		    memcmp(t, conf->prefixes[i], plen) != 0)
			continue;
		seg = plen;
		end = seg;
		while (end < pathlen && t[end] != '/')
			end++;
		return name_key(t + seg, end - seg, HTTP_SRC_PATH, key);
	}
	return 0;
}

static int
activesync_key(const char *t, size_t len, struct http_route_key *key)
{
	static const char as[] = "/Microsoft-Server-ActiveSync";
	size_t pathlen = path_len(t, len), aslen = sizeof(as) - 1;
	const char *v;
	size_t vlen;

	if (pathlen < aslen || strncasecmp(t, as, aslen) != 0 ||
	    (pathlen != aslen && !(pathlen == aslen + 1 && t[aslen] == '/')))
		return 0;
	if (!query_find(t, len, "User", &v, &vlen))
		return 0;
	return name_key(v, vlen, HTTP_SRC_QUERY, key);
}

static int
path_key(const struct http_request *req, const struct http_route_conf *conf,
    struct http_route_key *key)
{
	int r;

	if ((r = prefix_key(req->target, req->targetlen, conf, key)) != 0)
		return r;
	return activesync_key(req->target, req->targetlen, key);
}

/* "DOMAIN\\user" is how Windows clients say "user@DOMAIN". */
static void
windows_name(const char *u, size_t ulen, char *user, size_t usersz)
{
	char name[HTTP_USER_MAX + 1];
	const char *bs = memchr(u, '\\', ulen), *nm = u;
	size_t dlen = 0, nlen = ulen, n;

	user[0] = '\0';
	if (bs != NULL) {
		dlen = (size_t)(bs - u);
		nm = bs + 1;
		nlen = ulen - dlen - 1;
	}
	n = nlen + (dlen > 0 ? dlen + 1 : 0);
	if (n > HTTP_USER_MAX || n >= usersz)
		return;
	memcpy(name, nm, nlen);
	if (dlen > 0) {
		name[nlen] = '@';
		memcpy(name + nlen + 1, u, dlen);
	}
	if (http_usable_name(name, n)) {
		memcpy(user, name, n);
		user[n] = '\0';
	}
}

static int
is_b64char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* The user before the first ':' of decoded credentials; -1 if none. */
static int
split_user(const unsigned char *raw, size_t n, char *user, size_t usersz)
{
	const unsigned char *colon = memchr(raw, ':', n);
	const unsigned char *bs;
	size_t ulen;

	if (colon == NULL || colon == raw)
		return -1;
	ulen = (size_t)(colon - raw);
	bs = memchr(raw, '\\', ulen);
	if (bs != NULL && bs == colon - 1)
		return -1; /* "DOMAIN\" names nobody */
	windows_name((const char *)raw, ulen, user, usersz);
	return 1;
}

/*
 * The user of "Basic <token68>" credentials (RFC 7617).  Returns 1 with
 * the user in user (empty if it is no usable name: controls, spaces, '/'
 * or longer than usersz - 1 or HTTP_USER_MAX), 0 for another scheme, -1
 * for Basic credentials that are malformed.  The password is decoded
 * only into a stack buffer that is wiped before returning.
 */
int
http_basic_user(const char *value, size_t len, char *user, size_t usersz)
{
	char b64[BASIC_B64_MAX + 1];
	unsigned char raw[BASIC_B64_MAX / 4 * 3 + 3];
	size_t i = 0, j, n;
	int r, rawlen;

	if (usersz == 0)
		return -1;
	user[0] = '\0';
	while (i < len && value[i] != ' ')
		i++;
	if (i != 5 || strncasecmp(value, "Basic", 5) != 0)
		return 0;
	while (i < len && value[i] == ' ')
		i++;
	n = len - i;
	if (n == 0 || n > BASIC_B64_MAX)
		return -1;
	for (j = i; j < len; j++)
		if (!is_b64char(value[j]))
			return -1;
	memcpy(b64, value + i, n);
	b64[n] = '\0';
	rawlen = b64_pton(b64, raw, sizeof(raw));
	explicit_bzero(b64, sizeof(b64));
	r = rawlen < 0 ? -1 : split_user(raw, (size_t)rawlen, user, usersz);
	explicit_bzero(raw, sizeof(raw));
	return r;
}

static int
basic_key(const struct http_request *req, struct http_route_key *key)
{
	const struct http_field *f;
	size_t i;
	int r;

	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "Authorization"))
			continue;
		r = http_basic_user(f->value, f->valuelen, key->basic_user,
		    sizeof(key->basic_user));
		if (r == 0)
			continue;
		if (r < 0)
			return -1;
		key->has_basic = 1;
		if (key->kind == HTTP_KEY_NONE && key->basic_user[0] != '\0')
			set_key(key, HTTP_KEY_USER, HTTP_SRC_BASIC,
			    key->basic_user, strlen(key->basic_user));
		return 0;
	}
	return 0;
}

/* RFC 6265 4.2.1: "name=value" pairs split by "; ". */
int
http_cookie_value(const char *header, size_t len, const char *name,
    const char **value, size_t *valuelen)
{
	size_t i = 0, start, end, nlen = strlen(name);
	const char *v;

	while (i < len) {
		while (i < len && (header[i] == ' ' || header[i] == '\t'))
			i++;
		start = i;
		while (i < len && header[i] != ';')
			i++;
		end = i++;
		while (end > start &&
		    (header[end - 1] == ' ' || header[end - 1] == '\t'))
			end--;
		if (end - start <= nlen || header[start + nlen] != '=' ||
		    memcmp(header + start, name, nlen) != 0)
			continue;
		v = header + start + nlen + 1;
		*valuelen = end - (start + nlen + 1);
		if (*valuelen >= 2 && v[0] == '"' && v[*valuelen - 1] == '"') {
			v++;
			*valuelen -= 2;
		}
		*value = v;
		return 1;
	}
	return 0;
}

/* One byte of the hex-encoded token data (already checked to be hex). */
static int
data_byte(const char *hex, size_t i)
{
	return http_hex_digit(hex[2 * i]) << 4 | http_hex_digit(hex[2 * i + 1]);
}

static int
valid_account_id(const char *hex, size_t at, size_t n)
{
	size_t i;
	int c;

	if (n == 0 || n > HTTP_USER_MAX)
		return 0;
	for (i = at; i < at + n; i++) {
		c = data_byte(hex, i);
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

/*
 * One "name=len:value" of the token data; *pos moves past it and the ';'
 * that ends it.  Returns -1 if malformed.
 */
static int
token_attr(const char *hex, size_t n, size_t *pos, size_t *name,
    size_t *namelen, size_t *val, size_t *vlen)
{
	size_t p = *pos, len = 0, digits = 0;
	int c;

	*name = p;
	while (p < n && (c = data_byte(hex, p)) != '=') {
		if (c == ';' || c == ':')
			return -1;
		p++;
	}
	if (p == n || p == *name)
		return -1;
	*namelen = p - *name;
	for (p++; p < n && (c = data_byte(hex, p)) >= '0' && c <= '9'; p++) {
		len = len * 10 + (size_t)(c - '0');
		digits++;
		if (len > n)
			return -1;
	}
	if (digits == 0 || p == n || data_byte(hex, p) != ':' ||
	    len > n - p - 1)
		return -1;
	*val = p + 1;
	*vlen = len;
	p += 1 + len;
	if (p < n && data_byte(hex, p++) != ';')
		return -1;
	*pos = p;
	return 0;
}

static int
token_data_id(const char *hex, size_t n, char *id, size_t idsz)
{
	size_t pos = 0, name, namelen, val, vlen, i;
	int found = 0;

	while (pos < n) {
		if (token_attr(hex, n, &pos, &name, &namelen, &val, &vlen) ==
		    -1)
			return -1;
		if (namelen != 2 || data_byte(hex, name) != 'i' ||
		    data_byte(hex, name + 1) != 'd')
			continue;
		if (found || !valid_account_id(hex, val, vlen) || vlen >= idsz)
			return -1;
		for (i = 0; i < vlen; i++)
			id[i] = (char)data_byte(hex, val + i);
		id[vlen] = '\0';
		found = 1;
	}
	return found ? 0 : -1;
}

static size_t
span(const char *s, size_t len, int (*ok)(unsigned char))
{
	size_t i = 0;

	while (i < len && ok(s[i]))
		i++;
	return i;
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(unsigned char c)
{
	return http_hex_digit(c) != -1;
}

/*
 * A Zimbra auth token: "<key version>_<hmac hex>_<hex data>", the data
 * being "name=len:value;..." with len the value's length in bytes.  Only
 * the account id is taken; the HMAC is the upstream's to check.
 */
int
http_zm_token_id(const char *token, size_t len, char *id, size_t idsz)
{
	size_t i = 0, n;

	if (idsz == 0)
		return -1;
	id[0] = '\0';
	if ((n = span(token, len, is_digit)) == 0 || n == len ||
	    token[n] != '_')
		return -1;
	i = n + 1;
	if ((n = span(token + i, len - i, is_hex)) == 0 || i + n == len ||
	    token[i + n] != '_')
		return -1;
	i += n + 1;
	n = len - i;
	if (n == 0 || n % 2 != 0 || span(token + i, n, is_hex) != n)
		return -1;
	if (token_data_id(token + i, n / 2, id, idsz) == -1) {
		id[0] = '\0';
		return -1;
	}
	return 0;
}

static int
cookie_key(const struct http_request *req, const struct http_route_conf *conf,
    struct http_route_key *key)
{
	const struct http_field *f;
	const char *v;
	size_t i, vlen;

	if (memchr(conf->cookie, '\0', sizeof(conf->cookie)) == NULL ||
	    conf->cookie[0] == '\0')
		return 0;
	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (!http_field_is(f, "Cookie") ||
		    !http_cookie_value(f->value, f->valuelen, conf->cookie, &v,
			&vlen))
			continue;
		/* the first such cookie decides, as upstream reads it */
		if (http_zm_token_id(v, vlen, key->key, sizeof(key->key)) == -1)
			return 0;
		key->kind = HTTP_KEY_ACCOUNT_ID;
		key->source = HTTP_SRC_COOKIE;
		return 1;
	}
	return 0;
}

static int
token_arg_key(const struct http_request *req, struct http_route_key *key)
{
	char tok[TOKEN_MAX];
	const char *v;
	size_t vlen;
	ssize_t n;

	if (!query_find(req->target, req->targetlen, "zauthtoken", &v, &vlen))
		return 0;
	if ((n = http_pct_decode(v, vlen, tok, sizeof(tok), 0)) < 0 ||
	    http_zm_token_id(tok, (size_t)n, key->key, sizeof(key->key)) == -1)
		return 0;
	key->kind = HTTP_KEY_ACCOUNT_ID;
	key->source = HTTP_SRC_TOKEN_ARG;
	return 1;
}

/*
 * A malformed Basic header or percent-encoded name refuses the request
 * even when another source gave the key: postern must not pass on what
 * it could not read.  A malformed token is only ignored.
 */
int
http_route_key(const struct http_request *req,
    const struct http_route_conf *conf, struct http_route_key *key)
{
	memset(key, 0, sizeof(*key));
	if ((conf->use_path && path_key(req, conf, key) == -1) ||
	    (conf->use_basic && basic_key(req, key) == -1)) {
		memset(key, 0, sizeof(*key));
		return -1;
	}
	if (conf->use_cookie && key->kind == HTTP_KEY_NONE &&
	    !cookie_key(req, conf, key))
		(void)token_arg_key(req, key);
	if (key->kind == HTTP_KEY_NONE)
		key->key[0] = '\0';
	return 0;
}
