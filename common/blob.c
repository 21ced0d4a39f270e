/*
 * Files (certificates, keys, CA bundles) arrive from the parent in
 * chunks; they must arrive in order and add up to the announced size.
 */
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* Returns 1 when the blob is complete, 0 when more is due, -1 on error. */
int
blob_store(unsigned char **buf, size_t *len, size_t *got,
    const struct conf_blob *b, const unsigned char *data)
{
	if (b->offset == 0) {
		if (*buf != NULL) {
			explicit_bzero(*buf, *len);
			free(*buf);
		}
		if ((*buf = malloc(b->total + 1)) == NULL)
			return -1;
		*len = b->total;
		*got = 0;
	}
	if (*buf == NULL || b->total != *len || b->offset != *got)
		return -1;
	memcpy(*buf + *got, data, b->len);
	*got += b->len;
	(*buf)[*got] = '\0';
	return *got == *len;
}
