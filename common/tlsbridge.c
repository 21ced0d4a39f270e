/*
 * The bridge is a small state machine re-run after every event: it moves
 * whatever it can in both directions, then asks libevent for exactly the
 * readiness it is now waiting for.  libtls may want to read in order to
 * write (and the other way round), so the wanted events are whatever the
 * last TLS call asked for, not simply "readable" or "writable".
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tlsbridge.h"

#define WANT_NET_READ	 0x01
#define WANT_NET_WRITE	 0x02
#define WANT_PLAIN_READ	 0x04
#define WANT_PLAIN_WRITE 0x08

static void tlsbridge_event(int, short, void *);
static void tlsbridge_drain(struct tlsbridge *);
static void tlsbridge_stall_check(int, short, void *);

static void
tlsbridge_finish(struct tlsbridge *b)
{
	tlsbridge_stop(b);
	if (b->done != NULL)
		b->done(b, b->arg);
}

void
tlsbridge_stop(struct tlsbridge *b)
{
	if (b->tls == NULL && b->netfd == -1 && b->plainfd == -1)
		return;
	event_del(&b->netev);
	event_del(&b->plainev);
	if (evtimer_initialized(&b->linger_ev))
		evtimer_del(&b->linger_ev);
	if (evtimer_initialized(&b->stall_ev))
		evtimer_del(&b->stall_ev);
	if (b->tls != NULL) {
		tls_close(b->tls); /* best effort close_notify */
		tls_free(b->tls);
		b->tls = NULL;
	}
	if (b->netfd != -1)
		close(b->netfd);
	if (b->plainfd != -1)
		close(b->plainfd);
	b->netfd = b->plainfd = -1;
	explicit_bzero(b->n2p, sizeof(b->n2p));
	explicit_bzero(b->p2n, sizeof(b->p2n));
}

/* Network to plain: returns the wants it ends up with, or -1. */
static int
pump_net_to_plain(struct tlsbridge *b, int *progress)
{
	ssize_t n;

	for (;;) {
		if (b->n2p_len > b->n2p_off && b->plain_wr_gone) {
			b->n2p_off = b->n2p_len; /* nowhere to go */
			*progress = 1;
			continue;
		}
		if (b->n2p_len > b->n2p_off) {
			n = write(b->plainfd, b->n2p + b->n2p_off,
			    b->n2p_len - b->n2p_off);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return WANT_PLAIN_WRITE;
				/*
				 * In tlsproc the plain side is postern, which
				 * has closed: the client's bytes are dropped
				 * from now on, and the session ends with the
				 * lingering close once the plain side's last
				 * bytes are read, never with a reset.
				 */
				if (!b->plain_half_close &&
				    (errno == EPIPE || errno == ECONNRESET)) {
					b->plain_wr_gone = 1;
					continue;
				}
				b->error = "plain side write failed";
				return -1;
			}
			b->n2p_off += n;
			b->bytes_in += n;
			*progress = 1;
			continue;
		}
		b->n2p_off = b->n2p_len = 0;
		if (b->net_eof) {
			if (!b->plain_shut && !b->plain_wr_gone) {
				shutdown(b->plainfd, SHUT_WR);
				b->plain_shut = 1;
			}
			return 0;
		}
		n = tls_read(b->tls, b->n2p, sizeof(b->n2p));
		if (n == TLS_WANT_POLLIN)
			return WANT_NET_READ;
		if (n == TLS_WANT_POLLOUT)
			return WANT_NET_WRITE;
		if (n == -1 && b->upstream_net) {
			/*
			 * relay: the upstream reset or broke the stream.
			 * What it sent before is authenticated and already
			 * here: it still goes to the client, as after a
			 * close, and the client's further bytes are dropped.
			 */
			snprintf(b->net_lost, sizeof(b->net_lost), "%s",
			    tls_error(b->tls) ? tls_error(b->tls) : "error");
			b->net_wr_gone = 1;
			n = 0;
		} else if (n == -1) {
			b->error = tls_error(b->tls);
			return -1;
		}
		if (n == 0) {
			b->net_eof = 1;
			*progress = 1;
			continue;
		}
		b->n2p_len = n;
		*progress = 1;
	}
}

/* Plain to network. */
static int
pump_plain_to_net(struct tlsbridge *b, int *progress)
{
	ssize_t n;

	for (;;) {
		if (b->p2n_len > b->p2n_off && b->net_wr_gone) {
			b->p2n_off = b->p2n_len; /* nowhere to go */
			*progress = 1;
			continue;
		}
		if (b->p2n_len > b->p2n_off) {
			n = tls_write(b->tls, b->p2n + b->p2n_off,
			    b->p2n_len - b->p2n_off);
			if (n == TLS_WANT_POLLIN)
				return WANT_NET_READ;
			if (n == TLS_WANT_POLLOUT)
				return WANT_NET_WRITE;
			/*
			 * libretls can report a dead peer (EPIPE) as 0 bytes
			 * written: counting that as progress would spin.
			 */
			if (n <= 0 && b->plain_half_close) {
				/*
				 * In relay: the upstream has closed (its EOF
				 * may still be behind replies the client has
				 * not taken).  Those replies still go to the
				 * client, whose bytes are dropped until it
				 * closes: closing on it would draw a reset.
				 */
				b->net_wr_gone = 1;
				continue;
			}
			if (n <= 0) {
				b->error = n == 0 ? "TLS peer gone"
						  : tls_error(b->tls);
				return -1;
			}
			b->p2n_off += n;
			b->bytes_out += n;
			*progress = 1;
			continue;
		}
		b->p2n_off = b->p2n_len = 0;
		if (b->plain_eof)
			return 0;
		n = read(b->plainfd, b->p2n, sizeof(b->p2n));
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return WANT_PLAIN_READ;
			/* tlsproc: postern closed over unread bytes */
			if (!b->plain_half_close && errno == ECONNRESET)
				n = 0;
			else {
				b->error = "plain side read failed";
				return -1;
			}
		}
		if (n == 0) {
			b->plain_eof = 1;
			*progress = 1;
			return 0;
		}
		b->p2n_len = n;
		*progress = 1;
	}
}

/*
 * relay: one side is done but not the other.  Once the upstream has
 * closed and its bytes are out, the client gets linger_sec to close, and
 * no more.  A client that has only half-closed (after LOGOUT, say) keeps
 * getting the upstream's replies for as long as they come: the timer
 * runs only while nothing is on its way to the client (a client slow to
 * take them is the stall timer's business) and starts again at every
 * move, so only the upstream's silence ends the session.
 */
static void
tlsbridge_linger(struct tlsbridge *b, int moved)
{
	struct timeval tv = {b->linger_sec ? b->linger_sec
					   : TLSBRIDGE_LINGER_SEC,
	    0};
	int pending = evtimer_pending(&b->linger_ev, NULL);

	if (b->net_eof) {
		if (b->linger_final)
			return;
		b->linger_final = 1;
	} else if (!(b->plain_eof && b->p2n_len == 0))
		return;
	else if (b->n2p_len > b->n2p_off) {
		if (pending)
			evtimer_del(&b->linger_ev);
		return;
	} else if (pending && !moved)
		return;
	/* set up in tlsbridge_start(); adding it again moves its deadline */
	evtimer_add(&b->linger_ev, &tv);
}

static int
blocked_to_plain(const struct tlsbridge *b)
{
	return b->n2p_len > b->n2p_off;
}

static int
blocked_to_net(const struct tlsbridge *b)
{
	return b->p2n_len > b->p2n_off || (b->wants & WANT_NET_WRITE);
}

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
stall_limit_ms(const struct tlsbridge *b)
{
	return (int64_t)(b->stall_sec ? b->stall_sec : TLSBRIDGE_STALL_SEC) *
	    1000;
}

/* A wait starts when a write finds no room, and again at each move. */
static void
wait_update(struct tlsbridge_wait *w, uint64_t count, int blocked, int64_t now)
{
	if (count != w->mark) {
		w->mark = count;
		w->moved_at = now;
	}
	if (!blocked)
		w->blocked_since = 0;
	else if (w->blocked_since == 0 || w->blocked_since < w->moved_at)
		w->blocked_since = now;
}

static void
waits_update(struct tlsbridge *b, int64_t now)
{
	wait_update(&b->wait_plain, b->bytes_in, blocked_to_plain(b), now);
	wait_update(&b->wait_net, b->bytes_out, blocked_to_net(b), now);
}

/* Milliseconds until this wait runs out (excused: while `mover' moves). */
static int64_t
wait_left(const struct tlsbridge *b, const struct tlsbridge_wait *w,
    const struct tlsbridge_wait *mover, int64_t now)
{
	int64_t left;

	if (w->blocked_since == 0)
		return INT64_MAX;
	left = w->blocked_since + stall_limit_ms(b) - now;
	if (mover != NULL && mover->moved_at + stall_limit_ms(b) - now > left)
		left = mover->moved_at + stall_limit_ms(b) - now;
	return left;
}

/*
 * The client's side and postern's own side: plain is postern in
 * tlsproc, the client's socket (from tlsproc or authproc) in relay.
 */
static struct tlsbridge_wait *
wait_to_client(struct tlsbridge *b)
{
	return b->upstream_net ? &b->wait_plain : &b->wait_net;
}

static struct tlsbridge_wait *
wait_to_postern(struct tlsbridge *b)
{
	return b->upstream_net ? &b->wait_net : &b->wait_plain;
}

/*
 * A write waiting for room is bounded by the stall time, counted from
 * when the wait began (or last moved), not from the last event: a peer
 * that reads nothing must not keep the session by sending a byte now
 * and then.  Postern's own side (plain in tlsproc, the upstream in
 * relay) may read nothing while its replies keep flowing, as a server
 * streaming a large FETCH does with the commands pipelined behind it;
 * the client gets no such excuse, or it could hold a session by sending
 * while never reading.  One timer serves both directions; it is checked
 * when it fires rather than moved at every run.
 */
static void
tlsbridge_stall_arm(struct tlsbridge *b)
{
	int64_t now = monotonic_ms(), left, l2;
	struct timeval tv = {0, 0};

	waits_update(b, now);
	if (evtimer_pending(&b->stall_ev, NULL))
		return; /* it fires no later than any wait runs out */
	left = wait_left(b, wait_to_client(b), NULL, now);
	l2 = wait_left(b, wait_to_postern(b), wait_to_client(b), now);
	if (l2 < left)
		left = l2;
	if (left == INT64_MAX)
		return;
	if (left > 0) {
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
	}
	evtimer_add(&b->stall_ev, &tv);
}

static void
tlsbridge_stall_check(int fd, short event, void *arg)
{
	struct tlsbridge *b = arg;
	struct tlsbridge_wait *client = wait_to_client(b), *stuck = NULL;
	int64_t now = monotonic_ms();

	(void)fd;
	(void)event;
	waits_update(b, now);
	/* both stuck: the client is the likelier culprit, and named */
	if (wait_left(b, client, NULL, now) <= 0)
		stuck = client;
	else if (wait_left(b, wait_to_postern(b), client, now) <= 0)
		stuck = wait_to_postern(b);
	if (stuck != NULL) {
		b->ended = stuck == &b->wait_plain ? TLSBRIDGE_END_PLAIN_STALL
						   : TLSBRIDGE_END_NET_STALL;
		log_debug("tls bridge: the %s side took nothing for %lld s",
		    stuck == &b->wait_plain ? "plain" : "network",
		    (long long)stall_limit_ms(b) / 1000);
		tlsbridge_finish(b);
		return;
	}
	tlsbridge_stall_arm(b);
}

static void
tlsbridge_run(struct tlsbridge *b)
{
	int want, w1, w2, progress, moved = 0, rounds = 0;
	short netev = 0, plainev = 0;

	do {
		/*
		 * Bytes thrown away (a side that is gone) never fill a
		 * socket, so a peer sending fast enough could keep this loop
		 * going: after so many passes the other sessions get their
		 * turn, and this one is run again after them.
		 */
		if (++rounds > TLSBRIDGE_RUN_ROUNDS) {
			event_del(&b->netev);
			event_del(&b->plainev);
			event_set(&b->netev, b->netfd, EV_READ, tlsbridge_event,
			    b);
			event_active(&b->netev, EV_READ, 1);
			return;
		}
		progress = 0;
		if ((w1 = pump_net_to_plain(b, &progress)) == -1 ||
		    (w2 = pump_plain_to_net(b, &progress)) == -1) {
			log_debug("tls bridge: %s: %s",
			    b->error ? b->error : "error", strerror(errno));
			tlsbridge_finish(b);
			return;
		}
		want = w1 | w2;
		moved |= progress;
	} while (progress && !(b->net_eof && b->plain_eof));

	if (b->plain_eof && b->p2n_len == 0 && b->net_eof) {
		tlsbridge_finish(b);
		return;
	}
	if (b->plain_half_close)
		tlsbridge_linger(b, moved);
	else if (b->plain_eof && b->p2n_len == 0) {
		/*
		 * tlsproc: the plain side is postern itself ending the
		 * session, and all it said is written: close, but
		 * gracefully (tlsbridge_drain()).
		 */
		struct timeval tv = {TLSBRIDGE_DRAIN_SEC, 0};

		event_del(&b->netev);
		event_del(&b->plainev);
		evtimer_del(&b->stall_ev); /* the drain has its own limit */
		evtimer_set(&b->linger_ev, tlsbridge_event, b);
		evtimer_add(&b->linger_ev, &tv);
		b->draining = 1;
		tlsbridge_drain(b);
		return;
	}
	if (want & WANT_NET_READ)
		netev |= EV_READ;
	if (want & WANT_NET_WRITE)
		netev |= EV_WRITE;
	if (want & WANT_PLAIN_READ)
		plainev |= EV_READ;
	if (want & WANT_PLAIN_WRITE)
		plainev |= EV_WRITE;
	event_del(&b->netev);
	event_del(&b->plainev);
	if (netev) {
		event_set(&b->netev, b->netfd, netev, tlsbridge_event, b);
		event_add(&b->netev, NULL);
	}
	if (plainev) {
		event_set(&b->plainev, b->plainfd, plainev, tlsbridge_event, b);
		event_add(&b->plainev, NULL);
	}
	b->wants = want;
	tlsbridge_stall_arm(b);
	if (!netev && !plainev) {
		/* nothing to wait for would mean a stuck session */
		tlsbridge_finish(b);
	}
}

/*
 * Closing the network side while the peer may still send would make the
 * kernel answer its next bytes with a reset, and a reset can destroy
 * replies the peer has not read yet: after a large FETCH and a server's
 * BYE, a client that sends one more command would lose the lot.  So the
 * close is lingering: send close_notify (waiting for room if the socket
 * is full), then the FIN, then read and discard until the peer's FIN or
 * TLSBRIDGE_DRAIN_SEC.
 */
static void
tlsbridge_drain(struct tlsbridge *b)
{
	unsigned char sink[4096];
	ssize_t n;
	int i, r;

	if (b->draining == 1) {
		r = tls_close(b->tls);
		if (r == TLS_WANT_POLLOUT || r == TLS_WANT_POLLIN) {
			event_set(&b->netev, b->netfd,
			    r == TLS_WANT_POLLOUT ? EV_WRITE : EV_READ,
			    tlsbridge_event, b);
			event_add(&b->netev, NULL);
			return;
		}
		tls_free(b->tls);
		b->tls = NULL;
		event_del(&b->plainev);
		close(b->plainfd);
		b->plainfd = -1;
		shutdown(b->netfd, SHUT_WR);
		b->draining = 2;
		event_set(&b->netev, b->netfd, EV_READ | EV_PERSIST,
		    tlsbridge_event, b);
		event_add(&b->netev, NULL);
	}
	for (i = 0; i < TLSBRIDGE_DRAIN_READS; i++) {
		n = read(b->netfd, sink, sizeof(sink));
		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		tlsbridge_finish(b); /* the peer's FIN, or an error */
		return;
	}
}

static void
tlsbridge_event(int fd, short event, void *arg)
{
	struct tlsbridge *b = arg;

	(void)fd;
	if (event & EV_TIMEOUT) {
		/* linger_ev: the relay's linger, or tlsproc's drain */
		log_debug("tls bridge: lingered long enough");
		if (!b->draining)
			b->ended = TLSBRIDGE_END_LINGER;
		tlsbridge_finish(b);
		return;
	}
	if (b->draining) {
		tlsbridge_drain(b);
		return;
	}
	tlsbridge_run(b);
}

/*
 * Bytes already owed to either side go out before anything else; they
 * must fit the bridge's buffers (callers pass a greeting or a few
 * pipelined commands).  Returns -1, taking nothing over, if they do not.
 */
int
tlsbridge_start(struct tlsbridge *b, struct tls *tls, int netfd, int plainfd,
    const void *to_net, size_t to_netlen, const void *to_plain,
    size_t to_plainlen, tlsbridge_done_cb done, void *arg)
{
	int half_close = b->plain_half_close, upstream_net = b->upstream_net;
	uint32_t linger_sec = b->linger_sec, stall_sec = b->stall_sec;

	if (to_netlen > sizeof(b->p2n) || to_plainlen > sizeof(b->n2p))
		return -1;
	memset(b, 0, sizeof(*b));
	b->plain_half_close = half_close;
	b->upstream_net = upstream_net;
	b->linger_sec = linger_sec;
	b->stall_sec = stall_sec;
	b->tls = tls;
	b->netfd = netfd;
	b->plainfd = plainfd;
	b->done = done;
	b->arg = arg;
	event_set(&b->netev, netfd, EV_READ, tlsbridge_event, b);
	event_set(&b->plainev, plainfd, EV_READ, tlsbridge_event, b);
	/* set up now: asking a zeroed event whether it is pending warns */
	evtimer_set(&b->linger_ev, tlsbridge_event, b);
	evtimer_set(&b->stall_ev, tlsbridge_stall_check, b);
	if (to_netlen > 0) {
		memcpy(b->p2n, to_net, to_netlen);
		b->p2n_len = to_netlen;
	}
	if (to_plainlen > 0) {
		memcpy(b->n2p, to_plain, to_plainlen);
		b->n2p_len = to_plainlen;
	}
	/*
	 * First run from the event loop, never from here: the bridge may
	 * finish at once and its done callback free the caller's state.
	 */
	event_active(&b->netev, EV_READ, 1);
	return 0;
}

int
tlsbridge_handshake_events(struct tls *tls, int fd, short *events)
{
	int r;

	(void)fd;
	r = tls_handshake(tls);
	if (r == 0)
		return 1;
	if (r == TLS_WANT_POLLIN) {
		*events = EV_READ;
		return 0;
	}
	if (r == TLS_WANT_POLLOUT) {
		*events = EV_WRITE;
		return 0;
	}
	return -1;
}
