/*
 * The pre-auth IMAP command parser (RFC 9051 / RFC 3501 syntax, with
 * RFC 7888 LITERAL+).  It is a pure function of the bytes buffered so
 * far: the caller re-runs it as input arrives, which keeps it stateless
 * apart from the count of synchronising literals already acknowledged,
 * and makes every split of the input behave alike.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "authproc.h"

struct cursor {
	const char *in;
	size_t len;
	size_t pos;
	size_t line_start; /* where the current segment began */
};

ssize_t
line_find(const char *in, size_t len, size_t *consumed)
{
	const char *lf;
	size_t n;

	if ((lf = memchr(in, '\n', len)) == NULL)
		return -1;
	n = lf - in;
	*consumed = n + 1;
	if (n > 0 && in[n - 1] == '\r')
		n--;
	return (ssize_t)n;
}

static int
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("(){%*\"\\", c) == NULL;
}

static int
is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+';
}

/*
 * Size of a non-synchronising literal ({n+}) announced at the end of a
 * line, or -1.  A client sends such a literal without waiting for us, so
 * a BAD must skip it too; a synchronising one is never sent after a BAD.
 */
static long long
trailing_nonsync_literal(const char *line, size_t len)
{
	long long n = 0, mul = 1;
	size_t i;

	if (len < 4 || line[len - 1] != '}' || line[len - 2] != '+')
		return -1;
	for (i = len - 3; i > 0 && line[i] >= '0' && line[i] <= '9'; i--) {
		if (mul > 1000000000LL)
			return -1;
		n += (line[i] - '0') * mul;
		mul *= 10;
	}
	if (line[i] != '{' || i == len - 3)
		return -1;
	return n;
}

/*
 * Skip to the end of the command for a BAD reply: the end of the line,
 * and past any non-synchronising literal the line announces, so none of
 * a literal's bytes is ever read as a command of its own.
 */
static enum imap_parse_status
bad_line(struct cursor *c, struct imap_command *cmd)
{
	size_t consumed, pos = c->pos;
	ssize_t n;
	long long lit;

	for (;;) {
		if ((n = line_find(c->in + pos, c->len - pos, &consumed)) == -1)
			return IMAP_PARSE_INCOMPLETE;
		lit = trailing_nonsync_literal(c->in + pos, n);
		pos += consumed;
		if (lit < 0)
			break;
		if ((unsigned long long)lit > PIPELINE_MAX)
			return IMAP_PARSE_TOO_LONG;
		if (c->len - pos < (size_t)lit)
			return IMAP_PARSE_INCOMPLETE;
		pos += lit;
	}
	cmd->consumed = pos;
	return IMAP_PARSE_BAD;
}

static int
buf_append(struct imap_command *cmd, const char *p, size_t n)
{
	if (cmd->buflen + n + 1 > sizeof(cmd->buf))
		return -1;
	memcpy(cmd->buf + cmd->buflen, p, n);
	cmd->buflen += n;
	return 0;
}

static int
token_begin(struct imap_command *cmd, enum imap_token_type type)
{
	if (cmd->ntok >= IMAP_MAX_TOKENS)
		return -1;
	cmd->tok[cmd->ntok].type = type;
	cmd->tok[cmd->ntok].off = cmd->buflen;
	cmd->tok[cmd->ntok].len = 0;
	return 0;
}

static int
token_end(struct imap_command *cmd)
{
	struct imap_token *t = &cmd->tok[cmd->ntok];

	t->len = cmd->buflen - t->off;
	if (cmd->buflen + 1 > sizeof(cmd->buf))
		return -1;
	cmd->buf[cmd->buflen++] = '\0';
	cmd->ntok++;
	return 0;
}

/* Has the current line segment (text outside literals) grown too long? */
static int
segment_too_long(const struct cursor *c, const struct imap_limits *lim)
{
	return c->pos - c->line_start > lim->max_line;
}

static enum imap_parse_status
parse_quoted(struct cursor *c, struct imap_command *cmd,
    const struct imap_limits *lim)
{
	unsigned char ch;

	if (token_begin(cmd, IMAP_TOK_QUOTED) == -1)
		return IMAP_PARSE_TOO_LONG;
	c->pos++; /* opening quote */
	for (;;) {
		if (segment_too_long(c, lim))
			return IMAP_PARSE_TOO_LONG;
		if (c->pos >= c->len)
			return IMAP_PARSE_INCOMPLETE;
		ch = c->in[c->pos];
		if (ch == '"') {
			c->pos++;
			break;
		}
		if (ch == '\r' || ch == '\n' || ch == '\0')
			return bad_line(c, cmd);
		if (ch == '\\') {
			if (c->pos + 1 >= c->len)
				return IMAP_PARSE_INCOMPLETE;
			ch = c->in[c->pos + 1];
			if (ch != '"' && ch != '\\')
				return bad_line(c, cmd);
			c->pos++;
		}
		if (buf_append(cmd, (const char *)&ch, 1) == -1)
			return IMAP_PARSE_TOO_LONG;
		c->pos++;
	}
	if (token_end(cmd) == -1)
		return IMAP_PARSE_TOO_LONG;
	return IMAP_PARSE_OK;
}

static enum imap_parse_status
parse_literal(struct cursor *c, struct imap_command *cmd, unsigned int acked,
    const struct imap_limits *lim)
{
	uint64_t n = 0; /* ten digits overflow a 32-bit size_t */
	size_t digits = 0;
	int nonsync = 0;
	unsigned char ch;

	c->pos++; /* '{' */
	for (;;) {
		if (c->pos >= c->len)
			return IMAP_PARSE_INCOMPLETE;
		ch = c->in[c->pos];
		if (!isdigit(ch))
			break;
		if (++digits > 10)
			return IMAP_PARSE_TOO_LONG;
		n = n * 10 + (ch - '0');
		c->pos++;
	}
	if (ch == '+') {
		nonsync = 1;
		if (++c->pos >= c->len)
			return IMAP_PARSE_INCOMPLETE;
		ch = c->in[c->pos];
	}
	if (ch != '}' || digits == 0)
		return bad_line(c, cmd);
	c->pos++;
	/* the literal's size must be followed directly by CRLF */
	if (c->pos >= c->len)
		return IMAP_PARSE_INCOMPLETE;
	if (c->in[c->pos] == '\r') {
		if (++c->pos >= c->len)
			return IMAP_PARSE_INCOMPLETE;
	}
	if (c->in[c->pos] != '\n')
		return bad_line(c, cmd);
	c->pos++;
	if (n > lim->max_literal)
		return IMAP_PARSE_TOO_LONG;
	if (!nonsync) {
		if (cmd->nsync >= acked) {
			cmd->nsync++;
			return IMAP_PARSE_CONTINUE;
		}
		cmd->nsync++;
	}
	if (c->len - c->pos < n)
		return IMAP_PARSE_INCOMPLETE;
	if (memchr(c->in + c->pos, '\0', n) != NULL) {
		/* a NUL in a literal is never valid here: reject the command */
		c->pos += n;
		return bad_line(c, cmd);
	}
	if (token_begin(cmd, IMAP_TOK_LITERAL) == -1 ||
	    buf_append(cmd, c->in + c->pos, n) == -1 || token_end(cmd) == -1)
		return IMAP_PARSE_TOO_LONG;
	c->pos += n;
	c->line_start = c->pos;
	return IMAP_PARSE_OK;
}

static enum imap_parse_status
parse_atom(struct cursor *c, struct imap_command *cmd,
    const struct imap_limits *lim)
{
	size_t start = c->pos;

	while (c->pos < c->len &&
	    (is_atom_char(c->in[c->pos]) || c->in[c->pos] == ']'))
		c->pos++;
	if (segment_too_long(c, lim))
		return IMAP_PARSE_TOO_LONG;
	if (c->pos >= c->len)
		return IMAP_PARSE_INCOMPLETE;
	if (c->pos == start)
		return bad_line(c, cmd);
	if (token_begin(cmd, IMAP_TOK_ATOM) == -1 ||
	    buf_append(cmd, c->in + start, c->pos - start) == -1 ||
	    token_end(cmd) == -1)
		return IMAP_PARSE_TOO_LONG;
	return IMAP_PARSE_OK;
}

static enum imap_parse_status
parse_simple_token(struct cursor *c, struct imap_command *cmd,
    enum imap_token_type type)
{
	if (token_begin(cmd, type) == -1 || token_end(cmd) == -1)
		return IMAP_PARSE_TOO_LONG;
	c->pos++;
	return IMAP_PARSE_OK;
}

/* tag SP command: both are atoms of a restricted alphabet */
static enum imap_parse_status
parse_head(struct cursor *c, struct imap_command *cmd,
    const struct imap_limits *lim)
{
	size_t start = c->pos, n, i;

	while (c->pos < c->len && is_tag_char(c->in[c->pos]))
		c->pos++;
	if (segment_too_long(c, lim))
		return IMAP_PARSE_TOO_LONG;
	if (c->pos >= c->len)
		return IMAP_PARSE_INCOMPLETE;
	n = c->pos - start;
	if (n == 0 || n > TAG_MAX_LEN || c->in[c->pos] != ' ')
		return bad_line(c, cmd);
	memcpy(cmd->tag, c->in + start, n);
	cmd->tag[n] = '\0';
	start = ++c->pos;
	while (c->pos < c->len && isalnum((unsigned char)c->in[c->pos]))
		c->pos++;
	if (segment_too_long(c, lim))
		return IMAP_PARSE_TOO_LONG;
	if (c->pos >= c->len)
		return IMAP_PARSE_INCOMPLETE;
	n = c->pos - start;
	if (n == 0 || n >= sizeof(cmd->name))
		return bad_line(c, cmd);
	for (i = 0; i < n; i++)
		cmd->name[i] = toupper((unsigned char)c->in[start + i]);
	cmd->name[n] = '\0';
	return IMAP_PARSE_OK;
}

enum imap_parse_status
imap_parse(const char *in, size_t len, unsigned int acked,
    const struct imap_limits *lim, struct imap_command *cmd)
{
	struct cursor c = {in, len, 0, 0};
	enum imap_parse_status st;
	int need_space = 1, depth = 0, unbalanced = 0;
	unsigned char ch;

	cmd->tag[0] = '\0';
	cmd->name[0] = '\0';
	cmd->ntok = 0;
	cmd->buflen = 0;
	cmd->consumed = 0;
	cmd->nsync = 0;

	if ((st = parse_head(&c, cmd, lim)) != IMAP_PARSE_OK)
		return st;
	for (;;) {
		if (segment_too_long(&c, lim))
			return IMAP_PARSE_TOO_LONG;
		if (c.pos >= c.len)
			return IMAP_PARSE_INCOMPLETE;
		ch = in[c.pos];
		if (ch == '\r' || ch == '\n') {
			if (ch == '\r') {
				if (c.pos + 1 >= c.len)
					return IMAP_PARSE_INCOMPLETE;
				if (in[c.pos + 1] != '\n')
					return bad_line(&c, cmd);
				c.pos++;
			}
			c.pos++;
			if (depth != 0 || unbalanced) {
				cmd->consumed = c.pos;
				return IMAP_PARSE_BAD;
			}
			cmd->consumed = c.pos;
			return IMAP_PARSE_OK;
		}
		if (ch == ' ') {
			if (!need_space)
				return bad_line(&c, cmd);
			need_space = 0;
			c.pos++;
			continue;
		}
		if (need_space && ch != ')')
			return bad_line(&c, cmd);
		switch (ch) {
		case '"':
			st = parse_quoted(&c, cmd, lim);
			break;
		case '{':
			/* a command already known bad asks for no literal */
			if (unbalanced)
				return bad_line(&c, cmd);
			st = parse_literal(&c, cmd, acked, lim);
			break;
		case '(':
			/*
			 * Nesting is never valid before login, but the rest of
			 * the command is still read, literals and all, so the
			 * BAD covers exactly this command and no literal's
			 * bytes are taken for the next one.
			 */
			if (++depth > 1)
				unbalanced = 1;
			st = parse_simple_token(&c, cmd, IMAP_TOK_LPAREN);
			if (st == IMAP_PARSE_OK) {
				/* no space is needed after "(" */
				continue;
			}
			break;
		case ')':
			if (--depth < 0) {
				unbalanced = 1;
				depth = 0;
			}
			st = parse_simple_token(&c, cmd, IMAP_TOK_RPAREN);
			break;
		default:
			st = parse_atom(&c, cmd, lim);
			break;
		}
		if (st != IMAP_PARSE_OK)
			return st;
		need_space = 1;
	}
}

const char *
imap_token_str(const struct imap_command *cmd, size_t i)
{
	return cmd->buf + cmd->tok[i].off;
}

/* An astring: atom, quoted or literal. */
int
imap_token_is_string(const struct imap_command *cmd, size_t i)
{
	return i < cmd->ntok &&
	    (cmd->tok[i].type == IMAP_TOK_ATOM ||
		cmd->tok[i].type == IMAP_TOK_QUOTED ||
		cmd->tok[i].type == IMAP_TOK_LITERAL);
}
