/*
 * libFuzzer target for the PROXY protocol parser: whatever the bytes, it
 * must not read past them, must consume only what it was given, and must
 * name a client only with a family it understands.
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
	}
	free(copy);
	return 0;
}
