/*
 * The pre-auth POP3 command parser (RFC 1939, RFC 2449, RFC 5034).
 * A command is a keyword and the rest of the line; the rest is kept
 * whole because a password may contain spaces.
 */
#include <ctype.h>
#include <string.h>
#include <sys/types.h>

#include "authproc.h"

enum pop3_parse_status
pop3_parse(const char *in, size_t len, size_t max_line,
    struct pop3_command *cmd)
{
	ssize_t n;
	size_t consumed, i, kw;

	memset(cmd->name, 0, sizeof(cmd->name));
	cmd->arg[0] = '\0';
	cmd->hasarg = 0;
	cmd->consumed = 0;

	if ((n = line_find(in, len, &consumed)) == -1) {
		/*
		 * A trailing CR may be the first half of the line's CRLF:
		 * do not count it, or a line of exactly max_line bytes
		 * would be refused only when its LF arrives separately.
		 */
		if (len > 0 && in[len - 1] == '\r')
			len--;
		return len > max_line ? POP3_PARSE_TOO_LONG
				      : POP3_PARSE_INCOMPLETE;
	}
	if ((size_t)n > max_line)
		return POP3_PARSE_TOO_LONG;
	cmd->consumed = consumed;
	if (memchr(in, '\0', n) != NULL || memchr(in, '\r', n) != NULL)
		return POP3_PARSE_BAD;
	for (kw = 0; kw < (size_t)n && in[kw] != ' '; kw++)
		if (!isalpha((unsigned char)in[kw]))
			return POP3_PARSE_BAD;
	if (kw == 0 || kw >= sizeof(cmd->name))
		return POP3_PARSE_BAD;
	for (i = 0; i < kw; i++)
		cmd->name[i] = toupper((unsigned char)in[i]);
	if (kw < (size_t)n) {
		/* exactly one space separates keyword and argument */
		if ((size_t)n - kw - 1 > POP3_MAX_ARG)
			return POP3_PARSE_BAD;
		memcpy(cmd->arg, in + kw + 1, n - kw - 1);
		cmd->arg[n - kw - 1] = '\0';
		cmd->hasarg = 1;
	}
	return POP3_PARSE_OK;
}
