/*
 * The one thing postern reads from a metrics scraper: its request line.
 * A pure function, kept apart from the listener (metrics.c) so that the
 * unit tests and the fuzzer reach it without the parent around it.
 */
#include <string.h>

#include "parent.h"

/*
 * What a scraper's bytes so far ask for.  Only the request line counts,
 * and only as a fixed prefix: the rest of the head is never parsed, just
 * waited for (a blank line) within METRICS_REQUEST_MAX.
 */
enum metrics_ask
metrics_classify(const char *buf, size_t len)
{
	static const char *ok[] = {"GET /metrics HTTP/1.", "GET /metrics?"};
	const char *end;
	size_t i;

	if (memmem(buf, len, "\r\n\r\n", 4) == NULL &&
	    memmem(buf, len, "\n\n", 2) == NULL)
		return len >= METRICS_REQUEST_MAX - 1 ? METRICS_TOO_LARGE
						      : METRICS_INCOMPLETE;
	end = memchr(buf, '\n', len);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if ((size_t)(end - buf) >= strlen(ok[i]) &&
		    memcmp(buf, ok[i], strlen(ok[i])) == 0)
			return METRICS_SCRAPE;
	return (size_t)(end - buf) >= 4 && memcmp(buf, "GET ", 4) == 0
	    ? METRICS_NOT_FOUND
	    : METRICS_BAD_METHOD;
}
