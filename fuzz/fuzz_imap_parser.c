/*
 * Fuzz the pre-auth IMAP parser the way authproc drives it: parse what is
 * buffered, send "+" and retry on CONTINUE, drop a command on OK or BAD,
 * stop on INCOMPLETE or TOO_LONG.  Every result is checked against the
 * bounds the callers rely on, and against a re-parse of exactly the
 * bytes it consumed, which must give the same answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct imap_limits lim = {8192, 1023};

/* large: keep them off the stack */
static struct imap_command cmd, again;

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static void
check_command(const struct imap_command *c)
{
	size_t i;

	CHECK(memchr(c->tag, '\0', sizeof(c->tag)) != NULL);
	CHECK(memchr(c->name, '\0', sizeof(c->name)) != NULL);
	CHECK(c->ntok <= IMAP_MAX_TOKENS);
	CHECK(c->buflen <= sizeof(c->buf));
	for (i = 0; i < c->ntok; i++) {
		/* the decoded token and its NUL lie inside buf */
		CHECK(c->tok[i].off <= c->buflen);
		CHECK(c->tok[i].len < c->buflen - c->tok[i].off);
		CHECK(c->buf[c->tok[i].off + c->tok[i].len] == '\0');
		CHECK(c->tok[i].type <= IMAP_TOK_RPAREN);
		if (c->tok[i].type == IMAP_TOK_LITERAL)
			CHECK(c->tok[i].len <= lim.max_literal);
		if (c->tok[i].type == IMAP_TOK_LPAREN ||
		    c->tok[i].type == IMAP_TOK_RPAREN)
			CHECK(c->tok[i].len == 0);
	}
}

static void
check_same(const struct imap_command *a, const struct imap_command *b)
{
	size_t i;

	CHECK(strcmp(a->tag, b->tag) == 0);
	CHECK(strcmp(a->name, b->name) == 0);
	CHECK(a->consumed == b->consumed);
	CHECK(a->ntok == b->ntok);
	for (i = 0; i < a->ntok; i++) {
		CHECK(a->tok[i].type == b->tok[i].type);
		CHECK(a->tok[i].len == b->tok[i].len);
		CHECK(memcmp(a->buf + a->tok[i].off, b->buf + b->tok[i].off,
			  a->tok[i].len) == 0);
	}
}

/*
 * The parser must not depend on bytes after the command, and a prefix
 * of the command must only ever be incomplete.  Exact-size copies let
 * ASan catch a read past the end.
 */
static void
check_prefixes(const char *in, enum imap_parse_status st, unsigned int acked)
{
	size_t n = cmd.consumed, cut;
	char *copy;
	enum imap_parse_status st2;

	CHECK((copy = malloc(n)) != NULL);
	memcpy(copy, in, n);
	st2 = imap_parse(copy, n, acked, &lim, &again);
	CHECK(st2 == st);
	check_same(&cmd, &again);
	free(copy);

	cut = n / 2;
	CHECK((copy = malloc(cut ? cut : 1)) != NULL);
	memcpy(copy, in, cut);
	st2 = imap_parse(copy, cut, acked, &lim, &again);
	CHECK(st2 == IMAP_PARSE_INCOMPLETE);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t off = 0;
	unsigned int acked = 0;
	enum imap_parse_status st;

	while (off < size) {
		st = imap_parse(in + off, size - off, acked, &lim, &cmd);
		check_command(&cmd);
		switch (st) {
		case IMAP_PARSE_CONTINUE:
			/* each "+" lets the parser past one more literal */
			CHECK(cmd.nsync == acked + 1);
			acked++;
			continue;
		case IMAP_PARSE_OK:
		case IMAP_PARSE_BAD:
			CHECK(cmd.consumed > 0);
			CHECK(cmd.consumed <= size - off);
			CHECK(cmd.nsync <= acked);
			if (st == IMAP_PARSE_OK)
				CHECK(
				    cmd.tag[0] != '\0' && cmd.name[0] != '\0');
			check_prefixes(in + off, st, acked);
			off += cmd.consumed;
			acked = 0;
			continue;
		case IMAP_PARSE_INCOMPLETE:
		case IMAP_PARSE_TOO_LONG:
			return 0;
		default:
			abort();
		}
	}
	return 0;
}
