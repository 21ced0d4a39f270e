/*
 * Fuzz the form login user extractor: the first byte picks the content
 * type and the field, the rest is the body.  A user found must be a
 * usable name, NUL-terminated within its buffer; nothing is read past
 * the body (ASan) and the result never depends on bytes after it.
 * With bit 0x40 of the first byte set, the rest is a SOAP body for
 * http_soap_login(); with 0x80, a path for http_path_normalize().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static const char *const types[] = {
    "application/x-www-form-urlencoded",
    "application/soap+json",
    "text/xml; charset=utf-8",
    "application/json",
};
static const char *const fields[] = {"username", "account", "a", "_content"};

typedef int (*extractor)(const char *, size_t, const char *, char *, size_t,
    const void *);

/*
 * The properties every extractor keeps: a result in range, a user that
 * is a usable name (or none), NUL-terminated, and the same again.
 */
static void
check_extractor(extractor ex, const char *body, size_t len, const char *field,
    const void *arg)
{
	char user[HTTP_USER_MAX + 1], again[HTTP_USER_MAX + 1];
	int r;

	r = ex(body, len, field, user, sizeof(user), arg);
	CHECK(r >= -1 && r <= 2); /* 2: a SOAP login without this field */
	CHECK(memchr(user, '\0', sizeof(user)) != NULL);
	if (r == 1)
		CHECK(http_usable_name(user, strlen(user)));
	else
		CHECK(user[0] == '\0');
	/* the same again: no hidden state */
	CHECK(ex(body, len, field, again, sizeof(again), arg) == r);
	CHECK(strcmp(user, again) == 0);
}

static int
soap_ex(const char *body, size_t len, const char *field, char *user,
    size_t usersz, const void *arg)
{
	(void)arg;
	return http_soap_login(body, len, "AuthRequest", field, user, usersz);
}

static int
form_ex(const char *body, size_t len, const char *field, char *user,
    size_t usersz, const void *arg)
{
	const char *ct = arg;

	return http_form_user(ct, strlen(ct), body, len, field, user, usersz);
}

static void
fuzz_path(const char *path, size_t len)
{
	char out[256], again[256];
	ssize_t n;

	n = http_path_normalize(path, len, out, sizeof(out));
	CHECK(n >= -1 && n < (ssize_t)sizeof(out));
	if (n < 0)
		return;
	/* a normalised path is its own normal form */
	CHECK(out[0] == '/' && strlen(out) == (size_t)n);
	CHECK(n == 1 || out[n - 1] != '/');
	CHECK(strstr(out, "//") == NULL && strstr(out, "/./") == NULL &&
	    strstr(out, "/../") == NULL && strchr(out, ';') == NULL);
	if (strchr(out, '%') == NULL) {
		CHECK(http_path_normalize(out, n, again, sizeof(again)) == n);
		CHECK(strcmp(out, again) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *ct, *field;
	char *body;
	size_t len;

	if (size < 1)
		return 0;
	ct = types[data[0] & 3];
	field = fields[(data[0] >> 2) & 3];
	len = size - 1;
	/* an exact copy: ASan catches any read past the end */
	if ((body = malloc(len ? len : 1)) == NULL)
		return 0;
	memcpy(body, data + 1, len);
	if (data[0] & 0x80)
		fuzz_path(body, len);
	else if (data[0] & 0x40)
		check_extractor(soap_ex, body, len, field, NULL);
	else
		check_extractor(form_ex, body, len, field, ct);
	free(body);
	return 0;
}
