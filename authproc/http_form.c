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
	int got = 0;

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
				break;
			i = skip_ws(b, len, ke + 1);
			if (i >= len || b[i] != ':')
				break;
			i = skip_ws(b, len, i + 1);
			if (!json_string(b, len, i, &s, &e))
				break;
			if (ke - ks == 8 &&
			    memcmp(b + ks, "_content", 8) == 0) {
				/* the server keeps the last; we would read
				 * the first */
				if (got++) {
					user[0] = '\0';
					return -1;
				}
				if (!set_user(b + s, e - s, user, usersz))
					break;
			}
			i = skip_ws(b, len, e + 1);
			if (i < len && b[i] == ',')
				i++;
		}
		if (i < len && b[i] == '}' && got)
			return 1;
		/* only flat objects are followed */
		user[0] = '\0';
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
 * One segment of a raw path, b[0..n) without its ";parameters", decoded
 * into out: its length, or -1 for a bad escape or an escape for a byte
 * that servers and we could read apart ("/", ";", ".", "\", "#", "%",
 * NUL): no honest client writes those escaped.
 */
static ssize_t
segment_decode(const char *b, size_t n, char *out, size_t outsz, int strict)
{
	size_t i, k = 0;
	int hi, lo, c;

	for (i = 0; i < n; i++, k++) {
		c = (unsigned char)b[i];
		if (c == '\0')
			return -1;
		if (c == '%') {
			if (n - i < 3 || (hi = http_hex_digit(b[i + 1])) < 0 ||
			    (lo = http_hex_digit(b[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			if (c == 0 || (strict && strchr("/;.\\#%", c) != NULL))
				return -1;
			i += 2;
		}
		if (k >= outsz)
			return -1;
		out[k] = (char)c;
	}
	return (ssize_t)k;
}

/*
 * The path as a servlet container matches it against its mappings: a
 * segment's ";parameters" dropped (at a raw ';', as Jetty does), the
 * rest percent-decoded once, empty and "." segments gone, ".." taking
 * one back, no trailing '/' (but for the root).  Comparing this, not the
 * target as sent, keeps "/service/%73oap/AuthRequest" or
 * "/service//soap;x/" from slipping past a form login.  -1 for a path no
 * honest client sends: a bad escape or one of a separator, ".." above
 * the root, or longer than outsz.
 */
static ssize_t
path_normalize(const char *path, size_t len, char *out, size_t outsz,
    int strict)
{
	size_t i = 0, seg, end, semi, n = 0;
	ssize_t sn;
	int dots;

	if (outsz < 2 || len == 0 || path[0] != '/')
		return -1;
	while (i < len) {
		for (seg = i; seg < len && path[seg] == '/'; seg++)
			;
		for (end = seg; end < len && path[end] != '/'; end++)
			;
		for (semi = seg; semi < end && path[semi] != ';'; semi++)
			;
		i = end;
		if (n + 1 >= outsz)
			return -1;
		sn = segment_decode(path + seg, semi - seg, out + n + 1,
		    outsz - n - 2, strict);
		if (sn < 0)
			return -1;
		dots = (sn == 1 && out[n + 1] == '.') ||
		    (sn == 2 && out[n + 1] == '.' && out[n + 2] == '.');
		/* "..;x": servers disagree on whether it goes up */
		if (dots && semi < end && strict)
			return -1;
		if (sn == 0 || (sn == 1 && dots))
			continue;
		if (dots) {
			if (n == 0)
				return -1;
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		out[n] = '/';
		n += 1 + sn;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return (ssize_t)n;
}

ssize_t
http_path_normalize(const char *path, size_t len, char *out, size_t outsz)
{
	return path_normalize(path, len, out, outsz, 1);
}

/*
 * The path read as leniently as any server might: escaped separators
 * taken as what they stand for, "..;x" as "..".  Only to ask whether a
 * path the strict reading refuses could reach a form login at all.
 */
ssize_t
http_path_loose(const char *path, size_t len, char *out, size_t outsz)
{
	return path_normalize(path, len, out, outsz, 0);
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
					d = http_hex_digit(b[i + j]);
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

/* ---- the SOAP body as Zimbra's SOAP engine reads it ---- */

#define JSON_DEPTH 64

static size_t
json_ws(const char *b, size_t len, size_t i)
{
	while (i < len &&
	    (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
		i++;
	return i;
}

/* A string of strict JSON at b[i] == '"': the index past it, or 0. */
static size_t
json_strict_string(const char *b, size_t len, size_t i)
{
	int j;

	for (i++; i < len; i++) {
		if (b[i] == '"')
			return i + 1;
		if ((unsigned char)b[i] < 0x20)
			return 0;
		if (b[i] != '\\')
			continue;
		if (++i >= len)
			return 0;
		if (b[i] == 'u') {
			for (j = 1; j <= 4; j++)
				if (i + j >= len ||
				    http_hex_digit(b[i + j]) < 0)
					return 0;
			i += 4;
		} else if (strchr("\"\\/bfnrt", b[i]) == NULL || b[i] == '\0')
			return 0;
	}
	return 0;
}

static size_t
json_digits(const char *b, size_t len, size_t i)
{
	size_t from = i;

	while (i < len && b[i] >= '0' && b[i] <= '9')
		i++;
	return i > from ? i : 0;
}

/* A number, true, false or null at b[i]: the index past it, or 0. */
static size_t
json_strict_scalar(const char *b, size_t len, size_t i)
{
	static const char *const words[] = {"true", "false", "null"};
	size_t k, n;

	for (k = 0; k < 3; k++) {
		n = strlen(words[k]);
		if (len - i >= n && memcmp(b + i, words[k], n) == 0)
			return i + n;
	}
	if (i < len && b[i] == '-')
		i++;
	if (i < len && b[i] == '0')
		i++;
	else if ((i = json_digits(b, len, i)) == 0)
		return 0;
	if (i < len && b[i] == '.' && (i = json_digits(b, len, i + 1)) == 0)
		return 0;
	if (i < len && (b[i] == 'e' || b[i] == 'E')) {
		i++;
		if (i < len && (b[i] == '+' || b[i] == '-'))
			i++;
		if ((i = json_digits(b, len, i)) == 0)
			return 0;
	}
	return i;
}

/*
 * Is the body strict JSON (RFC 8259), all of it?  Zimbra's own parser
 * takes more (single quotes, bare keys, "\x41", "=>"): a body that is not
 * strict JSON could hide a login from us and not from it, and no client
 * of Zimbra's writes one.
 */
static int
json_strict(const char *b, size_t len)
{
	char stack[JSON_DEPTH];
	size_t i = 0, depth = 0;
	enum { VALUE, FIRST_VALUE, KEY, FIRST_KEY, COLON, NEXT } st = VALUE;
	int closed;

	for (;;) {
		if ((i = json_ws(b, len, i)) >= len)
			return 0;
		closed = 0;
		switch (st) {
		case FIRST_VALUE:
		case FIRST_KEY:
			if (b[i] == (st == FIRST_KEY ? '}' : ']')) {
				depth--;
				i++;
				closed = 1;
				break;
			}
			if (st == FIRST_KEY)
				goto key;
			/* FALLTHROUGH */
		case VALUE:
			if (b[i] == '{' || b[i] == '[') {
				if (depth == JSON_DEPTH)
					return 0;
				stack[depth++] = b[i];
				st = b[i++] == '{' ? FIRST_KEY : FIRST_VALUE;
				continue;
			}
			i = b[i] == '"' ? json_strict_string(b, len, i)
					: json_strict_scalar(b, len, i);
			if (i == 0)
				return 0;
			closed = 1;
			break;
		case KEY:
		key:
			if (b[i] != '"' ||
			    (i = json_strict_string(b, len, i)) == 0)
				return 0;
			st = COLON;
			continue;
		case COLON:
			if (b[i++] != ':')
				return 0;
			st = VALUE;
			continue;
		case NEXT:
			if (b[i] == ',') {
				i++;
				st = stack[depth - 1] == '{' ? KEY : VALUE;
				continue;
			}
			if (b[i] != (stack[depth - 1] == '{' ? '}' : ']'))
				return 0;
			depth--;
			i++;
			closed = 1;
			break;
		}
		if (closed && depth == 0)
			return json_ws(b, len, i) == len;
		st = NEXT;
	}
}

/*
 * A key of this name inside [from, to) of a JSON body (raw: a login body
 * is strict JSON without escaped keys of this name, as checked).
 */
static int
json_has_key(const char *b, size_t from, size_t to, const char *name)
{
	size_t n = strlen(name), i, v;

	for (i = from; i + n + 2 <= to; i++)
		if (b[i] == '"' && strncmp(b + i + 1, name, n) == 0 &&
		    b[i + n + 1] == '"' &&
		    (v = skip_ws(b, to, i + n + 2)) < to && b[v] == ':')
			return 1;
	return 0;
}

/*
 * The JSON half of http_soap_login(): -1 refused, 0 no marker, 1 the
 * user, 2 a marker without one (*token: it logs in with a token).
 */
static int
json_soap_login(const char *b, size_t len, const char *marker,
    const char *field, char *user, size_t usersz, int *token)
{
	size_t vs = 0, ve = 0;
	int r;

	if (!json_strict(b, len))
		return -1;
	if ((r = json_marker(b, len, marker, field, &vs, &ve)) != 1)
		return r;
	/* a login in a batch is answered 200 whatever its fate */
	if (json_has_key(b, 0, len, "BatchRequest"))
		return -1;
	if ((r = only_one(json_user_at, b + vs, ve - vs, field, user,
		 usersz)) != 0)
		return r;
	/* the field is there but not as we read it: the server may */
	if (json_has_key(b, vs, ve, field))
		return -1;
	*token = json_has_key(b, vs, ve, "authToken") ||
	    json_has_key(b, vs, ve, "jwtToken");
	return 2;
}

/* XML white space. */
static int
xml_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One tag: which kind, its local name (any prefix aside), its end. */
struct xml_tag {
	int end;		 /* </name> */
	int empty;		 /* <name/> */
	size_t name, namelen;	 /* the local name */
	size_t attrs, attrs_end; /* the attributes' text */
	size_t next;		 /* past the '>' */
};

/*
 * The tag at b[i] == '<', its attribute values quoted as XML requires (a
 * '>' inside one does not end it).  1 a tag, 0 a comment, CDATA,
 * declaration or processing instruction, -1 malformed.
 */
static int
xml_tag(const char *b, size_t len, size_t i, struct xml_tag *t)
{
	size_t j = i + 1;
	char q;

	memset(t, 0, sizeof(*t));
	if (j < len && (b[j] == '!' || b[j] == '?'))
		return 0;
	if (j < len && b[j] == '/') {
		t->end = 1;
		j++;
	}
	for (t->name = j;
	     j < len && !xml_ws(b[j]) && b[j] != '/' && b[j] != '>'; j++) {
		if (b[j] == '<' || b[j] == '"' || b[j] == '\'' || b[j] == '=')
			return -1;
		if (b[j] == ':')
			t->name = j + 1;
	}
	if ((t->namelen = j - t->name) == 0)
		return -1;
	for (t->attrs = j; j < len; j++) {
		if (b[j] == '>' ||
		    (b[j] == '/' && j + 1 < len && b[j + 1] == '>' &&
			!t->end)) {
			t->empty = b[j] == '/';
			t->attrs_end = j;
			t->next = j + 1 + t->empty;
			return 1;
		}
		if (b[j] == '<' || b[j] == '/')
			return -1;
		if (b[j] == '"' || b[j] == '\'') {
			for (q = b[j++]; j < len && b[j] != q; j++)
				if (b[j] == '<')
					return -1;
			if (j >= len)
				return -1;
		}
	}
	return -1;
}

static int
xml_tag_is(const char *b, const struct xml_tag *t, const char *name)
{
	return t->namelen == strlen(name) &&
	    strncasecmp(b + t->name, name, t->namelen) == 0;
}

/*
 * The XML declaration, if any, must name an encoding we read as the
 * server does: a body declared in EBCDIC, say, hides its markup from a
 * scanner of ASCII.
 */
static int
xml_encoding_ok(const char *b, size_t len)
{
	static const char *const ok[] = {"utf-8", "us-ascii", "iso-8859-1"};
	const char *end, *e;
	size_t i, n, k, lim;
	char q;

	if (len < 5 || strncmp(b, "<?xml", 5) != 0)
		return 1;
	if ((end = memmem(b, len, "?>", 2)) == NULL)
		return 0;
	lim = end - b;
	if ((e = memmem(b, lim, "encoding", 8)) == NULL)
		return 1;
	i = skip_ws(b, lim, e - b + 8);
	if (i >= lim || b[i] != '=')
		return 0;
	i = skip_ws(b, lim, i + 1);
	if (i >= lim || (b[i] != '"' && b[i] != '\''))
		return 0;
	for (q = b[i++], n = 0; i + n < lim && b[i + n] != q; n++)
		;
	for (k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
		if (n == strlen(ok[k]) && strncasecmp(b + i, ok[k], n) == 0)
			return 1;
	return 0;
}

/*
 * A comment, CDATA section or processing instruction at b[i]: the index
 * of its last byte, or 0 for one unended, or a declaration (DOCTYPE:
 * Zimbra refuses it, and its entities could say anything).
 */
static size_t
xml_skip_opaque(const char *b, size_t len, size_t i)
{
	static const struct {
		const char *open, *close;
	} kinds[] = {
	    {"<!--", "-->"},
	    {"<![CDATA[", "]]>"},
	    {"<?", "?>"},
	};
	const char *end;
	size_t k, n;

	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		n = strlen(kinds[k].open);
		if (len - i < n || memcmp(b + i, kinds[k].open, n) != 0)
			continue;
		end = memmem(b + i + n, len - i - n, kinds[k].close,
		    strlen(kinds[k].close));
		return end == NULL
		    ? 0
		    : (size_t)(end - b) + strlen(kinds[k].close) - 1;
	}
	return 0;
}

/*
 * The element named like the marker: its start tag in *mt and content
 * in [*vs, *ve).  A second one is refused (two logins in one request),
 * and so are markup we do not read, a NUL byte (UTF-16) and an
 * encoding we do not read.
 */
static int
xml_marker(const char *b, size_t len, const char *marker, struct xml_tag *mt,
    size_t *vs, size_t *ve)
{
	struct xml_tag t;
	size_t i;
	int found = 0, r, open = 0;

	if (memchr(b, '\0', len) != NULL || !xml_encoding_ok(b, len))
		return -1;
	for (i = 0; i < len; i++) {
		if (b[i] != '<')
			continue;
		if ((r = xml_tag(b, len, i, &t)) == -1)
			return -1;
		if (r == 0) {
			/* opaque to a parser: so to us (a login refuses
			 * them all the same) */
			if ((i = xml_skip_opaque(b, len, i)) == 0)
				return -1;
			continue;
		}
		if (!xml_tag_is(b, &t, marker))
			continue;
		if (t.end) {
			if (!open)
				return -1; /* an end tag first: malformed */
			*ve = i;
			open = 0;
		} else {
			if (found++)
				return -1;
			*mt = t;
			*vs = *ve = t.next;
			open = !t.empty;
			if (open)
				*ve = len;
		}
		i = t.next - 1;
	}
	return found;
}

/*
 * The field inside the marker's element: an attribute of its start tag
 * (Zimbra reads those first) or a child element holding only text; once.
 */
static int
xml_attr_user(const char *b, const struct xml_tag *mt, const char *field,
    char *user, size_t usersz)
{
	size_t j = mt->attrs, n, name, vs;
	int found = 0;
	char q;

	while (j < mt->attrs_end) {
		for (; j < mt->attrs_end && xml_ws(b[j]); j++)
			;
		for (name = n = j;
		     j < mt->attrs_end && b[j] != '=' && !xml_ws(b[j]); j++)
			if (b[j] == ':')
				name = j + 1;
		n = j - name;
		for (; j < mt->attrs_end && (xml_ws(b[j]) || b[j] == '='); j++)
			;
		if (j >= mt->attrs_end)
			break;
		q = b[j];
		for (vs = ++j; j < mt->attrs_end && b[j] != q; j++)
			;
		if (n == strlen(field) &&
		    strncasecmp(b + name, field, n) == 0) {
			if (found++ || memchr(b + vs, '&', j - vs) != NULL ||
			    !set_user(b + vs, j - vs, user, usersz))
				return -1;
		}
		j++;
	}
	return found;
}

static int
xml_child_user(const char *b, size_t vs, size_t ve, const char *field,
    char *user, size_t usersz, int *token)
{
	struct xml_tag t, close;
	size_t i, text;
	int found = 0, r;

	for (i = vs; i < ve; i++) {
		if (b[i] != '<')
			continue;
		if ((r = xml_tag(b, ve, i, &t)) != 1)
			return -1; /* nothing we do not read, inside a login */
		if (!t.end &&
		    (xml_tag_is(b, &t, "authToken") ||
			xml_tag_is(b, &t, "jwtToken")))
			*token = 1;
		i = t.next - 1;
		if (t.end || !xml_tag_is(b, &t, field))
			continue;
		if (found++ || t.empty)
			return -1;
		for (text = t.next; text < ve && b[text] != '<'; text++)
			if (b[text] == '&')
				return -1; /* entities: not followed */
		/* text alone, then its own end tag */
		if (text >= ve || xml_tag(b, ve, text, &close) != 1 ||
		    !close.end || !xml_tag_is(b, &close, field) ||
		    !set_user(b + t.next, text - t.next, user, usersz))
			return -1;
		i = close.next - 1;
	}
	return found;
}

/* An element of this name anywhere (a login body is read whole). */
static int
xml_has_element(const char *b, size_t len, const char *name)
{
	struct xml_tag t;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] == '<' && xml_tag(b, len, i, &t) == 1 &&
		    xml_tag_is(b, &t, name))
			return 1;
	return 0;
}

/* The XML half of http_soap_login(), answering as the JSON half. */
static int
xml_soap_login(const char *b, size_t len, const char *marker, const char *field,
    char *user, size_t usersz, int *token)
{
	struct xml_tag mt;
	char other[FORM_NAME_BUFSZ];
	size_t vs = 0, ve = 0;
	int r, a, c;

	memset(&mt, 0, sizeof(mt));
	if ((r = xml_marker(b, len, marker, &mt, &vs, &ve)) != 1)
		return r;
	/* a login in a batch is answered 200 whatever its fate */
	if (xml_has_element(b, len, "BatchRequest"))
		return -1;
	/* comments, CDATA, processing instructions past the declaration */
	if (memmem(b, len, "<!", 2) != NULL ||
	    memmem(b + 1, len - 1, "<?", 2) != NULL)
		return -1;
	if ((a = xml_attr_user(b, &mt, field, user, usersz)) == -1 ||
	    (c = xml_child_user(b, vs, ve, field, other, sizeof(other),
		 token)) == -1 ||
	    a + c > 1)
		return -1;
	if (c == 1)
		set_user(other, strlen(other), user, usersz);
	return a + c == 1 ? 1 : 2;
}

/*
 * A SOAP login (Zimbra's AuthRequest, in XML or JSON, alone or in a
 * batch) posted anywhere under a form login's path.  As Zimbra's SOAP
 * engine, a body whose first byte is '<' is XML and any other is JSON.
 * 0 when the body names no element or key like the marker (an ordinary
 * request), or a marker that logs in with a token, not a password; 1
 * with the user from the field inside the marker's element; 2 for a
 * login without this field (another form's may hold the user); -1 for a
 * login whose user cannot be told, or a body that could hide one.
 */
int
http_soap_login(const char *body, size_t len, const char *marker,
    const char *field, char *user, size_t usersz)
{
	int r, token = 0;

	if (usersz > 0)
		user[0] = '\0';
	if (marker[0] == '\0' || field[0] == '\0' || usersz == 0 || len == 0)
		return 0;
	if (body[0] == '<')
		r = xml_soap_login(body, len, marker, field, user, usersz,
		    &token);
	else
		r = json_soap_login(body, len, marker, field, user, usersz,
		    &token);
	if (r == 1)
		return 1;
	user[0] = '\0';
	/*
	 * Re-authentication with a token, or a second factor: no field, no
	 * password to check.  Without a token, another form on the path may
	 * read the user from its field.
	 */
	if (r == 2 && token)
		return 0;
	return r;
}
