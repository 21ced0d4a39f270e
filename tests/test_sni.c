/*
 * Certificate choice by SNI, tested for real: the group setup makes
 * self-signed EC certificates with the openssl command, every case builds
 * a server context with tls_server_context() and runs libtls handshakes
 * over a socketpair, and the client reports which certificate it got.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "tlsproc.h"

enum { KP_ORG, KP_NET, KP_WILD, KP_COM, KP_COUNT };

static const char *const names[KP_COUNT] = {
    "mail.example.org", /* the default */
    "mail.example.net",
    "*.example.com",
    "mail.example.com",
};

#define SUBJECT_ORG  "/CN=mail.example.org"
#define SUBJECT_NET  "/CN=mail.example.net"
#define SUBJECT_WILD "/CN=*.example.com"
#define SUBJECT_COM  "/CN=mail.example.com"

#define HANDSHAKE_ROUNDS  200
#define HANDSHAKE_POLL_MS 2000

struct fixture {
	char dir[64];
	struct tls_keypair kp[KP_COUNT];
};

static void
kp_path(char *buf, size_t len, const char *dir, int i, const char *ext)
{
	int n;

	n = snprintf(buf, len, "%s/%d.%s", dir, i, ext);
	assert_true(n > 0 && (size_t)n < len);
}

static void
read_file(const char *path, unsigned char **buf, size_t *len)
{
	FILE *fp;
	unsigned char *p = NULL, *np;
	size_t n = 0, cap = 0, got;

	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("open %s", path);
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((np = realloc(p, cap)) == NULL)
				fail_msg("realloc");
			p = np;
		}
		if ((got = fread(p + n, 1, cap - n, fp)) == 0)
			break;
		n += got;
	}
	assert_int_equal(ferror(fp), 0);
	fclose(fp);
	assert_true(n > 0);
	*buf = p;
	*len = n;
}

static int
setup_group(void **state)
{
	struct fixture *f;
	struct tls_keypair *k;
	char cmd[1024], key[128], crt[128];
	int i, n;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sni.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	if (tls_init() == -1)
		return -1;
	for (i = 0; i < KP_COUNT; i++) {
		k = &f->kp[i];
		kp_path(key, sizeof(key), f->dir, i, "key");
		kp_path(crt, sizeof(crt), f->dir, i, "crt");
		n = snprintf(cmd, sizeof(cmd),
		    "openssl req -x509 -newkey ec "
		    "-pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		    "-subj '/CN=%s' -addext 'subjectAltName=DNS:%s' "
		    "-keyout '%s' -out '%s' >/dev/null 2>&1",
		    names[i], names[i], key, crt);
		if (n < 0 || (size_t)n >= sizeof(cmd))
			return -1;
		if (system(cmd) != 0) {
			fprintf(stderr, "failed: %s\n", cmd);
			return -1;
		}
		k->conf.id = i + 1;
		snprintf(k->conf.name, sizeof(k->conf.name), "%s", names[i]);
		read_file(crt, &k->blob[BLOB_CERT], &k->bloblen[BLOB_CERT]);
		read_file(key, &k->blob[BLOB_KEY], &k->bloblen[BLOB_KEY]);
		k->blobgot[BLOB_CERT] = k->bloblen[BLOB_CERT];
		k->blobgot[BLOB_KEY] = k->bloblen[BLOB_KEY];
	}
	return 0;
}

static int
teardown_group(void **state)
{
	struct fixture *f = *state;
	char path[128];
	int i, j;

	if (f == NULL)
		return 0;
	for (i = 0; i < KP_COUNT; i++) {
		for (j = 0; j <= BLOB_CA; j++) {
			if (f->kp[i].blob[j] == NULL)
				continue;
			explicit_bzero(f->kp[i].blob[j], f->kp[i].bloblen[j]);
			free(f->kp[i].blob[j]);
		}
		kp_path(path, sizeof(path), f->dir, i, "key");
		unlink(path);
		kp_path(path, sizeof(path), f->dir, i, "crt");
		unlink(path);
	}
	if (rmdir(f->dir) == -1)
		fprintf(stderr, "rmdir %s failed\n", f->dir);
	free(f);
	return 0;
}

static void
global_conf(struct conf_tls_global *g)
{
	memset(g, 0, sizeof(*g));
	g->protocols = TLS_PROTOCOLS_DEFAULT;
	g->session_lifetime = 0;
	g->timeout_handshake = 10;
	snprintf(g->ciphers, sizeof(g->ciphers), "secure");
}

static struct tls *
server(struct tls_keypair **kp, size_t nkp)
{
	struct conf_tls_global g;
	struct tls *ctx;
	char err[256];

	global_conf(&g);
	err[0] = '\0';
	if ((ctx = tls_server_context(&g, kp, nkp, err, sizeof(err))) == NULL)
		fail_msg("tls_server_context: %s", err);
	return ctx;
}

static short
want_events(int rc)
{
	if (rc == TLS_WANT_POLLIN)
		return POLLIN;
	if (rc == TLS_WANT_POLLOUT)
		return POLLOUT;
	return 0;
}

/*
 * One handshake against srv, sending servername (NULL: no SNI).  The
 * subject of the certificate the client got goes into subject; the server
 * must have seen exactly the name sent.
 */
static void
handshake(struct tls *srv, const char *servername, char *subject, size_t len)
{
	struct tls_config *ccfg;
	struct tls *client, *conn = NULL;
	struct pollfd pfd[2];
	const char *s;
	int sv[2], crc = -2, src = -2, round, n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
			     sv),
	    0);
	if (tls_accept_socket(srv, &conn, sv[1]) == -1)
		fail_msg("tls_accept_socket: %s", tls_error(srv));

	assert_non_null(ccfg = tls_config_new());
	tls_config_insecure_noverifycert(ccfg);
	tls_config_insecure_noverifyname(ccfg);
	assert_non_null(client = tls_client());
	if (tls_configure(client, ccfg) == -1)
		fail_msg("client tls_configure: %s", tls_error(client));
	tls_config_free(ccfg);
	if (tls_connect_socket(client, sv[0], servername) == -1)
		fail_msg("tls_connect_socket: %s", tls_error(client));

	for (round = 0; round < HANDSHAKE_ROUNDS; round++) {
		if (crc != 0 && (crc = tls_handshake(client)) == -1)
			fail_msg("client handshake (%s): %s",
			    servername ? servername : "no SNI",
			    tls_error(client));
		if (src != 0 && (src = tls_handshake(conn)) == -1)
			fail_msg("server handshake (%s): %s",
			    servername ? servername : "no SNI",
			    tls_error(conn));
		if (crc == 0 && src == 0)
			break;
		/* wait for whichever side is blocked to be able to go on */
		pfd[0].fd = sv[0];
		pfd[0].events = want_events(crc);
		pfd[1].fd = sv[1];
		pfd[1].events = want_events(src);
		n = poll(pfd, 2, HANDSHAKE_POLL_MS);
		if (n == 0)
			fail_msg("handshake stalled: client %d server %d", crc,
			    src);
		assert_true(n > 0);
	}
	if (crc != 0 || src != 0)
		fail_msg("handshake did not finish in %d rounds",
		    HANDSHAKE_ROUNDS);

	if (servername == NULL)
		assert_null(tls_conn_servername(conn));
	else {
		assert_non_null(tls_conn_servername(conn));
		assert_string_equal(tls_conn_servername(conn), servername);
	}
	assert_non_null(s = tls_peer_cert_subject(client));
	assert_true(strlen(s) < len);
	snprintf(subject, len, "%s", s);

	tls_free(client);
	tls_free(conn);
	close(sv[0]);
	close(sv[1]);
}

static void
assert_served(struct tls *srv, const char *servername, const char *want)
{
	char subject[256];

	handshake(srv, servername, subject, sizeof(subject));
	if (strcmp(subject, want) != 0)
		fail_msg("SNI %s: got certificate %s, want %s",
		    servername ? servername : "(none)", subject, want);
}

/* All four, the default first, in the fixture's order. */
static struct tls *
server_all(struct fixture *f)
{
	struct tls_keypair *kp[KP_COUNT];
	int i;

	for (i = 0; i < KP_COUNT; i++)
		kp[i] = &f->kp[i];
	return server(kp, KP_COUNT);
}

static void
test_exact(void **state)
{
	struct tls *srv = server_all(*state);

	assert_served(srv, "mail.example.net", SUBJECT_NET);
	assert_served(srv, "mail.example.org", SUBJECT_ORG);
	/* DNS names compare without regard to case */
	assert_served(srv, "MAIL.Example.NET", SUBJECT_NET);
	tls_free(srv);
}

static void
test_wildcard(void **state)
{
	struct tls *srv = server_all(*state);

	assert_served(srv, "foo.example.com", SUBJECT_WILD);
	assert_served(srv, "imap.example.com", SUBJECT_WILD);
	/* a wildcard covers one label: not two, not none */
	assert_served(srv, "a.b.example.com", SUBJECT_ORG);
	assert_served(srv, "example.com", SUBJECT_ORG);
	tls_free(srv);
}

static void
test_exact_beats_wildcard(void **state)
{
	struct fixture *f = *state;
	struct tls_keypair *kp[3];
	struct tls *srv;

	/* the wildcard comes first in the listener's list */
	kp[0] = &f->kp[KP_ORG];
	kp[1] = &f->kp[KP_WILD];
	kp[2] = &f->kp[KP_COM];
	srv = server(kp, 3);
	assert_served(srv, "mail.example.com", SUBJECT_COM);
	assert_served(srv, "pop.example.com", SUBJECT_WILD);
	tls_free(srv);

	/* and in the other order too */
	kp[1] = &f->kp[KP_COM];
	kp[2] = &f->kp[KP_WILD];
	srv = server(kp, 3);
	assert_served(srv, "mail.example.com", SUBJECT_COM);
	assert_served(srv, "pop.example.com", SUBJECT_WILD);
	tls_free(srv);

	/* the default's exact name beats a wildcard listed after it */
	kp[0] = &f->kp[KP_COM];
	kp[1] = &f->kp[KP_WILD];
	srv = server(kp, 2);
	assert_served(srv, "mail.example.com", SUBJECT_COM);
	assert_served(srv, "pop.example.com", SUBJECT_WILD);
	assert_served(srv, "other.example", SUBJECT_COM);
	tls_free(srv);
}

static void
test_unknown_name(void **state)
{
	struct tls *srv = server_all(*state);

	assert_served(srv, "other.example", SUBJECT_ORG);
	assert_served(srv, "example.net", SUBJECT_ORG);
	tls_free(srv);
}

static void
test_no_sni(void **state)
{
	struct tls *srv = server_all(*state);

	assert_served(srv, NULL, SUBJECT_ORG);
	tls_free(srv);
}

static void
test_default_only(void **state)
{
	struct fixture *f = *state;
	struct tls_keypair *kp[1];
	struct tls *srv;

	kp[0] = &f->kp[KP_ORG];
	srv = server(kp, 1);
	assert_served(srv, "mail.example.org", SUBJECT_ORG);
	assert_served(srv, "mail.example.net", SUBJECT_ORG);
	assert_served(srv, "foo.example.com", SUBJECT_ORG);
	assert_served(srv, "other.example", SUBJECT_ORG);
	assert_served(srv, NULL, SUBJECT_ORG);
	tls_free(srv);
}

static void
test_no_keypairs(void **state)
{
	struct fixture *f = *state;
	struct conf_tls_global g;
	struct tls_keypair *kp[1];
	char err[256];

	global_conf(&g);
	kp[0] = &f->kp[KP_ORG];
	err[0] = '\0';
	assert_null(tls_server_context(&g, NULL, 0, err, sizeof(err)));
	assert_true(err[0] != '\0');
	/* a keypair array that is there but counted empty is no better */
	err[0] = '\0';
	assert_null(tls_server_context(&g, kp, 0, err, sizeof(err)));
	assert_true(err[0] != '\0');
}

/* A copy of a keypair with another keypair's key. */
static void
with_key_of(struct tls_keypair *dst, const struct tls_keypair *cert,
    const struct tls_keypair *key)
{
	*dst = *cert;
	dst->blob[BLOB_KEY] = key->blob[BLOB_KEY];
	dst->bloblen[BLOB_KEY] = key->bloblen[BLOB_KEY];
	dst->blobgot[BLOB_KEY] = key->blobgot[BLOB_KEY];
}

static void
expect_failure(struct tls_keypair **kp, size_t nkp)
{
	struct conf_tls_global g;
	struct tls *ctx;
	char err[256];

	global_conf(&g);
	err[0] = '\0';
	ctx = tls_server_context(&g, kp, nkp, err, sizeof(err));
	if (ctx != NULL) {
		tls_free(ctx);
		fail_msg("a key that is not the certificate's was accepted");
	}
	assert_true(err[0] != '\0');
}

static void
test_key_mismatch(void **state)
{
	struct fixture *f = *state;
	struct tls_keypair a, b, *kp[3];

	/* the default and an SNI keypair trade keys */
	with_key_of(&a, &f->kp[KP_ORG], &f->kp[KP_NET]);
	with_key_of(&b, &f->kp[KP_NET], &f->kp[KP_ORG]);
	kp[0] = &a;
	kp[1] = &b;
	expect_failure(kp, 2);

	/* a good default; two SNI keypairs trade keys */
	with_key_of(&a, &f->kp[KP_NET], &f->kp[KP_COM]);
	with_key_of(&b, &f->kp[KP_COM], &f->kp[KP_NET]);
	kp[0] = &f->kp[KP_ORG];
	kp[1] = &a;
	kp[2] = &b;
	expect_failure(kp, 3);

	/* only the default is wrong */
	with_key_of(&a, &f->kp[KP_ORG], &f->kp[KP_NET]);
	kp[0] = &a;
	kp[1] = &f->kp[KP_NET];
	expect_failure(kp, 2);

	/* only one SNI keypair is wrong */
	with_key_of(&b, &f->kp[KP_COM], &f->kp[KP_NET]);
	kp[0] = &f->kp[KP_ORG];
	kp[1] = &f->kp[KP_NET];
	kp[2] = &b;
	expect_failure(kp, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact),
	    cmocka_unit_test(test_wildcard),
	    cmocka_unit_test(test_exact_beats_wildcard),
	    cmocka_unit_test(test_unknown_name),
	    cmocka_unit_test(test_no_sni),
	    cmocka_unit_test(test_default_only),
	    cmocka_unit_test(test_no_keypairs),
	    cmocka_unit_test(test_key_mismatch),
	};

	return cmocka_run_group_tests_name("sni", tests, setup_group,
	    teardown_group);
}
