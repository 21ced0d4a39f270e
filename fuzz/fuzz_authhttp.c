/*
 * libFuzzer target for the lookup handler answer reader: the input is
 * split into "Name: value" lines, as libevent would hand them over.
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
	char *buf, *line, *next, *colon, esc[64];

	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
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
