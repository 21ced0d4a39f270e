/*
 * libFuzzer target for the PROXY protocol parser: whatever the bytes, it
 * must not read past them, must consume only what it was given, must
 * name a client only with a family it understands, and must call every
 * cut short of a header's end incomplete.
 */
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result r;
	unsigned char *copy;
	size_t n;

	/* an exact-size copy, so any over-read is caught by ASan */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	if (proxy_parse(copy, size, &r) == PROXY_OK) {
		if (r.consumed == 0 || r.consumed > size)
			abort();
		if (r.has_addr && r.src.ss_family != AF_INET &&
		    r.src.ss_family != AF_INET6)
			abort();
		if (r.has_addr && r.src.ss_family != r.dst.ss_family)
			abort();
		/*
		 * tlsproc takes every byte of an incomplete header off the
		 * socket, so one byte short must be incomplete, not bad.
		 */
		n = r.consumed;
		if (proxy_parse(copy, n - 1, &r) != PROXY_INCOMPLETE)
			abort();
	}
	free(copy);
	return 0;
}
