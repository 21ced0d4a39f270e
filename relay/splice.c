/*
 * Moving bytes after login.  Each direction reads from one socket into a
 * pipe and from the pipe into the other socket with splice(2), so the
 * payload never enters user space.  A direction that cannot write stops
 * reading (back-pressure) until the other side drains.  A half-close is
 * passed on with shutdown(2); the session ends when both sides are done.
 * A client whose bytes can no longer reach the upstream is read and
 * ignored until it closes (splice_discard_start()), never reset.
 *
 * Nothing waits for ever: a write that finds no room for `timeout stall'
 * seconds ends the session (a peer that stopped reading), and so does a
 * client that keeps its side open `timeout linger' seconds after the
 * upstream has closed and all its bytes have gone out.
 *
 * A pipe is held only while bytes sit in it: once a direction has
 * written out everything it read, its pipe goes back to a small shared
 * pool.  An idle session then costs its two sockets and no pipe, which is
 * what lets one relay hold many thousands of sessions within its
 * descriptor limit.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>
#include <event2/buffer.h>

#include "log.h"
#include "relay.h"

#define SPLICE_CHUNK  (1 << 20)
#define PIPE_POOL_MAX 64 /* empty pipes kept for reuse */
#define PIPE_SIZE     (256 * 1024)
#define DISCARD_SEC   30 /* a client talking to a closed upstream */
#define DISCARD_READS 16 /* reads per wake-up while discarding */

struct spare_pipe {
	int fd[2];
};

static struct spare_pipe pipe_pool[PIPE_POOL_MAX];
static int pipe_pool_len;

int
splice_pipe_get(int fd[2])
{
	if (pipe_pool_len > 0) {
		pipe_pool_len--;
		fd[0] = pipe_pool[pipe_pool_len].fd[0];
		fd[1] = pipe_pool[pipe_pool_len].fd[1];
		return 0;
	}
	if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_warn("pipe2");
		fd[0] = fd[1] = -1;
		return -1;
	}
	/*
	 * A pipe holds 64 KiB by default: a large FETCH would then take a
	 * pair of splice calls per 64 KiB.  A larger one is only asked
	 * for; the kernel's per-user limits may refuse it.
	 */
	(void)fcntl(fd[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

/* Only an empty pipe may be shared again. */
void
splice_pipe_put(int fd[2], size_t inpipe)
{
	if (fd[0] == -1)
		return;
	if (inpipe == 0 && pipe_pool_len < PIPE_POOL_MAX) {
		pipe_pool[pipe_pool_len].fd[0] = fd[0];
		pipe_pool[pipe_pool_len].fd[1] = fd[1];
		pipe_pool_len++;
	} else {
		close(fd[0]);
		close(fd[1]);
	}
	fd[0] = fd[1] = -1;
}

static int
pipe_get(struct splice_dir *d)
{
	return splice_pipe_get(d->pipefd);
}

static void
pipe_put(struct splice_dir *d)
{
	splice_pipe_put(d->pipefd, d->inpipe);
}

static void splice_read(int, short, void *);
static void splice_write(int, short, void *);

/* A blocked write: watched for room, for at most `timeout stall'. */
static void
splice_wait_writable(struct splice_dir *d)
{
	struct timeval tv = {relay_conf.timeout_stall, 0};

	d->peer_mark = d->rs->u2c.bytes;
	event_add(&d->wev, &tv);
}

/*
 * An upstream streaming a long reply may read nothing of what the
 * client pipelined behind it until it is done: while its replies flow,
 * its not reading is no stall.  A client gets no such excuse, or it
 * could hold a session by sending while never reading.
 */
static int
splice_stall_excused(struct splice_dir *d)
{
	struct splice_dir *u2c = &d->rs->u2c;

	return d == &d->rs->c2u && u2c->bytes != d->peer_mark;
}

static void
splice_linger_expired(int fd, short event, void *arg)
{
	struct rsession *rs = arg;

	(void)fd;
	(void)event;
	relay_log_linger(rs);
	relay_session_closed(rs);
}

/*
 * The upstream has closed and every byte it sent is out: the client
 * normally closes at once.  One that does not gets `timeout linger'
 * seconds, timed on the finished direction's write event, which has
 * nothing else to do now.
 */
static void
splice_linger_start(struct splice_dir *u2c)
{
	struct timeval tv = {relay_conf.timeout_linger, 0};

	evtimer_set(&u2c->wev, splice_linger_expired, u2c->rs);
	evtimer_add(&u2c->wev, &tv);
}

static int
splice_dir_done(const struct splice_dir *d)
{
	return d->eof && d->inpipe == 0 && d->pending == NULL;
}

static void
splice_finish_if_done(struct rsession *rs)
{
	if (splice_dir_done(&rs->c2u) && splice_dir_done(&rs->u2c))
		relay_session_closed(rs);
}

static void
splice_discard(int fd, short event, void *arg)
{
	struct splice_dir *d = arg;
	unsigned char sink[4096];
	ssize_t n;
	int i;

	if (event & EV_TIMEOUT) {
		struct timeval tv = {DISCARD_SEC, 0};

		/* replies still on their way to a slow client: not yet */
		if (!splice_dir_done(&d->rs->u2c)) {
			evtimer_add(&d->wev, &tv);
			return;
		}
		relay_session_closed(d->rs);
		return;
	}
	for (i = 0; i < DISCARD_READS; i++) {
		n = read(fd, sink, sizeof(sink));
		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		/* the client's FIN (or an error): its side is done */
		event_del(&d->rev);
		event_del(&d->wev);
		d->eof = 1;
		splice_finish_if_done(d->rs);
		return;
	}
}

static void
splice_drop(struct splice_dir *d)
{
	event_del(&d->rev);
	event_del(&d->wev);
	pipe_put(d); /* closed, not shared, if bytes are left in it */
	d->inpipe = 0;
	if (d->pending != NULL) {
		evbuffer_free(d->pending);
		d->pending = NULL;
	}
}

/*
 * The upstream no longer takes the client's bytes (it has closed, as a
 * server does after BYE), but what it said may still be on its way to
 * the client.  Closing the client's socket now would let the kernel
 * answer the client's next bytes with a reset, and a reset destroys
 * replies the client has not read: so its bytes are read and thrown
 * away until it closes, while the other direction finishes, and for at
 * most DISCARD_SEC once that is done.
 */
static void
splice_discard_start(struct splice_dir *d)
{
	struct timeval tv = {DISCARD_SEC, 0};

	splice_drop(d);
	d->discard = 1;
	event_set(&d->rev, d->from, EV_READ | EV_PERSIST, splice_discard, d);
	event_add(&d->rev, NULL);
	evtimer_set(&d->wev, splice_discard, d);
	evtimer_add(&d->wev, &tv);
}

/* Writing to the upstream failed: it has closed or reset. */
static void
splice_upstream_gone(struct splice_dir *c2u)
{
	if (!c2u->eof) {
		splice_discard_start(c2u);
		return;
	}
	/* the client has said all it will: let the replies finish */
	splice_drop(c2u);
	splice_finish_if_done(c2u->rs);
}

static void
splice_fail(struct splice_dir *d)
{
	/* a reset or error on either side ends the whole session */
	relay_session_closed(d->rs);
}

/* Returns 1 if everything pending and piped is written, 0 if blocked. */
static int
splice_flush(struct splice_dir *d)
{
	ssize_t n;

	while (d->pending != NULL && evbuffer_get_length(d->pending) > 0) {
		n = evbuffer_write(d->pending, d->to);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
	}
	if (d->pending != NULL) {
		/* written once, at the start: not needed again */
		evbuffer_free(d->pending);
		d->pending = NULL;
	}
	while (d->inpipe > 0) {
		n = splice(d->pipefd[0], NULL, d->to, NULL, d->inpipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
		d->inpipe -= n;
		d->bytes += n;
	}
	pipe_put(d);
	return 1;
}

static void
splice_after_flush(struct splice_dir *d, int flushed)
{
	if (flushed == -1) {
		if (d == &d->rs->c2u)
			splice_upstream_gone(d);
		else
			splice_fail(d);
		return;
	}
	if (flushed == 0) {
		/* the receiver is full: stop reading until it drains */
		event_del(&d->rev);
		splice_wait_writable(d);
		return;
	}
	event_del(&d->wev);
	if (d->eof) {
		struct rsession *rs = d->rs;
		struct splice_dir *other = d == &rs->c2u ? &rs->u2c : &rs->c2u;

		/* a socket at EOF stays readable: stop watching it */
		event_del(&d->rev);
		/*
		 * If the other way is done too, close(2) sends the FIN, but
		 * only for the upstream: authproc (or tlsproc) may still hold
		 * the client's socket.
		 */
		if (!splice_dir_done(other) || d->to == rs->cfd)
			shutdown(d->to, SHUT_WR);
		if (d == &rs->u2c && !splice_dir_done(other) && !other->discard)
			splice_linger_start(d);
		splice_finish_if_done(rs);
		return;
	}
	event_add(&d->rev, NULL);
}

/* The upstream went away, as opposed to an error of our own. */
static int
splice_upstream_lost(int err)
{
	return err == ECONNRESET || err == EPIPE || err == ETIMEDOUT ||
	    err == EHOSTUNREACH || err == ENETUNREACH;
}

static void
splice_read(int fd, short event, void *arg)
{
	struct splice_dir *d = arg;
	ssize_t n;

	(void)event;
	if (d->pipefd[1] == -1 && pipe_get(d) == -1) {
		splice_fail(d);
		return;
	}
	n = splice(fd, NULL, d->pipefd[1], NULL, SPLICE_CHUNK,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR) {
			if (d->inpipe == 0)
				pipe_put(d);
			return;
		}
		if (d != &d->rs->u2c || !splice_upstream_lost(errno)) {
			splice_fail(d);
			return;
		}
		/*
		 * The upstream reset (a server closing over unread client
		 * bytes does): what it sent before is in the pipe, and still
		 * goes to the client, as after its FIN.
		 */
		relay_log_upstream_lost(d->rs, strerror(errno));
		n = 0;
	}
	if (n == 0)
		d->eof = 1;
	d->inpipe += n;
	splice_after_flush(d, splice_flush(d));
}

static void
splice_write(int fd, short event, void *arg)
{
	struct splice_dir *d = arg;

	(void)fd;
	if (event & EV_TIMEOUT) {
		if (splice_stall_excused(d)) {
			splice_wait_writable(d);
			return;
		}
		relay_log_stall(d->rs, d == &d->rs->u2c);
		relay_session_closed(d->rs);
		return;
	}
	splice_after_flush(d, splice_flush(d));
}

static int
splice_dir_init(struct rsession *rs, struct splice_dir *d, int from, int to,
    const void *pending, size_t pendlen)
{
	d->rs = rs;
	d->from = from;
	d->to = to;
	d->inpipe = 0;
	d->eof = 0;
	d->discard = 0;
	d->bytes = 0;
	d->pipefd[0] = d->pipefd[1] = -1;
	if ((d->pending = evbuffer_new()) == NULL ||
	    evbuffer_add(d->pending, pending, pendlen) == -1)
		return -1;
	d->bytes = 0;
	event_set(&d->rev, from, EV_READ | EV_PERSIST, splice_read, d);
	event_set(&d->wev, to, EV_WRITE | EV_PERSIST, splice_write, d);
	return 0;
}

static int
splice_begin(struct splice_dir *d)
{
	switch (splice_flush(d)) {
	case 1:
		event_add(&d->rev, NULL);
		return 0;
	case 0:
		splice_wait_writable(d);
		return 0;
	default:
		return -1;
	}
}

int
splice_start(struct rsession *rs, const void *to_client, size_t clen,
    const void *to_upstream, size_t ulen)
{
	rs->c2u.pipefd[0] = rs->c2u.pipefd[1] = -1;
	rs->u2c.pipefd[0] = rs->u2c.pipefd[1] = -1;
	if (splice_dir_init(rs, &rs->c2u, rs->cfd, rs->ufd, to_upstream,
		ulen) == -1 ||
	    splice_dir_init(rs, &rs->u2c, rs->ufd, rs->cfd, to_client, clen) ==
		-1) {
		splice_stop(rs);
		return -1;
	}
	/*
	 * What we owe each side goes first, then the pipes take over.  The
	 * sockets almost always take it at once, which spares watching
	 * for writability.  The upstream's read event goes in while the
	 * login's is still there, so epoll is not touched for it.
	 */
	/* upstream first: if it fails, the client has not yet seen OK */
	if (splice_begin(&rs->c2u) == -1 || splice_begin(&rs->u2c) == -1) {
		splice_stop(rs);
		return -1;
	}
	return 0;
}

static void
splice_dir_stop(struct splice_dir *d)
{
	if (d->rs == NULL)
		return; /* never started */
	if (event_initialized(&d->rev))
		event_del(&d->rev);
	if (event_initialized(&d->wev))
		event_del(&d->wev);
	/* a pipe with bytes left in it is closed, never shared */
	pipe_put(d);
	if (d->pending != NULL)
		evbuffer_free(d->pending);
	d->pending = NULL;
	d->rs = NULL;
}

void
splice_stop(struct rsession *rs)
{
	splice_dir_stop(&rs->c2u);
	splice_dir_stop(&rs->u2c);
}
