/*
 * libFuzzer target for the lookup handler answer reader: the input is
 * split into "Name: value" lines, as libevent would hand them over.
 * The same bytes are read as a route cache value from memcached, and
 * a route read back must write out again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct authhttp_reply r;
	struct authhttp_route rt;
	char *buf, *line, *next, *colon, esc[64], again[600];

	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (authhttp_cache_parse(buf, size, "0123456789abcdef", &rt) == 0 &&
	    authhttp_cache_format(again, sizeof(again), "0123456789abcdef",
		&rt) == -1)
		abort();
	authhttp_reply_init(&r);
	for (line = buf; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((colon = strchr(line, ':')) == NULL)
			continue;
		*colon++ = '\0';
		while (*colon == ' ')
			colon++;
		authhttp_reply_header(&r, line, colon);
		(void)authhttp_escape(esc, sizeof(esc), colon);
	}
	if (authhttp_reply_finish(&r) == AUTHHTTP_OK &&
	    r.server.ss_family != 2 && r.server.ss_family != 10)
		abort();
	free(buf);
	return 0;
}
