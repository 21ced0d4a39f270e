/*
 * Fuzz the form login user extractor: the first byte picks the content
 * type and the field, the rest is the body.  A user found must be a
 * usable name, NUL-terminated within its buffer; nothing is read past
 * the body (ASan) and the result never depends on bytes after it.
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[HTTP_USER_MAX + 1], again[HTTP_USER_MAX + 1];
	const char *ct, *field;
	char *body;
	size_t len;
	int r;

	if (size < 1)
		return 0;
	ct = types[data[0] & 3];
	field = fields[(data[0] >> 2) & 3];
	len = size - 1;
	/* an exact copy: ASan catches any read past the end */
	if ((body = malloc(len ? len : 1)) == NULL)
		return 0;
	memcpy(body, data + 1, len);
	r = http_form_user(ct, strlen(ct), body, len, field, user,
	    sizeof(user));
	CHECK(r >= -1 && r <= 1);
	CHECK(memchr(user, '\0', sizeof(user)) != NULL);
	if (r == 1)
		CHECK(http_usable_name(user, strlen(user)));
	else
		CHECK(user[0] == '\0');
	/* the same again: no hidden state */
	CHECK(http_form_user(ct, strlen(ct), body, len, field, again,
		  sizeof(again)) == r);
	CHECK(strcmp(user, again) == 0);
	free(body);
	return 0;
}
