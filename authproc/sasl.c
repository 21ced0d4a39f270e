/*
 * SASL PLAIN (RFC 4616): base64 of authzid NUL authcid NUL passwd.
 */
#include <resolv.h>
#include <stdlib.h>
#include <string.h>

#include "authproc.h"

#define SASL_PLAIN_MAX (USER_MAX_LEN * 2 + PASS_MAX_LEN + 2)

static int
copy_field(char *dst, size_t dstsz, const unsigned char *src, size_t n)
{
	if (n >= dstsz)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int
sasl_plain_decode(const char *b64, size_t len, char *authzid, size_t authzidsz,
    char *authcid, size_t authcidsz, char *passwd, size_t passwdsz)
{
	unsigned char raw[SASL_PLAIN_MAX + 4];
	char enc[(SASL_PLAIN_MAX + 4) / 3 * 4 + 8];
	const unsigned char *nul1, *nul2;
	int n, rv = -1;

	/*
	 * b64_pton wants a C string; reject embedded NULs and excess.  Go
	 * through "done" so every failure leaves passwd wiped alike.
	 */
	if (len == 0 || len >= sizeof(enc) || memchr(b64, '\0', len) != NULL)
		goto done;
	memcpy(enc, b64, len);
	enc[len] = '\0';
	if ((n = b64_pton(enc, raw, sizeof(raw))) <= 0 || n > SASL_PLAIN_MAX)
		goto done;
	if ((nul1 = memchr(raw, '\0', n)) == NULL)
		goto done;
	nul2 = memchr(nul1 + 1, '\0', n - (nul1 + 1 - raw));
	if (nul2 == NULL ||
	    memchr(nul2 + 1, '\0', n - (nul2 + 1 - raw)) != NULL)
		goto done;
	if (nul2 == nul1 + 1 || nul2 + 1 == raw + n)
		goto done; /* empty user or password */
	if (copy_field(authzid, authzidsz, raw, nul1 - raw) == -1 ||
	    copy_field(authcid, authcidsz, nul1 + 1, nul2 - nul1 - 1) == -1 ||
	    copy_field(passwd, passwdsz, nul2 + 1, raw + n - nul2 - 1) == -1)
		goto done;
	rv = 0;
done:
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(enc, sizeof(enc));
	if (rv == -1 && passwdsz > 0)
		explicit_bzero(passwd, passwdsz);
	return rv;
}
