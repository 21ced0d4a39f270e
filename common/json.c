#include <stdio.h>
#include <string.h>

#include "json.h"

int
json_append_raw(char *dst, size_t dstsz, size_t *off, const char *s)
{
	size_t n = strlen(s);

	if (*off + n + 1 > dstsz)
		return -1;
	memcpy(dst + *off, s, n);
	*off += n;
	dst[*off] = '\0';
	return 0;
}

/* Length of the valid UTF-8 sequence at s, or 0 if it is not valid. */
static size_t
utf8_valid(const unsigned char *s, size_t len)
{
	unsigned int cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and code points beyond Unicode */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

int
json_append_string(char *dst, size_t dstsz, size_t *off, const char *src,
    size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	char esc[8];
	size_t i = 0, n;
	const char *rep;

	if (json_append_raw(dst, dstsz, off, "\"") == -1)
		return -1;
	while (i < srclen) {
		rep = NULL;
		n = 1;
		switch (s[i]) {
		case '"':
			rep = "\\\"";
			break;
		case '\\':
			rep = "\\\\";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\t':
			rep = "\\t";
			break;
		default:
			if (s[i] < 0x20 || s[i] == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
				rep = esc;
			} else if ((n = utf8_valid(s + i, srclen - i)) == 0) {
				rep = "\\ufffd";
				n = 1;
			}
		}
		if (rep != NULL) {
			if (json_append_raw(dst, dstsz, off, rep) == -1)
				return -1;
		} else {
			if (*off + n + 1 > dstsz)
				return -1;
			memcpy(dst + *off, s + i, n);
			*off += n;
			dst[*off] = '\0';
		}
		i += n;
	}
	return json_append_raw(dst, dstsz, off, "\"");
}
