/*
 * memcached keys.  memcached's text protocol ends a key at a space or a
 * line end and its keys hold at most 250 bytes; a key made of a user
 * name could therefore smuggle commands or be cut short and collide (the
 * CVE-2022-27924 class).  Here every key is "postern:", a namespace
 * letter, ':' and the hex SHA-256 of the identifying bytes: fixed length,
 * printable, and unique for every distinct input.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "mcache.h"

static const char hexdigits[] = "0123456789abcdef";

int
mckey_derive(char *dst, size_t dstsz, char ns, const void *bytes, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	size_t off;
	int n;

	if (ns < 'a' || ns > 'z')
		return -1;
	if (EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	n = snprintf(dst, dstsz, MCKEY_PREFIX "%c:", ns);
	if (n < 0 || (size_t)n + mdlen * 2 + 1 > dstsz)
		return -1;
	off = n;
	for (i = 0; i < mdlen; i++) {
		dst[off++] = hexdigits[md[i] >> 4];
		dst[off++] = hexdigits[md[i] & 0xf];
	}
	dst[off] = '\0';
	return 0;
}

/* A throttle counter: one key per window bucket. */
int
mckey_counter(char *dst, size_t dstsz, const void *bytes, size_t len,
    uint64_t bucket)
{
	size_t off;
	int n;

	if (mckey_derive(dst, dstsz, 'c', bytes, len) == -1)
		return -1;
	off = strlen(dst);
	n = snprintf(dst + off, dstsz - off, ":%llu",
	    (unsigned long long)bucket);
	if (n < 0 || (size_t)n >= dstsz - off)
		return -1;
	return 0;
}
