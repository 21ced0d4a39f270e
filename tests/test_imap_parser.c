/*
 * The pre-auth IMAP parser.  imap_parse() is re-run on everything
 * buffered so far each time input arrives, so besides the grammar these
 * tests check that no split of the input changes the outcome.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authproc.h"

static const struct imap_limits lim = {8192, 1023};
static const struct imap_limits small = {64, 32};

/* large: keep them out of the stack */
static struct imap_command cmd, ref;

static enum imap_parse_status
parse_lim(const char *in, size_t len, unsigned int acked,
    const struct imap_limits *l)
{
	enum imap_parse_status st;

	memset(&cmd, 0xa5, sizeof(cmd));
	st = imap_parse(in, len, acked, l, &cmd);
	if (st == IMAP_PARSE_OK || st == IMAP_PARSE_BAD)
		assert_true(cmd.consumed > 0 && cmd.consumed <= len);
	return st;
}

static enum imap_parse_status
parse(const char *in, unsigned int acked)
{
	return parse_lim(in, strlen(in), acked, &lim);
}

static void
assert_tok(size_t i, enum imap_token_type type, const char *want,
    size_t wantlen)
{
	assert_true(i < cmd.ntok);
	assert_int_equal(cmd.tok[i].type, type);
	assert_int_equal(cmd.tok[i].len, wantlen);
	assert_true(cmd.tok[i].off + cmd.tok[i].len < cmd.buflen);
	assert_memory_equal(imap_token_str(&cmd, i), want, wantlen);
	/* every token is NUL-terminated in the buffer */
	assert_int_equal(imap_token_str(&cmd, i)[wantlen], '\0');
}

static void
assert_stok(size_t i, enum imap_token_type type, const char *want)
{
	assert_tok(i, type, want, strlen(want));
}

static void
expect_bad(const char *in, size_t consumed)
{
	assert_int_equal(parse(in, 0), IMAP_PARSE_BAD);
	assert_int_equal(cmd.consumed, consumed);
}

/* ---- the grammar ---- */

static void
test_no_args(void **state)
{
	(void)state;
	assert_int_equal(parse("a1 CAPABILITY\r\n", 0), IMAP_PARSE_OK);
	assert_string_equal(cmd.tag, "a1");
	assert_string_equal(cmd.name, "CAPABILITY");
	assert_int_equal(cmd.ntok, 0);
	assert_int_equal(cmd.consumed, 15);
	assert_int_equal(cmd.nsync, 0);
}

static void
test_atoms(void **state)
{
	(void)state;
	assert_int_equal(parse("A001 login bob@example.com s3cr]t!\r\n", 0),
	    IMAP_PARSE_OK);
	assert_string_equal(cmd.tag, "A001");
	assert_string_equal(cmd.name, "LOGIN"); /* upper-cased */
	assert_int_equal(cmd.ntok, 2);
	assert_stok(0, IMAP_TOK_ATOM, "bob@example.com");
	assert_stok(1, IMAP_TOK_ATOM, "s3cr]t!");
	assert_true(imap_token_is_string(&cmd, 0));
	assert_true(imap_token_is_string(&cmd, 1));
	assert_false(imap_token_is_string(&cmd, 2));
}

static void
test_atom_specials(void **state)
{
	(void)state;
	/* list wildcards, braces and 8-bit bytes are not atom chars */
	expect_bad("a LOGIN b*b pw\r\n", 16);
	expect_bad("a LOGIN b%b pw\r\n", 16);
	expect_bad("a LOGIN bob{3}\r\n", 16);
	expect_bad("a LOGIN b\xc3\xa9 pw\r\n", 16);
	expect_bad("a LOGIN b\x01 pw\r\n", 15);
	expect_bad("a LOGIN bob\\ pw\r\n", 17);
}

static void
test_quoted(void **state)
{
	(void)state;
	assert_int_equal(parse("a LOGIN \"bob smith\" \"p\\\"w\\\\d\"\r\n", 0),
	    IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, 2);
	assert_stok(0, IMAP_TOK_QUOTED, "bob smith");
	assert_stok(1, IMAP_TOK_QUOTED, "p\"w\\d");
	assert_true(imap_token_is_string(&cmd, 1));

	assert_int_equal(parse("a LOGIN \"\" \"(){*%\"\r\n", 0), IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_QUOTED, "");
	assert_stok(1, IMAP_TOK_QUOTED, "(){*%");
}

static void
test_quoted_bad(void **state)
{
	(void)state;
	/* only \" and \\ are escapes */
	expect_bad("a LOGIN \"a\\b\" x\r\n", 17);
	expect_bad("a LOGIN \"a\\n\" x\r\n", 17);
	/* no line breaks or NULs inside */
	expect_bad("a LOGIN \"ab\r\n", 13);
	expect_bad("a LOGIN \"ab\ncd\"\r\n", 12);
	assert_int_equal(parse_lim("a LOGIN \"a\0b\" x\r\n", 17, 0, &lim),
	    IMAP_PARSE_BAD);
	assert_int_equal(cmd.consumed, 17);
	/* a quoted string must be followed by a space or the end */
	expect_bad("a LOGIN \"bob\"\"pw\"\r\n", 19);
	expect_bad("a LOGIN \"bob\"x\r\n", 16);
}

static void
test_sync_literal(void **state)
{
	const char *in = "a LOGIN {3}\r\nbob {6}\r\nsecret\r\n";

	(void)state;
	/* before any "+", the first literal waits */
	assert_int_equal(parse(in, 0), IMAP_PARSE_CONTINUE);
	assert_int_equal(cmd.nsync, 1);
	/* with one acked, the parser goes on to the second */
	assert_int_equal(parse(in, 1), IMAP_PARSE_CONTINUE);
	assert_int_equal(cmd.nsync, 2);
	assert_int_equal(parse(in, 2), IMAP_PARSE_OK);
	assert_int_equal(cmd.nsync, 2);
	assert_int_equal(cmd.consumed, strlen(in));
	assert_string_equal(cmd.name, "LOGIN");
	assert_int_equal(cmd.ntok, 2);
	assert_stok(0, IMAP_TOK_LITERAL, "bob");
	assert_stok(1, IMAP_TOK_LITERAL, "secret");
	assert_true(imap_token_is_string(&cmd, 0));
}

static void
test_sync_literal_waits_for_data(void **state)
{
	(void)state;
	assert_int_equal(parse("a LOGIN {3}\r\n", 0), IMAP_PARSE_CONTINUE);
	assert_int_equal(parse("a LOGIN {3}\r\n", 1), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}\r\nbo", 1), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}\r\nbob", 1), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}\r\nbob pw", 1),
	    IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}\r\nbob pw\r\n", 1), IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_LITERAL, "bob");
	assert_stok(1, IMAP_TOK_ATOM, "pw");
}

static void
test_literal_plus(void **state)
{
	const char *in = "a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n";

	(void)state;
	/* non-synchronising literals never ask for a continuation */
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.nsync, 0);
	assert_int_equal(cmd.consumed, strlen(in));
	assert_stok(0, IMAP_TOK_LITERAL, "bob");
	assert_stok(1, IMAP_TOK_LITERAL, "secret");
	assert_int_equal(parse("a LOGIN {3+}\r\nbo", 0), IMAP_PARSE_INCOMPLETE);
}

static void
test_literal_mixed(void **state)
{
	const char *in = "a LOGIN {3+}\r\nbob {6}\r\nsecret\r\n";

	(void)state;
	assert_int_equal(parse(in, 0), IMAP_PARSE_CONTINUE);
	assert_int_equal(cmd.nsync, 1);
	assert_int_equal(parse(in, 1), IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_LITERAL, "bob");
	assert_stok(1, IMAP_TOK_LITERAL, "secret");
}

static void
test_literal_content(void **state)
{
	const char *in = "a LOGIN {3+}\r\n\"\r\n {4+}\n(){}\r\n";

	(void)state;
	/* anything but NUL goes in a literal; LF alone ends its header */
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_LITERAL, "\"\r\n");
	assert_stok(1, IMAP_TOK_LITERAL, "(){}");
	/* empty literal */
	assert_int_equal(parse("a LOGIN {0+}\r\n {1+}\r\nx\r\n", 0),
	    IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_LITERAL, "");
	assert_stok(1, IMAP_TOK_LITERAL, "x");
}

static void
test_literal_nul(void **state)
{
	const char in[] = "a LOGIN {3+}\r\nb\0b pw\r\nb NOOP\r\n";
	const char sync[] = "a LOGIN {3}\r\nb\0b pw\r\n";

	(void)state;
	assert_int_equal(parse_lim(in, sizeof(in) - 1, 0, &lim),
	    IMAP_PARSE_BAD);
	/* the literal is skipped as a whole, then the rest of its line */
	assert_int_equal(cmd.consumed, 22);
	assert_int_equal(parse_lim(in + 22, sizeof(in) - 1 - 22, 0, &lim),
	    IMAP_PARSE_OK);
	assert_string_equal(cmd.name, "NOOP");

	assert_int_equal(parse_lim(sync, sizeof(sync) - 1, 0, &lim),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(parse_lim(sync, sizeof(sync) - 1, 1, &lim),
	    IMAP_PARSE_BAD);
	assert_int_equal(cmd.consumed, sizeof(sync) - 1);
}

static void
test_literal_bad_syntax(void **state)
{
	(void)state;
	expect_bad("a LOGIN {} x\r\n", 14);
	expect_bad("a LOGIN {+}\r\n", 13);
	expect_bad("a LOGIN {3x}\r\n", 14);
	expect_bad("a LOGIN {-3}\r\n", 14);
	expect_bad("a LOGIN {3++}\r\n", 15);
	/* the CRLF must follow the brace directly */
	expect_bad("a LOGIN {3} \r\nbob\r\n", 14);
	expect_bad("a LOGIN {3}\rX\r\n", 15);
	/* a literal must be preceded by a space */
	expect_bad("a LOGIN x{3}\r\n", 14);
}

static void
test_literal_too_long(void **state)
{
	char in[64];

	(void)state;
	snprintf(in, sizeof(in), "a LOGIN {%zu}\r\n", lim.max_literal);
	assert_int_equal(parse(in, 0), IMAP_PARSE_CONTINUE);
	/* refused before the client is invited to send it */
	snprintf(in, sizeof(in), "a LOGIN {%zu}\r\n", lim.max_literal + 1);
	assert_int_equal(parse(in, 0), IMAP_PARSE_TOO_LONG);
	snprintf(in, sizeof(in), "a LOGIN {%zu+}\r\n", lim.max_literal + 1);
	assert_int_equal(parse(in, 0), IMAP_PARSE_TOO_LONG);
	/* absurd sizes must not overflow into small ones */
	assert_int_equal(parse("a LOGIN {18446744073709551617}\r\n", 0),
	    IMAP_PARSE_TOO_LONG);
	assert_int_equal(parse("a LOGIN {99999999999", 0), IMAP_PARSE_TOO_LONG);
	/* nor may they wrap around a 32-bit size_t */
	assert_int_equal(parse("a LOGIN {4294967296}\r\n", 0),
	    IMAP_PARSE_TOO_LONG);
	assert_int_equal(parse("a LOGIN {4294967299+}\r\nabc\r\n", 0),
	    IMAP_PARSE_TOO_LONG);
	assert_int_equal(parse("a LOGIN {9999999999}\r\n", 0),
	    IMAP_PARSE_TOO_LONG);
}

static void
test_parens(void **state)
{
	(void)state;
	assert_int_equal(parse("a ID (\"name\" \"mutt\" \"version\" NIL)\r\n",
			     0),
	    IMAP_PARSE_OK);
	assert_string_equal(cmd.name, "ID");
	assert_int_equal(cmd.ntok, 6);
	assert_int_equal(cmd.tok[0].type, IMAP_TOK_LPAREN);
	assert_false(imap_token_is_string(&cmd, 0));
	assert_stok(1, IMAP_TOK_QUOTED, "name");
	assert_stok(2, IMAP_TOK_QUOTED, "mutt");
	assert_stok(3, IMAP_TOK_QUOTED, "version");
	assert_stok(4, IMAP_TOK_ATOM, "NIL");
	assert_int_equal(cmd.tok[5].type, IMAP_TOK_RPAREN);
	assert_false(imap_token_is_string(&cmd, 5));

	assert_int_equal(parse("a ID ()\r\n", 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, 2);
	assert_int_equal(cmd.tok[0].type, IMAP_TOK_LPAREN);
	assert_int_equal(cmd.tok[1].type, IMAP_TOK_RPAREN);

	assert_int_equal(parse("a ID (\"a\" {1+}\r\nb)\r\n", 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, 4);
	assert_stok(2, IMAP_TOK_LITERAL, "b");

	assert_int_equal(parse("a ID NIL\r\n", 0), IMAP_PARSE_OK);
	assert_stok(0, IMAP_TOK_ATOM, "NIL");
}

static void
test_parens_bad(void **state)
{
	(void)state;
	expect_bad("a ID ((\"a\" \"b\"))\r\n", 18);
	expect_bad("a ID (\"a\" (\"b\"))\r\n", 18);
	expect_bad("a ID (\"a\" \"b\"\r\n", 15);
	expect_bad("a ID \"a\")\r\n", 11);
	expect_bad("a ID ( \"a\")\r\n", 13);
	/* a literal after bad nesting is still skipped whole, never run */
	expect_bad("a X (( {22+}\r\nb LOGIN alice secret\r\n\r\n", 38);
	expect_bad("a X ) {3+}\r\nb Z\r\n", 17);
	/* a synchronising literal is not sent after a BAD: nothing to skip */
	expect_bad("a X ) {3}\r\nb Z\r\n", 11);
	expect_bad("a ID (\"a\")(\"b\")\r\n", 17);
	expect_bad("a ID ())\r\n", 10);
}

static void
test_tag_rules(void **state)
{
	char in[TAG_MAX_LEN + 32];

	(void)state;
	expect_bad("a+b NOOP\r\n", 10);
	expect_bad("+ NOOP\r\n", 8);
	expect_bad("* NOOP\r\n", 8);
	expect_bad("a(b NOOP\r\n", 10);
	expect_bad("\"a\" NOOP\r\n", 10);
	expect_bad("a\xff NOOP\r\n", 9);

	memset(in, 't', TAG_MAX_LEN);
	strcpy(in + TAG_MAX_LEN, " NOOP\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_int_equal(strlen(cmd.tag), TAG_MAX_LEN);

	memset(in, 't', TAG_MAX_LEN + 1);
	strcpy(in + TAG_MAX_LEN + 1, " NOOP\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_BAD);
	assert_int_equal(cmd.consumed, strlen(in));
	/* an unusable tag is not echoed back */
	assert_string_equal(cmd.tag, "");
}

static void
test_empty_tag(void **state)
{
	(void)state;
	expect_bad(" NOOP\r\n", 7);
	assert_string_equal(cmd.tag, "");
	expect_bad("\r\n", 2);
	expect_bad("\n", 1);
}

static void
test_command_name(void **state)
{
	char in[64];

	(void)state;
	expect_bad("a\r\n", 3);
	expect_bad("a \r\n", 4);
	expect_bad("a  NOOP\r\n", 9);
	expect_bad("a NO-OP\r\n", 9);
	/* the name fits in 31 bytes */
	snprintf(in, sizeof(in), "a %s\r\n", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDE");
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_string_equal(cmd.name, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDE");
	snprintf(in, sizeof(in), "a %s\r\n",
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF");
	expect_bad(in, strlen(in));
	/* BAD keeps the tag so the reply can carry it */
	expect_bad("t1 NO-OP\r\n", 10);
	assert_string_equal(cmd.tag, "t1");
}

static void
test_missing_space(void **state)
{
	(void)state;
	expect_bad("a1NOOP\r\n", 8);
	expect_bad("a LOGIN  bob pw\r\n", 17);
	expect_bad("a LOGIN bob\"pw\"\r\n", 17);
	expect_bad("a LOGIN\tbob pw\r\n", 16);
}

static void
test_line_endings(void **state)
{
	(void)state;
	assert_int_equal(parse("a NOOP\n", 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.consumed, 7);
	assert_int_equal(parse("a LOGIN bob pw\nb NOOP\n", 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.consumed, 15);
	assert_stok(1, IMAP_TOK_ATOM, "pw");
	/* a CR must be part of CRLF */
	expect_bad("a NOOP\rb NOOP\r\n", 15);
	assert_int_equal(parse("a NOOP\r", 0), IMAP_PARSE_INCOMPLETE);
}

static void
test_bad_then_next(void **state)
{
	const char *in = "a LOGIN \"x\\y\" z\r\nb NOOP\r\n";
	size_t off;

	(void)state;
	assert_int_equal(parse(in, 0), IMAP_PARSE_BAD);
	assert_string_equal(cmd.tag, "a");
	off = cmd.consumed;
	assert_int_equal(off, 17);
	assert_int_equal(parse(in + off, 0), IMAP_PARSE_OK);
	assert_string_equal(cmd.tag, "b");
	assert_string_equal(cmd.name, "NOOP");
	assert_int_equal(off + cmd.consumed, strlen(in));
}

static void
test_bad_waits_for_line_end(void **state)
{
	(void)state;
	/* BAD is only reported once the line can be skipped whole */
	assert_int_equal(parse("a+b NOOP", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN \"x\\y\"", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a ID ((", 0), IMAP_PARSE_INCOMPLETE);
}

static void
test_incomplete(void **state)
{
	(void)state;
	assert_int_equal(parse("", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a NOOP", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN \"bob", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN \"bob\\", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3+", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}", 0), IMAP_PARSE_INCOMPLETE);
	assert_int_equal(parse("a LOGIN {3}\r", 0), IMAP_PARSE_INCOMPLETE);
}

/* A line "a LOGIN xxx..." of n bytes before eol. */
static char *
long_line(size_t n, const char *eol)
{
	char *p;

	assert_true(n > 8);
	p = malloc(n + strlen(eol) + 1);
	assert_non_null(p);
	memcpy(p, "a LOGIN ", 8);
	memset(p + 8, 'x', n - 8);
	strcpy(p + n, eol);
	return p;
}

static void
test_too_long_line(void **state)
{
	char *p;

	(void)state;
	p = long_line(small.max_line, "\r\n");
	assert_int_equal(parse_lim(p, strlen(p), 0, &small), IMAP_PARSE_OK);
	free(p);
	p = long_line(small.max_line + 1, "\r\n");
	assert_int_equal(parse_lim(p, strlen(p), 0, &small),
	    IMAP_PARSE_TOO_LONG);
	free(p);
	/* no need to wait for the line end to know */
	p = long_line(small.max_line + 1, "");
	assert_int_equal(parse_lim(p, strlen(p), 0, &small),
	    IMAP_PARSE_TOO_LONG);
	free(p);
	/* the same in a quoted string, and in the tag */
	p = long_line(small.max_line + 1, "");
	p[8] = '"';
	assert_int_equal(parse_lim(p, strlen(p), 0, &small),
	    IMAP_PARSE_TOO_LONG);
	memset(p, 't', small.max_line + 1);
	assert_int_equal(parse_lim(p, strlen(p), 0, &small),
	    IMAP_PARSE_TOO_LONG);
	free(p);
}

static void
test_line_limit_per_segment(void **state)
{
	char in[512];
	char x[60];

	(void)state;
	/* max_line applies to the text between literals, not the total */
	memset(x, 'x', sizeof(x) - 1);
	x[sizeof(x) - 1] = '\0';
	snprintf(in, sizeof(in), "a LOGIN %.40s {3+}\r\nabc %.50s\r\n", x, x);
	assert_int_equal(parse_lim(in, strlen(in), 0, &small), IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, 3);
	snprintf(in, sizeof(in), "a LOGIN %.40s {3+}\r\nabc %.59s%.10s\r\n", x,
	    x, x);
	assert_int_equal(parse_lim(in, strlen(in), 0, &small),
	    IMAP_PARSE_TOO_LONG);
}

static void
test_too_many_tokens(void **state)
{
	char in[IMAP_MAX_TOKENS * 2 + 64];
	size_t i, o;

	(void)state;
	o = snprintf(in, sizeof(in), "a X");
	for (i = 0; i < IMAP_MAX_TOKENS; i++) {
		in[o++] = ' ';
		in[o++] = 'a' + i % 26;
	}
	strcpy(in + o, "\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, IMAP_MAX_TOKENS);
	strcpy(in + o, " z\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_TOO_LONG);
	/* parentheses count as tokens too */
	o = snprintf(in, sizeof(in), "a X");
	for (i = 0; i < IMAP_MAX_TOKENS / 2; i++)
		o += snprintf(in + o, sizeof(in) - o, " ()");
	strcpy(in + o, "\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_OK);
	assert_int_equal(cmd.ntok, IMAP_MAX_TOKENS);
	strcpy(in + o, " (\r\n");
	assert_int_equal(parse(in, 0), IMAP_PARSE_TOO_LONG);
}

static void
test_token_buffer_full(void **state)
{
	struct imap_limits big = {8192, 8192};
	char *in;
	size_t o = 0, i;

	(void)state;
	/* three literals of 8 KiB exceed the token buffer */
	in = malloc(3 * 8300);
	assert_non_null(in);
	o += sprintf(in, "a X");
	for (i = 0; i < 3; i++) {
		o += sprintf(in + o, " {8192+}\r\n");
		memset(in + o, 'L', 8192);
		o += 8192;
	}
	memcpy(in + o, "\r\n", 2);
	o += 2;
	assert_int_equal(parse_lim(in, o, 0, &big), IMAP_PARSE_TOO_LONG);
	/* two fit */
	o = sprintf(in, "a X");
	for (i = 0; i < 2; i++) {
		o += sprintf(in + o, " {8192+}\r\n");
		memset(in + o, 'L', 8192);
		o += 8192;
	}
	memcpy(in + o, "\r\n", 2);
	o += 2;
	assert_int_equal(parse_lim(in, o, 0, &big), IMAP_PARSE_OK);
	assert_int_equal(cmd.tok[1].len, 8192);
	free(in);
}

static void
test_line_find(void **state)
{
	size_t consumed;

	(void)state;
	consumed = 99;
	assert_int_equal(line_find("abc\r\n", 5, &consumed), 3);
	assert_int_equal(consumed, 5);
	assert_int_equal(line_find("abc\ndef\n", 8, &consumed), 3);
	assert_int_equal(consumed, 4);
	assert_int_equal(line_find("\r\n", 2, &consumed), 0);
	assert_int_equal(consumed, 2);
	assert_int_equal(line_find("\n", 1, &consumed), 0);
	assert_int_equal(consumed, 1);
	/* a CR not directly before the LF is content */
	assert_int_equal(line_find("a\rb\n", 4, &consumed), 3);
	assert_int_equal(consumed, 4);
	assert_int_equal(line_find("a\r\r\n", 4, &consumed), 2);
	assert_int_equal(line_find("a\0b\n", 4, &consumed), 3);
	/* incomplete: consumed is left alone */
	consumed = 77;
	assert_int_equal(line_find("abc", 3, &consumed), -1);
	assert_int_equal(line_find("abc\r", 4, &consumed), -1);
	assert_int_equal(line_find("", 0, &consumed), -1);
	/* the length bounds the search */
	assert_int_equal(line_find("abc\n", 3, &consumed), -1);
	assert_int_equal(consumed, 77);
}

/* ---- split reads ---- */

/*
 * What the engine does with the buffered bytes: parse, and on CONTINUE
 * send "+" (acked++) and parse again.  Returns the final status.
 */
static enum imap_parse_status
engine(const char *in, size_t len, unsigned int *acked,
    const struct imap_limits *l)
{
	enum imap_parse_status st;

	while ((st = parse_lim(in, len, *acked, l)) == IMAP_PARSE_CONTINUE)
		(*acked)++;
	return st;
}

static void
assert_same_parse(const struct imap_command *a, const struct imap_command *b)
{
	size_t i;

	assert_string_equal(a->tag, b->tag);
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->ntok, b->ntok);
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->nsync, b->nsync);
	for (i = 0; i < a->ntok; i++) {
		assert_int_equal(a->tok[i].type, b->tok[i].type);
		assert_int_equal(a->tok[i].len, b->tok[i].len);
		assert_memory_equal(a->buf + a->tok[i].off,
		    b->buf + b->tok[i].off, a->tok[i].len);
	}
}

static const struct {
	const char *in;
	size_t len; /* 0: strlen */
	unsigned int nsync;
	enum imap_parse_status want;
} split_cases[] = {
    {"a1 CAPABILITY\r\n", 0, 0, IMAP_PARSE_OK},
    {"a2 LOGIN bob@example.com s3cret\r\n", 0, 0, IMAP_PARSE_OK},
    {"a3 LOGIN \"bob\" \"p\\\"a\\\\ss word\"\r\n", 0, 0, IMAP_PARSE_OK},
    {"a4 LOGIN {3}\r\nbob {6}\r\nsecret\r\n", 0, 2, IMAP_PARSE_OK},
    {"a5 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n", 0, 0, IMAP_PARSE_OK},
    {"a6 LOGIN {3+}\r\nbob {8}\r\nse\r\ncret\r\n", 0, 1, IMAP_PARSE_OK},
    {"a7 ID (\"name\" \"x\" \"version\" {3}\r\n1.0)\r\n", 0, 1, IMAP_PARSE_OK},
    {"a8 AUTHENTICATE PLAIN AGJvYgBzM2NyZXQ=\r\n", 0, 0, IMAP_PARSE_OK},
    {"a9 NOOP\n", 0, 0, IMAP_PARSE_OK},
    {"b1 LOGIN {0}\n {1}\nx\n", 0, 2, IMAP_PARSE_OK},
    {"b2 LOGIN \"\" \"\"\r\n", 0, 0, IMAP_PARSE_OK},
    /* bad ones, too: nothing is judged before the line end */
    {"c1 LOGIN \"a\\b\" x\r\n", 0, 0, IMAP_PARSE_BAD},
    {"c2 ID ((x))\r\n", 0, 0, IMAP_PARSE_BAD},
    {"c+3 NOOP\r\n", 0, 0, IMAP_PARSE_BAD},
    {"c4 LOGIN {3}\r\nb\0b x\r\n", 21, 1, IMAP_PARSE_BAD},
    {"c5 LOGIN {3} x\r\n", 0, 0, IMAP_PARSE_BAD},
};

/*
 * Feed a command one byte at a time, the engine acknowledging literals
 * as it would: every prefix is INCOMPLETE (after any CONTINUEs), and the
 * final parse equals the single-read parse.
 */
static void
test_split_bytewise_engine(void **state)
{
	size_t i, k, len;
	unsigned int acked, conts;
	char *copy;
	enum imap_parse_status st;

	(void)state;
	for (i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		len = split_cases[i].len ? split_cases[i].len
					 : strlen(split_cases[i].in);
		acked = 0;
		assert_int_equal(engine(split_cases[i].in, len, &acked, &lim),
		    split_cases[i].want);
		assert_int_equal(acked, split_cases[i].nsync);
		ref = cmd;

		acked = 0;
		conts = 0;
		for (k = 0; k <= len; k++) {
			/* exact-size copies so ASan sees any overread */
			copy = malloc(k ? k : 1);
			assert_non_null(copy);
			memcpy(copy, split_cases[i].in, k);
			for (;;) {
				st = parse_lim(copy, k, acked, &lim);
				if (st != IMAP_PARSE_CONTINUE)
					break;
				acked++;
				conts++;
			}
			free(copy);
			if (k < len) {
				if (st != IMAP_PARSE_INCOMPLETE)
					fail_msg("case %zu prefix %zu: %d", i,
					    k, st);
			} else {
				assert_int_equal(st, split_cases[i].want);
				assert_same_parse(&cmd, &ref);
			}
		}
		assert_int_equal(conts, split_cases[i].nsync);
	}
}

/*
 * Every prefix on its own, with no literal acked and with all acked:
 * never OK or BAD early, and CONTINUE only while a literal is unacked.
 */
static void
test_split_every_prefix(void **state)
{
	size_t i, k, len;
	char *copy;
	enum imap_parse_status st0, stall;

	(void)state;
	for (i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		len = split_cases[i].len ? split_cases[i].len
					 : strlen(split_cases[i].in);
		for (k = 0; k < len; k++) {
			copy = malloc(k ? k : 1);
			assert_non_null(copy);
			memcpy(copy, split_cases[i].in, k);
			st0 = parse_lim(copy, k, 0, &lim);
			stall = parse_lim(copy, k, 100, &lim);
			free(copy);
			if (st0 != IMAP_PARSE_INCOMPLETE &&
			    st0 != IMAP_PARSE_CONTINUE)
				fail_msg("case %zu prefix %zu: %d", i, k, st0);
			if (split_cases[i].nsync == 0 &&
			    st0 != IMAP_PARSE_INCOMPLETE)
				fail_msg("case %zu prefix %zu: %d", i, k, st0);
			if (stall != IMAP_PARSE_INCOMPLETE)
				fail_msg("case %zu prefix %zu: acked %d", i, k,
				    stall);
		}
	}
}

/* Several commands in one buffer, split at every point into two reads. */
static void
test_split_pipeline(void **state)
{
	const char in[] = "a LOGIN {3}\r\nbob pw\r\nb NOOP\r\n"
			  "c LOGIN \"x\\q\" y\r\nd ID (\"k\" {1+}\r\nv)\r\n";
	const char *names[] = {"LOGIN", "NOOP", "", "ID"};
	size_t len = sizeof(in) - 1, cut, off, n, avail;
	unsigned int acked;
	enum imap_parse_status st;

	(void)state;
	for (cut = 0; cut <= len; cut++) {
		off = 0;
		n = 0;
		acked = 0;
		/* first read: the bytes up to cut; second: the rest */
		while (off < len) {
			avail = off < cut ? cut : len;
			st = engine(in + off, avail - off, &acked, &lim);
			if (st == IMAP_PARSE_INCOMPLETE && avail < len) {
				/* the second read arrives */
				avail = len;
				st = engine(in + off, len - off, &acked, &lim);
			}
			assert_true(
			    st == IMAP_PARSE_OK || st == IMAP_PARSE_BAD);
			assert_true(n < 4);
			if (n == 2)
				assert_int_equal(st, IMAP_PARSE_BAD);
			else {
				assert_int_equal(st, IMAP_PARSE_OK);
				assert_string_equal(cmd.name, names[n]);
			}
			acked = 0;
			off += cmd.consumed;
			n++;
		}
		assert_int_equal(n, 4);
		assert_int_equal(off, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_args),
	    cmocka_unit_test(test_atoms),
	    cmocka_unit_test(test_atom_specials),
	    cmocka_unit_test(test_quoted),
	    cmocka_unit_test(test_quoted_bad),
	    cmocka_unit_test(test_sync_literal),
	    cmocka_unit_test(test_sync_literal_waits_for_data),
	    cmocka_unit_test(test_literal_plus),
	    cmocka_unit_test(test_literal_mixed),
	    cmocka_unit_test(test_literal_content),
	    cmocka_unit_test(test_literal_nul),
	    cmocka_unit_test(test_literal_bad_syntax),
	    cmocka_unit_test(test_literal_too_long),
	    cmocka_unit_test(test_parens),
	    cmocka_unit_test(test_parens_bad),
	    cmocka_unit_test(test_tag_rules),
	    cmocka_unit_test(test_empty_tag),
	    cmocka_unit_test(test_command_name),
	    cmocka_unit_test(test_missing_space),
	    cmocka_unit_test(test_line_endings),
	    cmocka_unit_test(test_bad_then_next),
	    cmocka_unit_test(test_bad_waits_for_line_end),
	    cmocka_unit_test(test_incomplete),
	    cmocka_unit_test(test_too_long_line),
	    cmocka_unit_test(test_line_limit_per_segment),
	    cmocka_unit_test(test_too_many_tokens),
	    cmocka_unit_test(test_token_buffer_full),
	    cmocka_unit_test(test_line_find),
	    cmocka_unit_test(test_split_bytewise_engine),
	    cmocka_unit_test(test_split_every_prefix),
	    cmocka_unit_test(test_split_pipeline),
	};

	return cmocka_run_group_tests_name("imap_parser", tests, NULL, NULL);
}
