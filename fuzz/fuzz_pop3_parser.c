/*
 * Fuzz the pre-auth POP3 parser as authproc drives it: one command after
 * another until the input is incomplete or a line too long.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_LINE 1024
#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static void
check_ok(const struct pop3_command *c, const char *line)
{
	size_t i, kw;

	kw = strlen(c->name);
	CHECK(kw > 0 && kw < sizeof(c->name));
	for (i = 0; i < kw; i++) {
		CHECK(isupper((unsigned char)c->name[i]));
		CHECK(toupper((unsigned char)line[i]) == c->name[i]);
	}
	CHECK(memchr(c->arg, '\0', sizeof(c->arg)) != NULL);
	CHECK(strlen(c->arg) <= POP3_MAX_ARG);
	CHECK(c->hasarg || c->arg[0] == '\0');
	/* the argument is the rest of the line, byte for byte */
	if (c->hasarg)
		CHECK(memcmp(line + kw + 1, c->arg, strlen(c->arg)) == 0);
	CHECK(memchr(c->arg, '\r', strlen(c->arg)) == NULL);
	CHECK(memchr(c->arg, '\n', strlen(c->arg)) == NULL);
}

/* Re-parse exactly the consumed bytes, and half of them. */
static void
check_prefixes(const char *in, const struct pop3_command *c,
    enum pop3_parse_status st)
{
	struct pop3_command again;
	size_t n = c->consumed, cut = n / 2;
	char *copy;

	CHECK((copy = malloc(n)) != NULL);
	memcpy(copy, in, n);
	CHECK(pop3_parse(copy, n, MAX_LINE, &again) == st);
	CHECK(again.consumed == n);
	CHECK(strcmp(again.name, c->name) == 0);
	CHECK(strcmp(again.arg, c->arg) == 0);
	free(copy);
	CHECK((copy = malloc(cut ? cut : 1)) != NULL);
	memcpy(copy, in, cut);
	CHECK(pop3_parse(copy, cut, MAX_LINE, &again) == POP3_PARSE_INCOMPLETE);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct pop3_command c;
	enum pop3_parse_status st;
	size_t off = 0;

	while (off < size) {
		st = pop3_parse(in + off, size - off, MAX_LINE, &c);
		switch (st) {
		case POP3_PARSE_OK:
			check_ok(&c, in + off);
			/* FALLTHROUGH */
		case POP3_PARSE_BAD:
			CHECK(c.consumed > 0 && c.consumed <= size - off);
			CHECK(in[off + c.consumed - 1] == '\n');
			CHECK(c.consumed <= MAX_LINE + 2);
			check_prefixes(in + off, &c, st);
			off += c.consumed;
			break;
		case POP3_PARSE_INCOMPLETE:
			CHECK(memchr(in + off, '\n', size - off) == NULL);
			return 0;
		case POP3_PARSE_TOO_LONG:
			return 0;
		default:
			abort();
		}
	}
	return 0;
}
