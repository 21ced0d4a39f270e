/*
 * Server contexts and certificate choice by SNI.  libtls's SNI callback
 * looks only at the keypairs added after the first one, takes the first
 * whose certificate matches the name the client sent (wildcards
 * included), and falls back to the first keypair.  So the order we add
 * them in decides: the listener's default goes first (libtls's
 * fallback), then every exactly named keypair -- the default again if it
 * is one, so that it too beats a wildcard -- then the wildcard ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tlsproc.h"

int
tls_keypair_is_wildcard(const struct tls_keypair *k)
{
	return strncmp(k->conf.name, "*.", 2) == 0;
}

static int
add_keypair(struct tls_config *cfg, const struct tls_keypair *k, int first)
{
	const unsigned char *ocsp = k->blob[BLOB_OCSP];
	size_t ocsplen = k->bloblen[BLOB_OCSP];

	if (first)
		return tls_config_set_keypair_ocsp_mem(cfg, k->blob[BLOB_CERT],
		    k->bloblen[BLOB_CERT], k->blob[BLOB_KEY],
		    k->bloblen[BLOB_KEY], ocsp, ocsplen);
	return tls_config_add_keypair_ocsp_mem(cfg, k->blob[BLOB_CERT],
	    k->bloblen[BLOB_CERT], k->blob[BLOB_KEY], k->bloblen[BLOB_KEY],
	    ocsp, ocsplen);
}

struct tls *
tls_server_context(const struct conf_tls_global *g, struct tls_keypair **kp,
    size_t nkp, char *err, size_t errlen)
{
	struct tls_config *cfg;
	struct tls *ctx = NULL;
	unsigned char sid[TLS_MAX_SESSION_ID_LENGTH];
	size_t i;
	int pass;

	if (nkp == 0) {
		snprintf(err, errlen, "no keypair");
		return NULL;
	}
	if ((cfg = tls_config_new()) == NULL) {
		snprintf(err, errlen, "tls_config_new failed");
		return NULL;
	}
	if (tls_config_set_protocols(cfg, g->protocols) == -1 ||
	    tls_config_set_ciphers(cfg, g->ciphers) == -1) {
		snprintf(err, errlen, "%s", tls_config_error(cfg));
		goto fail;
	}
	if (add_keypair(cfg, kp[0], 1) == -1) {
		snprintf(err, errlen, "keypair %s: %s", kp[0]->conf.name,
		    tls_config_error(cfg));
		goto fail;
	}
	/* exact names first, then wildcards: libtls takes the first match */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < nkp; i++) {
			if (tls_keypair_is_wildcard(kp[i]) != pass ||
			    (i == 0 && pass == 1))
				continue;
			if (add_keypair(cfg, kp[i], 0) == -1) {
				snprintf(err, errlen, "keypair %s: %s",
				    kp[i]->conf.name, tls_config_error(cfg));
				goto fail;
			}
		}
	}
	if (g->session_lifetime > 0) {
		/*
		 * No fixed ticket key: one added by hand turns off libtls's
		 * automatic rekeying, and once it is older than the lifetime
		 * every handshake fails.  libtls makes and rotates its own.
		 */
		arc4random_buf(sid, sizeof(sid));
		if (tls_config_set_session_id(cfg, sid, sizeof(sid)) == -1 ||
		    tls_config_set_session_lifetime(cfg, g->session_lifetime) ==
			-1) {
			snprintf(err, errlen, "%s", tls_config_error(cfg));
			goto fail;
		}
	}
	if ((ctx = tls_server()) == NULL) {
		snprintf(err, errlen, "tls_server failed");
		goto fail;
	}
	if (tls_configure(ctx, cfg) == -1) {
		snprintf(err, errlen, "%s", tls_error(ctx));
		tls_free(ctx);
		ctx = NULL;
		goto fail;
	}
fail:
	/*
	 * The contexts hold the parsed keys; the PEM copies in the
	 * configuration (which libtls keeps alive with the context) go.
	 */
	tls_config_clear_keys(cfg);
	tls_config_free(cfg);
	return ctx;
}
