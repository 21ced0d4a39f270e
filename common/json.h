/*
 * JSON string escaping for audit records.  Every byte of untrusted input
 * (user names above all) comes out as valid JSON text on one line: quotes,
 * backslashes and control bytes are escaped and invalid UTF-8 becomes
 * U+FFFD, so no user name can end a record or forge another.
 */
#ifndef POSTERN_JSON_H
#define POSTERN_JSON_H

#include <stddef.h>

/* Appends the escaped string with its quotes; returns -1 if dst is full. */
int json_append_string(char *dst, size_t dstsz, size_t *off, const char *src,
    size_t srclen);
int json_append_raw(char *dst, size_t dstsz, size_t *off, const char *);

#endif
