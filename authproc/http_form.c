/*
 * The user of a webmail form login, from its bounded body: a form
 * (application/x-www-form-urlencoded, the login page's POST), or a SOAP
 * AuthRequest in JSON or XML (Zimbra and Carbonio: the account element).
 * Only the user is read; the password is never looked at or copied.
 * Anything unusual (escapes, entities, nesting the scanner does not
 * follow) yields no user, and the request is then refused: a login whose
 * user cannot be told cannot be counted.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define FORM_NAME_BUFSZ (HTTP_USER_MAX + 1)

static int
ctype_is(const char *ct, size_t len, const char *type)
{
	size_t n = strlen(type);

	return len >= n && strncasecmp(ct, type, n) == 0 &&
	    (len == n || ct[n] == ';' || http_is_ws(ct[n]));
}

static int
set_user(const char *s, size_t n, char *user, size_t usersz)
{
	if (!http_usable_name(s, n) || n >= usersz)
		return 0;
	memcpy(user, s, n);
	user[n] = '\0';
	return 1;
}

/*
 * name=value&...: the field of this name, its name decoded as a server
 * decodes it; a second one (which would the server take?) is refused.
 */
static int
form_user(const char *b, size_t len, const char *field, char *user,
    size_t usersz)
{
	char name[FORM_NAME_BUFSZ], value[FORM_NAME_BUFSZ];
	size_t i = 0, end, eq;
	ssize_t n, vn = 0;
	int found = 0;

	while (i < len) {
		for (end = i; end < len && b[end] != '&'; end++)
			;
		for (eq = i; eq < end && b[eq] != '='; eq++)
			;
		n = http_pct_decode(b + i, eq - i, name, sizeof(name), 1);
		if (n == -1)
			return -1;
		if (n >= 0 && strcmp(name, field) == 0) {
			if (found++)
				return -1;
			vn = eq < end
			    ? http_pct_decode(b + eq + 1, end - eq - 1, value,
				  sizeof(value), 1)
			    : 0;
			if (vn == -1)
				return -1;
		}
		i = end + 1;
	}
	return found && vn > 0 && set_user(value, vn, user, usersz);
}

static size_t
skip_ws(const char *b, size_t len, size_t i)
{
	while (i < len && (http_is_ws(b[i]) || b[i] == '\r' || b[i] == '\n'))
		i++;
	return i;
}

/* A JSON string without escapes at b[i]; its content and end. */
static int
json_string(const char *b, size_t len, size_t i, size_t *start, size_t *end)
{
	size_t j;

	if (i >= len || b[i] != '"')
		return 0;
	for (j = i + 1; j < len && b[j] != '"'; j++)
		if (b[j] == '\\' || (unsigned char)b[j] < 0x20)
			return 0;
	if (j >= len)
		return 0;
	*start = i + 1;
	*end = j;
	return 1;
}

/*
 * "field": "user", or "field": {..., "_content": "user", ...} as Zimbra's
 * JSON SOAP writes an account.  Only flat objects are followed.
 */
static int
json_user_at(const char *b, size_t len, const char *field, size_t from,
    char *user, size_t usersz, size_t *at)
{
	size_t flen = strlen(field), i, s, e, ks, ke;

	for (i = from; i + flen + 2 <= len; i++) {
		if (b[i] != '"' || memcmp(b + i + 1, field, flen) != 0 ||
		    b[i + 1 + flen] != '"')
			continue;
		*at = i + 1;
		i = skip_ws(b, len, i + flen + 2);
		if (i >= len || b[i] != ':')
			continue;
		i = skip_ws(b, len, i + 1);
		if (json_string(b, len, i, &s, &e))
			return set_user(b + s, e - s, user, usersz);
		if (i >= len || b[i] != '{')
			return 0;
		for (i++; i < len && b[i] != '}';) {
			i = skip_ws(b, len, i);
			if (!json_string(b, len, i, &ks, &ke))
				return 0;
			i = skip_ws(b, len, ke + 1);
			if (i >= len || b[i] != ':')
				return 0;
			i = skip_ws(b, len, i + 1);
			if (!json_string(b, len, i, &s, &e))
				return 0;
			if (ke - ks == 8 && memcmp(b + ks, "_content", 8) == 0)
				return set_user(b + s, e - s, user, usersz);
			i = skip_ws(b, len, e + 1);
			if (i < len && b[i] == ',')
				i++;
		}
		return 0;
	}
	return 0;
}

/* <field ...>user</field>, with an optional namespace prefix. */
static int
xml_user_at(const char *b, size_t len, const char *field, size_t from,
    char *user, size_t usersz, size_t *at)
{
	size_t flen = strlen(field), i, j, k, name;

	for (i = from; i < len; i++) {
		if (b[i] != '<')
			continue;
		/* a prefix such as "zimbra:" may stand before the name */
		for (name = i + 1, j = i + 1;
		     j < len && b[j] != '>' && b[j] != ' ' && b[j] != '/'; j++)
			if (b[j] == ':')
				name = j + 1;
		if (j - name != flen || memcmp(b + name, field, flen) != 0 ||
		    j >= len)
			continue;
		*at = i + 1;
		while (j < len && b[j] != '>')
			j++;
		if (j >= len || b[j - 1] == '/')
			return 0;
		for (k = j + 1; k < len && b[k] != '<'; k++)
			if (b[k] == '&')
				return 0; /* entities: not followed */
		if (k >= len)
			return 0;
		return set_user(b + j + 1, k - j - 1, user, usersz);
	}
	return 0;
}

typedef int (*finder)(const char *, size_t, const char *, size_t, char *,
    size_t, size_t *);

/*
 * The field's only occurrence: a second one (in a SOAP header, say)
 * could be the one the server reads.
 */
static int
only_one(finder find, const char *b, size_t len, const char *field, char *user,
    size_t usersz)
{
	char other[FORM_NAME_BUFSZ];
	size_t at = 0, again = 0;
	int r;

	if ((r = find(b, len, field, 0, user, usersz, &at)) != 1)
		return r;
	if (find(b, len, field, at, other, sizeof(other), &again) != 0 ||
	    again != 0) {
		user[0] = '\0';
		return -1;
	}
	return 1;
}

static int
xml_user(const char *b, size_t len, const char *field, char *user,
    size_t usersz)
{
	/* comments, CDATA, declarations: not followed */
	if (memmem(b, len, "<!", 2) != NULL)
		return -1;
	return only_one(xml_user_at, b, len, field, user, usersz);
}

/*
 * The login's user from a body of type ctype: 1 found, 0 none, -1 for a
 * malformed form encoding.
 */
int
http_form_user(const char *ctype, size_t ctlen, const char *body, size_t len,
    const char *field, char *user, size_t usersz)
{
	if (usersz > 0)
		user[0] = '\0';
	if (field[0] == '\0' || usersz == 0)
		return 0;
	if (ctype_is(ctype, ctlen, "application/x-www-form-urlencoded"))
		return form_user(body, len, field, user, usersz);
	if (ctype_is(ctype, ctlen, "application/json") ||
	    ctype_is(ctype, ctlen, "application/soap+json"))
		return only_one(json_user_at, body, len, field, user, usersz);
	if (ctype_is(ctype, ctlen, "application/soap+xml") ||
	    ctype_is(ctype, ctlen, "text/xml") ||
	    ctype_is(ctype, ctlen, "application/xml"))
		return xml_user(body, len, field, user, usersz);
	return 0;
}

/*
 * The path as a servlet container matches it against its mappings:
 * percent-escapes decoded once, a segment's ";parameters" dropped,
 * empty and "." segments gone, ".." taking one back, no trailing '/'
 * (but for the root).  Comparing this, not the target as sent, keeps
 * "/service/%73oap/AuthRequest" or "/service//soap;x/" from slipping
 * past a form login.  -1 for a path no honest client sends: a bad or NUL
 * escape, ".." above the root, or longer than outsz.
 */
ssize_t
http_path_normalize(const char *path, size_t len, char *out, size_t outsz)
{
	char dec[HTTP_TARGET_NORM_MAX];
	ssize_t dn;
	size_t i = 0, seg, end, semi, n = 0;

	if (outsz < 2 || len == 0 || path[0] != '/')
		return -1;
	if ((dn = http_pct_decode(path, len, dec, sizeof(dec), 0)) < 0 ||
	    memchr(dec, '\0', dn) != NULL)
		return -1;
	while (i < (size_t)dn) {
		for (seg = i; seg < (size_t)dn && dec[seg] == '/'; seg++)
			;
		for (end = seg; end < (size_t)dn && dec[end] != '/'; end++)
			;
		for (semi = seg; semi < end && dec[semi] != ';'; semi++)
			;
		i = end;
		if (semi == seg || (semi - seg == 1 && dec[seg] == '.'))
			continue;
		if (semi - seg == 2 && dec[seg] == '.' && dec[seg + 1] == '.') {
			if (n == 0)
				return -1;
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		if (n + 1 + (semi - seg) + 1 > outsz)
			return -1;
		out[n++] = '/';
		memcpy(out + n, dec + seg, semi - seg);
		n += semi - seg;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return (ssize_t)n;
}

/* The first byte that is not white space or a UTF-8 byte order mark. */
static size_t
body_start(const char *b, size_t len)
{
	size_t i = 0;

	if (len >= 3 && memcmp(b, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	return skip_ws(b, len, i);
}

/*
 * A JSON string at b[i] (the opening quote), escapes and all: the index
 * past its closing quote, whether it holds an escape, or 0 unended.
 */
static size_t
json_skip_string(const char *b, size_t len, size_t i, int *escaped)
{
	*escaped = 0;
	for (i++; i < len; i++) {
		if (b[i] == '\\') {
			*escaped = 1;
			i++;
		} else if (b[i] == '"')
			return i + 1;
	}
	return 0;
}

/* Where the JSON value at b[i] ends (past its last byte), or 0. */
static size_t
json_value_end(const char *b, size_t len, size_t i)
{
	size_t depth = 0;
	int esc;

	while (i < len) {
		if (b[i] == '"') {
			if ((i = json_skip_string(b, len, i, &esc)) == 0)
				return 0;
			if (depth == 0)
				return i;
			continue;
		}
		if (b[i] == '{' || b[i] == '[')
			depth++;
		else if (b[i] == '}' || b[i] == ']') {
			if (depth == 0)
				return i; /* a scalar, ended by its container */
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && b[i] == ',')
			return i;
		i++;
	}
	return depth == 0 ? len : 0;
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * A JSON key, b[0..n) between its quotes, read as the server reads it
 * ("\u0041uthRequest" is AuthRequest), compared to an ASCII name
 * without regard to case.  An escape for anything but ASCII cannot make
 * an ASCII name.
 */
static int
json_key_is(const char *b, size_t n, const char *name)
{
	size_t i, k = 0, nlen = strlen(name);
	int c, d, j;

	for (i = 0; i < n; i++, k++) {
		c = (unsigned char)b[i];
		if (c == '\\' && i + 1 < n) {
			c = (unsigned char)b[++i];
			if (c == 'u') {
				if (n - i < 5)
					return 0;
				for (c = 0, j = 1; j <= 4; j++) {
					d = hex_digit(b[i + j]);
					if (d < 0)
						return 0;
					c = c << 4 | d;
				}
				i += 4;
				if (c >= 0x80)
					return 0;
			} else if (strchr("\"\\/", c) == NULL)
				return 0; /* \b \f \n \r \t: in no name */
		}
		if (k >= nlen || tolower(c) != tolower((unsigned char)name[k]))
			return 0;
	}
	return k == nlen;
}

/*
 * Every key of a JSON body is looked at: one named like the marker,
 * escapes and all, says where the login is.  A second marker is refused
 * (two logins in one request), and so is a login with the field's key
 * written with escapes somewhere (the scan for its value reads keys as
 * written).  1 and the marker's value in [*vs, *ve), 0 none, -1 refused.
 */
static int
json_marker(const char *b, size_t len, const char *marker, const char *field,
    size_t *vs, size_t *ve)
{
	size_t i = 0, next, v;
	int esc, found = 0, odd_field = 0;

	while (i < len) {
		if (b[i] == '\0')
			return -1;
		if (b[i] != '"') {
			i++;
			continue;
		}
		if ((next = json_skip_string(b, len, i, &esc)) == 0)
			return found ? -1 : 0;
		v = skip_ws(b, len, next);
		if (v < len && b[v] == ':') {
			if (json_key_is(b + i + 1, next - i - 2, marker)) {
				if (found++)
					return -1;
				*vs = skip_ws(b, len, v + 1);
				if ((*ve = json_value_end(b, len, *vs)) == 0)
					return -1;
			} else if (esc &&
			    json_key_is(b + i + 1, next - i - 2, field))
				odd_field = 1;
		}
		i = next;
	}
	return found && odd_field ? -1 : found;
}

/*
 * The first element named like the marker, any namespace prefix, start
 * or end tag: its content in [*vs, *ve).  A second start tag is refused,
 * and so is a NUL byte (a UTF-16 body the server could decode).
 */
static int
xml_marker(const char *b, size_t len, const char *marker, size_t *vs,
    size_t *ve)
{
	size_t mlen = strlen(marker), i, j, name;
	int found = 0;

	if (memchr(b, '\0', len) != NULL)
		return -1;
	for (i = 0; i < len; i++) {
		if (b[i] != '<')
			continue;
		j = i + 1;
		if (j < len && b[j] == '/')
			j++;
		for (name = j; j < len && b[j] != '>' && b[j] != '/' &&
		     !http_is_ws(b[j]) && b[j] != '\r' && b[j] != '\n';
		     j++)
			if (b[j] == ':')
				name = j + 1;
		if (j - name != mlen || strncasecmp(b + name, marker, mlen) != 0)
			continue;
		if (b[i + 1] == '/') {
			if (!found)
				return -1; /* an end tag first: malformed */
			*ve = i;
			return 1;
		}
		if (found++)
			return -1;
		while (j < len && b[j] != '>')
			j++;
		*vs = j < len ? j + 1 : len;
		*ve = len;
		i = *vs - 1; /* the end tag comes after the start tag */
	}
	return found;
}

/*
 * A SOAP login (Zimbra's AuthRequest, in XML or JSON, alone or in a
 * batch) posted anywhere under a form login's path: 0 when the body
 * names no element or key like the marker (an ordinary request), 1 with
 * the user from the field inside the marker's element, -1 for a login
 * whose user cannot be told, or a body that could hide one.
 */
int
http_soap_login(const char *body, size_t len, const char *marker,
    const char *field, char *user, size_t usersz)
{
	size_t s = body_start(body, len), vs = 0, ve = 0;
	int r;

	if (usersz > 0)
		user[0] = '\0';
	if (marker[0] == '\0' || field[0] == '\0' || usersz == 0)
		return 0;
	if (s < len && (body[s] == '{' || body[s] == '[')) {
		if ((r = json_marker(body, len, marker, field, &vs, &ve)) != 1)
			return r;
		r = only_one(json_user_at, body + vs, ve - vs, field, user,
		    usersz);
	} else {
		/* XML, or a shape the server may still read as XML */
		if ((r = xml_marker(body, len, marker, &vs, &ve)) != 1)
			return r;
		if (memmem(body, len, "<!", 2) != NULL)
			return -1;
		r = only_one(xml_user_at, body + vs, ve - vs, field, user,
		    usersz);
	}
	if (r != 1) {
		user[0] = '\0';
		return -1;
	}
	return 1;
}
