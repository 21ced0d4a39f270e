/*
 * The user of a webmail form login, from its bounded body: a form
 * (application/x-www-form-urlencoded, the login page's POST), or a SOAP
 * AuthRequest in JSON or XML (Zimbra and Carbonio: the account element).
 * Only the user is read; the password is never looked at or copied.
 * Anything unusual (escapes, entities, nesting the scanner does not
 * follow) yields no user, and the request is then refused: a login whose
 * user cannot be told cannot be counted.
 */
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
