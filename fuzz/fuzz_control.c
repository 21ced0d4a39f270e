/*
 * Fuzz what reaches the parent from outside its children: a control
 * socket request (ctl_request_valid, after the imsg framing that
 * fuzz_imsg covers) and a metrics scraper's bytes (metrics_classify).
 * The first byte picks which.  A request found valid must name a known
 * command and carry a terminated, printable argument; a scrape must
 * start with the one request line postern serves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parent.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static void
fuzz_request(const uint8_t *data, size_t size)
{
	struct ctl_request r;
	char err[128];
	size_t i;

	memset(&r, 0, sizeof(r));
	memcpy(&r, data, size < sizeof(r) ? size : sizeof(r));
	if (!ctl_request_valid(&r, err, sizeof(err))) {
		CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
		return;
	}
	CHECK(r.command >= CTL_SHOW_SESSIONS && r.command < CTL_COMMAND_MAX);
	CHECK(memchr(r.arg, '\0', sizeof(r.arg)) != NULL);
	for (i = 0; r.arg[i] != '\0'; i++)
		CHECK((unsigned char)r.arg[i] > ' ' && r.arg[i] != 0x7f);
}

static void
fuzz_scrape(const uint8_t *data, size_t size)
{
	char *buf;
	enum metrics_ask ask;

	/* a copy of exactly size bytes: ASan sees any read past them */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return;
	memcpy(buf, data, size);
	ask = metrics_classify(buf, size);
	CHECK(ask == metrics_classify(buf, size));
	if (ask == METRICS_SCRAPE)
		CHECK(size >= 13 && memcmp(buf, "GET /metrics", 12) == 0);
	if (ask == METRICS_INCOMPLETE)
		CHECK(size < METRICS_REQUEST_MAX);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_request(data + 1, size - 1);
	else
		fuzz_scrape(data + 1, size - 1);
	return 0;
}
