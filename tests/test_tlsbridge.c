/*
 * The TLS bridge for real: a libtls server connection bridged to a
 * socketpair, driven by libevent in this thread, with the TLS peer in a
 * second thread.  The cases are about when the bridge gives up on a
 * side that takes nothing (timeout stall) and when it must not.
 *
 * Times are lower bounds only (a stall may not end a session early;
 * the bridge reads a coarse clock, a few milliseconds behind), and the
 * upper bounds are generous, so a loaded machine passes too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event.h>
#include <tls.h>

#include "tlsbridge.h"

#define TICK_MS 50

struct fixture {
	char dir[64];
	char crt[128];
	char key[128];
	struct tls_config *scfg;
	struct tls_config *ccfg;
};

/* What the TLS peer thread does once the handshake is over. */
struct peer {
	struct tls_config *cfg;
	int fd;
	int write_every_ms; /* 0: as fast as the socket takes it */
	size_t write_size;
	int read;	    /* read everything that comes */
	volatile int stop;  /* set by the test */
	size_t got;	    /* bytes read */
	size_t sent;	    /* bytes written */
	int eof;	    /* the bridge closed (or failed) */
	size_t write_limit; /* then close; 0: no limit */
	int abrupt;	    /* close without close_notify */
};

/* What the test does on the bridge's plain side at every tick. */
struct plainside {
	int fd;
	size_t write_size; /* per tick */
	int read;
	size_t got;
	size_t sent;
};

static struct tlsbridge bridge;
static struct tls *server_ctx;
static struct peer *cur_peer; /* running, or NULL */
static pthread_t cur_thread;
static int bridge_done;
static struct plainside plain;
static struct event tick_ev;

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
setup_group(void **state)
{
	struct fixture *f;
	char cmd[1024];

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_tlsbridge.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->crt, sizeof(f->crt), "%s/crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key", f->dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -days 2 -subj '/CN=bridge.test' -keyout '%s' -out '%s' "
	    ">/dev/null 2>&1",
	    f->key, f->crt);
	if (system(cmd) != 0 || tls_init() == -1)
		return -1;
	signal(SIGPIPE, SIG_IGN); /* writes to a side that is gone fail */
	if ((f->scfg = tls_config_new()) == NULL ||
	    tls_config_set_keypair_file(f->scfg, f->crt, f->key) == -1)
		return -1;
	if ((f->ccfg = tls_config_new()) == NULL)
		return -1;
	tls_config_insecure_noverifycert(f->ccfg);
	tls_config_insecure_noverifyname(f->ccfg);
	event_init();
	return 0;
}

static int
teardown_group(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	tls_config_free(f->scfg);
	tls_config_free(f->ccfg);
	unlink(f->crt);
	unlink(f->key);
	rmdir(f->dir);
	free(f);
	return 0;
}

static short
poll_for(ssize_t rc)
{
	return rc == TLS_WANT_POLLOUT ? POLLOUT : POLLIN;
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	struct tls *tls;
	struct pollfd pfd;
	unsigned char buf[16384], chunk[16384];
	double next_write = 0;
	ssize_t n;
	int rc;

	memset(chunk, 'p', sizeof(chunk));
	if ((tls = tls_client()) == NULL || tls_configure(tls, p->cfg) == -1 ||
	    tls_connect_socket(tls, p->fd, "bridge.test") == -1)
		goto out;
	while ((rc = tls_handshake(tls)) != 0) {
		if ((rc != TLS_WANT_POLLIN && rc != TLS_WANT_POLLOUT) ||
		    p->stop)
			goto out;
		pfd.fd = p->fd;
		pfd.events = poll_for(rc);
		poll(&pfd, 1, TICK_MS);
	}
	while (!p->stop && !p->eof &&
	    (p->write_limit == 0 || p->sent < p->write_limit)) {
		pfd.fd = p->fd;
		pfd.events = p->read ? POLLIN : 0;
		if (p->write_size > 0 && now_sec() >= next_write)
			pfd.events |= POLLOUT;
		poll(&pfd, 1, TICK_MS);
		if (p->read) {
			n = tls_read(tls, buf, sizeof(buf));
			if (n == 0 || n == -1)
				p->eof = 1;
			else if (n > 0)
				p->got += n;
		}
		if ((pfd.events & POLLOUT) && !p->eof) {
			n = tls_write(tls, chunk, p->write_size);
			if (n == -1)
				p->eof = 1;
			else if (n > 0) {
				p->sent += n;
				next_write =
				    now_sec() + p->write_every_ms / 1000.0;
			}
		}
	}
out:
	if (tls != NULL) {
		if (!p->abrupt)
			tls_close(tls);
		tls_free(tls);
	}
	close(p->fd);
	return NULL;
}

static void
on_done(struct tlsbridge *b, void *arg)
{
	(void)b;
	(void)arg;
	bridge_done = 1;
}

static void
tick(int fd, short event, void *arg)
{
	static unsigned char buf[65536];
	struct timeval tv = {0, TICK_MS * 1000};
	ssize_t n;
	size_t left;

	(void)fd;
	(void)event;
	(void)arg;
	if (plain.read) {
		while ((n = read(plain.fd, buf, sizeof(buf))) > 0)
			plain.got += n;
	}
	memset(buf, 's', sizeof(buf));
	for (left = plain.write_size; left > 0; left -= n) {
		n = write(plain.fd, buf,
		    left < sizeof(buf) ? left : sizeof(buf));
		if (n <= 0)
			break;
		plain.sent += n;
	}
	evtimer_add(&tick_ev, &tv);
}

/*
 * Start a bridge (server side of TLS on a socketpair) and a peer thread;
 * returns once the handshake is done and the bridge runs.
 */
static void
start(struct fixture *f, struct peer *p, int upstream_net, uint32_t stall_sec)
{
	struct tls *conn = NULL;
	struct timeval tv = {0, TICK_MS * 1000};
	struct pollfd pfd;
	int net[2], sp[2], rc, small = 4096;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, net), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	/* small buffers, so that a side not reading blocks the bridge soon */
	setsockopt(net[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	fcntl(net[0], F_SETFL, O_NONBLOCK);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	fcntl(sp[1], F_SETFL, O_NONBLOCK);
	fcntl(net[1], F_SETFL, O_NONBLOCK);
	p->cfg = f->ccfg;
	p->fd = net[1];
	assert_int_equal(pthread_create(&cur_thread, NULL, peer_main, p), 0);
	cur_peer = p;

	assert_non_null(server_ctx = tls_server());
	assert_int_equal(tls_configure(server_ctx, f->scfg), 0);
	assert_int_equal(tls_accept_socket(server_ctx, &conn, net[0]), 0);
	while ((rc = tls_handshake(conn)) != 0) {
		assert_true(rc == TLS_WANT_POLLIN || rc == TLS_WANT_POLLOUT);
		pfd.fd = net[0];
		pfd.events = poll_for(rc);
		poll(&pfd, 1, TICK_MS);
	}

	memset(&bridge, 0, sizeof(bridge));
	bridge.plain_half_close = upstream_net;
	bridge.upstream_net = upstream_net;
	bridge.stall_sec = stall_sec;
	bridge_done = 0;
	plain.fd = sp[1];
	assert_int_equal(tlsbridge_start(&bridge, conn, net[0], sp[0], NULL, 0,
			     NULL, 0, on_done, NULL),
	    0);
	evtimer_set(&tick_ev, tick, NULL);
	evtimer_add(&tick_ev, &tv);
}

/* Run the loop until the bridge is done or secs have passed. */
static double
run_for(double secs)
{
	double t0 = now_sec();

	while (!bridge_done && now_sec() - t0 < secs)
		event_loop(EVLOOP_ONCE);
	return now_sec() - t0;
}

/*
 * After every case, passed or failed (a failed assertion leaves the
 * bridge's events registered): stop the peer and the bridge, so the
 * next case starts from nothing.
 */
static int
teardown_case(void **state)
{
	(void)state;
	if (cur_peer != NULL) {
		cur_peer->stop = 1;
		pthread_join(cur_thread, NULL);
		cur_peer = NULL;
	}
	evtimer_del(&tick_ev);
	tlsbridge_stop(&bridge); /* a no-op if it already ended */
	if (server_ctx != NULL)
		tls_free(server_ctx);
	server_ctx = NULL;
	if (plain.fd > 0)
		close(plain.fd);
	memset(&plain, 0, sizeof(plain));
	return 0;
}

/* Run until the bridge ends, which it must, for the reason given. */
static double
expect_end(enum tlsbridge_end why)
{
	double took = run_for(20.0);

	assert_true(bridge_done);
	assert_int_equal(bridge.ended, why);
	return took;
}

/* Bytes go both ways; the plain side's close ends the bridge cleanly. */
static void
test_bridge_moves_both_ways(void **state)
{
	struct peer p = {.write_size = 1000, .write_every_ms = 10, .read = 1};

	plain.read = 1;
	plain.write_size = 2000;
	start(*state, &p, 0, 2);
	run_for(1.0);
	assert_false(bridge_done);
	assert_true(plain.got > 0);
	assert_true(p.got > 0);
	/* tlsproc's way to end: the plain side closes, close_notify follows */
	plain.write_size = 0;
	shutdown(plain.fd, SHUT_WR);
	run_for(10.0);
	assert_true(bridge_done);
	assert_int_equal(bridge.ended, TLSBRIDGE_END_CLOSED);
	assert_true(bridge.bytes_out > 0 && bridge.bytes_in > 0);
}

/*
 * tlsproc: the client reads nothing but sends a little every 100 ms.
 * Each send wakes the bridge; none may move the stall deadline.
 */
static void
test_client_sending_but_not_reading_is_cut_off(void **state)
{
	struct peer p = {.write_size = 10, .write_every_ms = 100, .read = 0};
	double took;

	plain.read = 1;
	plain.write_size = 65536;
	start(*state, &p, 0, 1);
	took = expect_end(TLSBRIDGE_END_NET_STALL);
	assert_true(took >= 0.9); /* a coarse clock tick early at most */
	assert_true(p.sent > 0);  /* it did keep sending */
}

/*
 * tlsproc: postern's side (plain) reads nothing for two and a half
 * times the stall limit while it keeps sending to a client that reads:
 * no stall.
 */
static void
test_postern_side_busy_sending_is_not_cut_off(void **state)
{
	struct peer p = {.write_size = 16384, .write_every_ms = 0, .read = 1};
	size_t got;

	plain.read = 0;
	plain.write_size = 1000;
	start(*state, &p, 0, 2);
	run_for(5.0);
	assert_false(bridge_done);
	got = p.got;
	assert_true(got > 0);
	/* once it stops sending too, it is stalled after all */
	plain.write_size = 0;
	expect_end(TLSBRIDGE_END_PLAIN_STALL);
}

/*
 * relay: the network side is the upstream and plain the client.  A
 * client that reads nothing while sending gets no excuse, even while
 * the upstream's bytes are on their way.
 */
static void
test_relay_client_not_reading_is_cut_off(void **state)
{
	struct peer p = {.write_size = 16384, .write_every_ms = 0, .read = 1};
	double took;

	plain.read = 0;
	plain.write_size = 10;
	start(*state, &p, 1, 1);
	took = expect_end(TLSBRIDGE_END_PLAIN_STALL);
	assert_true(took >= 0.9); /* a coarse clock tick early at most */
}

/*
 * relay: the upstream streams a reply and reads nothing of what the
 * client pipelines meanwhile: excused while its bytes flow.
 */
static void
test_relay_upstream_busy_sending_is_not_cut_off(void **state)
{
	struct peer p = {.write_size = 1000, .write_every_ms = 50, .read = 0};

	plain.read = 1;
	plain.write_size = 65536;
	start(*state, &p, 1, 2);
	run_for(5.0);
	assert_false(bridge_done);
	assert_true(plain.got > 0);
	p.write_size = 0; /* the upstream falls silent, still not reading */
	expect_end(TLSBRIDGE_END_NET_STALL);
}

/*
 * relay: the upstream's stream breaks (closed without close_notify, as
 * after a reset) once it has sent its reply.  What came before still
 * goes to the client, and the client gets its time to close rather
 * than the session ending under it.
 */
static void
test_relay_upstream_lost_is_like_a_close(void **state)
{
	struct peer p = {.write_size = 1000,
	    .write_every_ms = 0,
	    .write_limit = 50000,
	    .abrupt = 1};

	plain.read = 1;
	start(*state, &p, 1, 5);
	run_for(2.0);
	assert_false(bridge_done);
	assert_int_equal(plain.got, p.sent);
	assert_true(p.sent >= p.write_limit);
	assert_true(bridge.net_eof);
	assert_true(bridge.net_lost[0] != '\0');
	/* what the client still sends is dropped, and ends nothing */
	plain.write_size = 100;
	run_for(1.0);
	assert_false(bridge_done);
	/* the client closes: the bridge is done */
	plain.write_size = 0;
	shutdown(plain.fd, SHUT_WR);
	run_for(10.0);
	assert_true(bridge_done);
	assert_int_equal(bridge.ended, TLSBRIDGE_END_CLOSED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_bridge_moves_both_ways,
		teardown_case),
	    cmocka_unit_test_teardown(
		test_client_sending_but_not_reading_is_cut_off, teardown_case),
	    cmocka_unit_test_teardown(
		test_postern_side_busy_sending_is_not_cut_off, teardown_case),
	    cmocka_unit_test_teardown(test_relay_client_not_reading_is_cut_off,
		teardown_case),
	    cmocka_unit_test_teardown(
		test_relay_upstream_busy_sending_is_not_cut_off, teardown_case),
	    cmocka_unit_test_teardown(test_relay_upstream_lost_is_like_a_close,
		teardown_case),
	};

	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
