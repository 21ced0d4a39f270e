/*
 * tlsproc: the only process that holds private keys.  It terminates TLS
 * for implicit-TLS listeners and for STARTTLS/STLS upgrades, and moves
 * plaintext to and from authproc/relay over socketpairs.
 */
#ifndef POSTERN_TLSPROC_H
#define POSTERN_TLSPROC_H

#include <sys/queue.h>

#include <tls.h>

#include "proto.h"

struct tls_keypair {
	TAILQ_ENTRY(tls_keypair) entry;
	struct conf_keypair conf;
	unsigned char *blob[BLOB_CA + 1];
	size_t bloblen[BLOB_CA + 1];
	size_t blobgot[BLOB_CA + 1];
};
TAILQ_HEAD(tls_keypair_list, tls_keypair);

void tlsproc_main(void) __attribute__((noreturn));

/* sni.c: build a server context whose SNI choice is exact, wildcard,
 * then the first (default) keypair. */
int tls_keypair_is_wildcard(const struct tls_keypair *);
struct tls *tls_server_context(const struct conf_tls_global *,
    struct tls_keypair **, size_t, char *err, size_t errlen);

#endif
