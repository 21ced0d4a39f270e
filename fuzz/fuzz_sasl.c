/*
 * Fuzz SASL PLAIN decoding.  A success must yield terminated, non-empty
 * user and password that encode back to what was decoded; a failure
 * must leave the password buffer zeroed.
 */
#include <resolv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static void
check_zeroed(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		CHECK(p[i] == '\0');
}

static void
check_decoded(const char *z, size_t zsz, const char *u, size_t usz,
    const char *p, size_t psz)
{
	char raw[USER_MAX_LEN * 2 + PASS_MAX_LEN + 3];
	char b64[sizeof(raw) * 2];
	char z2[USER_MAX_LEN + 1], u2[USER_MAX_LEN + 1];
	char p2[PASS_MAX_LEN + 1];
	size_t zl, ul, pl;
	int n;

	CHECK(memchr(z, '\0', zsz) != NULL);
	CHECK(memchr(u, '\0', usz) != NULL);
	CHECK(memchr(p, '\0', psz) != NULL);
	zl = strlen(z);
	ul = strlen(u);
	pl = strlen(p);
	CHECK(ul > 0 && pl > 0);
	CHECK(zl + ul + pl + 2 <= sizeof(raw));
	memcpy(raw, z, zl + 1);
	memcpy(raw + zl + 1, u, ul + 1);
	memcpy(raw + zl + ul + 2, p, pl);
	n = b64_ntop((unsigned char *)raw, zl + ul + pl + 2, b64, sizeof(b64));
	CHECK(n > 0);
	CHECK(sasl_plain_decode(b64, n, z2, sizeof(z2), u2, sizeof(u2), p2,
		  sizeof(p2)) == 0);
	CHECK(strcmp(z, z2) == 0);
	CHECK(strcmp(u, u2) == 0);
	CHECK(strcmp(p, p2) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char z[USER_MAX_LEN + 1], u[USER_MAX_LEN + 1];
	char p[PASS_MAX_LEN + 1];
	char sz[8], su[8], sp[8];

	memset(p, 'X', sizeof(p));
	if (sasl_plain_decode((const char *)data, size, z, sizeof(z), u,
		sizeof(u), p, sizeof(p)) == 0)
		check_decoded(z, sizeof(z), u, sizeof(u), p, sizeof(p));
	else
		check_zeroed(p, sizeof(p));

	/* the caller's buffer sizes bound the fields */
	memset(sp, 'X', sizeof(sp));
	if (sasl_plain_decode((const char *)data, size, sz, sizeof(sz), su,
		sizeof(su), sp, sizeof(sp)) == 0)
		check_decoded(sz, sizeof(sz), su, sizeof(su), sp, sizeof(sp));
	else
		check_zeroed(sp, sizeof(sp));
	return 0;
}
