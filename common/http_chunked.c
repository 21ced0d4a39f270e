/*
 * The chunked transfer coding (RFC 9112 section 7.1), de-framed one
 * byte of framing at a time so that input may arrive split anywhere.
 * Data spans are handed back in place, never copied.  The grammar is
 * taken strictly: an upstream and postern must not disagree on where a
 * body ends, so anything two readers could take two ways is an error.
 *
 * chunk-ext follows the RFC's own grammar: BWS is allowed around ';'
 * and '=', never between the last extension and the CRLF, and never
 * after a size that has no extension.  Extensions and trailer fields
 * are checked and then dropped: the relay re-frames what it forwards.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"

enum {
	CS_SIZE,	  /* chunk-size digits */
	CS_SIZE_WS,	  /* BWS after the size: ';' must follow */
	CS_EXT_NAME0,	  /* after ';': BWS, then a name */
	CS_EXT_NAME,	  /* in an extension name */
	CS_EXT_NAME_WS,	  /* BWS after a name: '=' or ';' must follow */
	CS_EXT_VAL0,	  /* after '=': BWS, then a value */
	CS_EXT_TOKEN,	  /* in a token value */
	CS_EXT_QUOTED,	  /* in a quoted-string value */
	CS_EXT_QUOTED_BS, /* after a backslash in a quoted-string */
	CS_EXT_VAL_END,	  /* just after a closing quote */
	CS_EXT_VAL_WS,	  /* BWS after a value: ';' must follow */
	CS_DATA,	  /* chunk data, remaining bytes of it */
	CS_DATA_END,	  /* the CRLF that closes chunk data */
	CS_TRAILER0,	  /* start of a trailer line or the final CRLF */
	CS_TRAILER_NAME,  /* in a trailer field name */
	CS_TRAILER_VALUE, /* after the colon of a trailer field */
	CS_DONE,
	CS_ERROR
};

/* A chunk is at most 2^60 - 1 bytes: 15 significant hex digits. */
#define CHUNK_SIZE_BITS 60

static int
hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* What quoted-pair may escape; qdtext is the same less '"' and '\\'. */
static int
is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || (ch >= 0x21 && ch != 0x7f);
}

static int
fail(struct http_chunked *c, const char *reason)
{
	c->state = CS_ERROR;
	c->reason = reason;
	return -1;
}

void
http_chunked_init(struct http_chunked *c)
{
	c->state = CS_SIZE;
	c->remaining = 0;
	c->linelen = 0;
	c->trailer = 0;
	c->seen_digit = 0;
	c->cr = 0;
	c->reason = NULL;
}

/* Where a CRLF may close the chunk-size line. */
static int
size_line_may_end(const struct http_chunked *c)
{
	switch (c->state) {
	case CS_SIZE:
		return c->seen_digit;
	case CS_EXT_NAME:
	case CS_EXT_TOKEN:
	case CS_EXT_VAL_END:
		return 1;
	}
	return 0;
}

static int
in_size_line(const struct http_chunked *c)
{
	return c->state >= CS_SIZE && c->state <= CS_EXT_VAL_WS;
}

static int
size_digit(struct http_chunked *c, unsigned char ch)
{
	int d;

	if ((d = hex_value(ch)) < 0)
		return fail(c,
		    c->seen_digit ? "bad character after chunk size"
				  : "chunk size not hexadecimal");
	if (c->remaining >> (CHUNK_SIZE_BITS - 4) != 0)
		return fail(c, "chunk size too large");
	c->remaining = c->remaining << 4 | (uint64_t)d;
	c->seen_digit = 1;
	return 0;
}

static int
size_byte(struct http_chunked *c, unsigned char ch)
{
	if (c->seen_digit && ch == ';')
		c->state = CS_EXT_NAME0;
	else if (c->seen_digit && http_is_ws(ch))
		c->state = CS_SIZE_WS;
	else
		return size_digit(c, ch);
	return 0;
}

/* The extension grammar: BWS ";" BWS name [ BWS "=" BWS value ]. */
static int
ext_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CS_SIZE_WS:
		if (ch == ';')
			c->state = CS_EXT_NAME0;
		else if (!http_is_ws(ch))
			return fail(c, "whitespace in chunk size line");
		return 0;
	case CS_EXT_NAME0:
		if (http_is_tchar(ch))
			c->state = CS_EXT_NAME;
		else if (!http_is_ws(ch))
			return fail(c, "bad chunk extension name");
		return 0;
	case CS_EXT_NAME:
	case CS_EXT_NAME_WS:
		if (ch == ';')
			c->state = CS_EXT_NAME0;
		else if (ch == '=')
			c->state = CS_EXT_VAL0;
		else if (http_is_ws(ch))
			c->state = CS_EXT_NAME_WS;
		else if (c->state != CS_EXT_NAME || !http_is_tchar(ch))
			return fail(c, "bad chunk extension name");
		return 0;
	}
	return fail(c, "chunked state lost");
}

static int
ext_value_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CS_EXT_VAL0:
		if (ch == '"')
			c->state = CS_EXT_QUOTED;
		else if (http_is_tchar(ch))
			c->state = CS_EXT_TOKEN;
		else if (!http_is_ws(ch))
			return fail(c, "bad chunk extension value");
		return 0;
	case CS_EXT_TOKEN:
	case CS_EXT_VAL_END:
		if (ch == ';')
			c->state = CS_EXT_NAME0;
		else if (http_is_ws(ch))
			c->state = CS_EXT_VAL_WS;
		else if (c->state != CS_EXT_TOKEN || !http_is_tchar(ch))
			return fail(c, "bad chunk extension value");
		return 0;
	case CS_EXT_QUOTED:
		if (ch == '"')
			c->state = CS_EXT_VAL_END;
		else if (ch == '\\')
			c->state = CS_EXT_QUOTED_BS;
		else if (!is_qdtext(ch))
			return fail(c, "bad chunk extension value");
		return 0;
	case CS_EXT_QUOTED_BS:
		if (!is_qdtext(ch))
			return fail(c, "bad chunk extension value");
		c->state = CS_EXT_QUOTED;
		return 0;
	case CS_EXT_VAL_WS:
		if (ch == ';')
			c->state = CS_EXT_NAME0;
		else if (!http_is_ws(ch))
			return fail(c, "whitespace in chunk size line");
		return 0;
	}
	return fail(c, "chunked state lost");
}

static int
trailer_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CS_TRAILER0:
		if (http_is_ws(ch))
			return fail(c, "obs-fold in trailer");
		if (!http_is_tchar(ch))
			return fail(c, "bad trailer field name");
		c->state = CS_TRAILER_NAME;
		return 0;
	case CS_TRAILER_NAME:
		if (ch == ':')
			c->state = CS_TRAILER_VALUE;
		else if (!http_is_tchar(ch))
			return fail(c, "bad trailer field name");
		return 0;
	case CS_TRAILER_VALUE:
		if (ch == '\0')
			return fail(c, "NUL in trailer");
		return 0;
	}
	return fail(c, "chunked state lost");
}

/* The LF of a CRLF: what the line it ends leads to. */
static int
line_end(struct http_chunked *c)
{
	if (in_size_line(c)) {
		if (c->state == CS_SIZE && !c->seen_digit)
			return fail(c, "empty chunk size");
		if (!size_line_may_end(c))
			return fail(c, "chunk size line ends early");
		c->state = c->remaining > 0 ? CS_DATA : CS_TRAILER0;
		return 0;
	}
	switch (c->state) {
	case CS_DATA_END:
		c->state = CS_SIZE;
		c->remaining = 0;
		c->linelen = 0;
		c->seen_digit = 0;
		return 0;
	case CS_TRAILER0:
		c->state = CS_DONE;
		return 0;
	case CS_TRAILER_VALUE:
		c->state = CS_TRAILER0;
		return 0;
	}
	return fail(c, "trailer field without colon");
}

/* Bytes that are counted against the line and trailer limits. */
static int
count_byte(struct http_chunked *c, unsigned char ch)
{
	if (c->state >= CS_TRAILER0 && c->state <= CS_TRAILER_VALUE) {
		if (++c->trailer > HTTP_TRAILER_MAX)
			return fail(c, "trailer section too long");
	} else if (in_size_line(c) && ch != '\r' && ch != '\n') {
		if (++c->linelen > HTTP_CHUNK_LINE_MAX)
			return fail(c, "chunk size line too long");
	}
	return 0;
}

/* One byte of framing: 0, or -1 with the reason set. */
static int
frame_byte(struct http_chunked *c, unsigned char ch)
{
	if (count_byte(c, ch) == -1)
		return -1;
	if (c->cr) {
		c->cr = 0;
		if (ch != '\n')
			return fail(c, "CR not followed by LF");
		return line_end(c);
	}
	if (ch == '\n')
		return fail(c, "bare LF");
	if (ch == '\r') {
		c->cr = 1;
		return 0;
	}
	if (c->state == CS_DATA_END)
		return fail(c, "chunk data not followed by CRLF");
	if (c->state == CS_SIZE)
		return size_byte(c, ch);
	/* the states are declared in the order the grammar meets them */
	if (c->state <= CS_EXT_NAME_WS)
		return ext_byte(c, ch);
	if (c->state <= CS_EXT_VAL_WS)
		return ext_value_byte(c, ch);
	return trailer_byte(c, ch);
}

/*
 * Framing is consumed until a data span begins, the body ends or the
 * input runs out; a data span is returned alone, so a caller can pass
 * it on before asking for more.
 */
enum http_chunk_status
http_chunked_step(struct http_chunked *c, const char *in, size_t len,
    size_t *used)
{
	size_t i;

	*used = 0;
	if (c->state == CS_ERROR)
		return HTTP_CHUNK_ERROR;
	if (c->state == CS_DONE)
		return HTTP_CHUNK_DONE;
	if (len == 0)
		return HTTP_CHUNK_MORE;
	if (c->state == CS_DATA) {
		*used = c->remaining < len ? (size_t)c->remaining : len;
		c->remaining -= *used;
		if (c->remaining == 0)
			c->state = CS_DATA_END;
		return HTTP_CHUNK_DATA;
	}
	for (i = 0; i < len; i++) {
		if (frame_byte(c, (unsigned char)in[i]) == -1) {
			*used = i;
			return HTTP_CHUNK_ERROR;
		}
		if (c->state == CS_DATA || c->state == CS_DONE)
			break;
	}
	*used = i < len ? i + 1 : len;
	return c->state == CS_DONE ? HTTP_CHUNK_DONE : HTTP_CHUNK_MORE;
}

/* No NUL is written: the header goes straight into an output buffer. */
size_t
http_chunk_header(char *out, size_t outsz, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 1, i;
	uint64_t v;

	for (v = len; v >= 16; v >>= 4)
		n++;
	if (outsz < n + 2)
		return 0;
	for (i = n, v = len; i > 0; i--, v >>= 4)
		out[i - 1] = digits[v & 0xf];
	out[n] = '\r';
	out[n + 1] = '\n';
	return n + 2;
}
