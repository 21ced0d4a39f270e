/*
 * loadgen: an IMAP/POP3 load generator for postern's benchmarks.
 *
 * One thread, epoll, non-blocking sockets; IMAPS through libtls.  Modes:
 *
 *   imap-login	connect, greeting, "a LOGIN user pass", "b LOGOUT", wait
 *		for the server to close; repeat on every connection slot
 *   pop3-login	greeting, USER, PASS, QUIT, wait for the close; repeat
 *   imap-fetch	one logged-in session per slot (LOGIN, SELECT INBOX), then
 *		"f FETCH 1 BODY[]" in a loop, counting the bytes received
 *   idle	open -n sessions (at most -c connecting at once), log each
 *		in, hold them for -d seconds and count those still alive
 *
 * Latency is taken per operation with CLOCK_MONOTONIC: for the login
 * modes from the start of connect() to the answer to the login, for
 * imap-fetch from sending FETCH to its tagged answer.  Operations,
 * latencies, failures and bytes are counted only inside the measuring
 * window, which starts after -W seconds of warm-up.  After the window
 * the operations under way are let finish and the sessions log out (for
 * at most 5 s; --abrupt closes them at once instead).  The run ends with
 * a human line and one machine-readable line:
 *
 *   RESULT mode=... conc=... secs=... ops=... rate=... p50_ms=...
 *	p99_ms=... failures=... bytes=... mbps=... held=... target=...
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <tls.h>

#define LINE_MAX_LEN 8192
#define READ_SIZE    (256 * 1024)
#define MAX_EVENTS   512
#define NOFILE_WANT  (1 << 18)
#define RETRY_NS     (10 * 1000 * 1000ULL)
#define SWEEP_MS     50
#define DRAIN_NS     (5 * 1000000000ULL)

enum mode { M_IMAP_LOGIN, M_POP3_LOGIN, M_IMAP_FETCH, M_IDLE };

enum phase {
	P_FREE,	     /* slot unused */
	P_SLEEP,     /* waiting to reconnect after a failure */
	P_CONNECT,   /* TCP connect in progress */
	P_HANDSHAKE, /* TLS handshake */
	P_GREETING,
	P_LOGIN,  /* IMAP LOGIN or POP3 PASS sent */
	P_USER,	  /* POP3 USER sent */
	P_SELECT, /* imap-fetch: SELECT sent */
	P_FETCH,  /* imap-fetch: FETCH sent */
	P_LOGOUT, /* LOGOUT or QUIT sent */
	P_EOF,	  /* waiting for the server to close */
	P_HELD	  /* idle: logged in, held open */
};

struct conn {
	int fd;
	enum phase phase;
	struct tls *tls;
	uint32_t events; /* epoll interest now registered */
	int tls_want;	 /* TLS_WANT_POLLOUT: needs writability */
	uint64_t t_start;
	uint64_t deadline;
	uint32_t login_us;
	char line[LINE_MAX_LEN];
	size_t linelen;
	size_t lit; /* literal bytes still to skip */
	char out[1024];
	size_t outlen, outoff;
};

static enum mode mode;
static const char *host = "127.0.0.1";
static const char *port_str = "143";
static const char *user_pat = "bench@example.org";
static const char *password = "secret";
static const char *servername;
static const char *cafile;
static int use_tls, insecure, markers, quiet, abrupt;
static unsigned int conc = 1, nusers = 1000, target;
static double duration = 5.0, warmup = 1.0, op_timeout = 10.0;

static struct sockaddr_storage dst;
static struct sockaddr_in src; /* -b: connect from this address */
static int have_src;
static socklen_t dstlen;
static struct tls_config *tcfg;
static int epfd;
static struct conn *conns;
static unsigned int nconns;
static unsigned long long user_seq;
static volatile sig_atomic_t stopping;
static char rbuf[READ_SIZE];

/* measuring */
static uint64_t t_begin, t_measure, t_end;
static int measuring, measured, draining;
static unsigned long long ops, failures, all_failures, bytes;
static uint32_t *samples;
static size_t nsamples, samplecap;
/* idle */
static unsigned int opened, held, idle_failed;
static int idle_ready;
static uint64_t t_ready, t_drain;

static void conn_fail(struct conn *, const char *);
static void conn_start(struct conn *);

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen -m imap-login|pop3-login|imap-fetch|idle\n"
	    "\t[-h host] [-p port] [-b source-address] [-u user (%%d: 1..-U)]\n"
	    "\t[-U users] "
	    "[-w password]\n"
	    "\t[-c concurrency] [-d seconds] [-W warm-up seconds] "
	    "[-n sessions (idle)]\n"
	    "\t[-T op timeout] [--tls] [--insecure] [--servername name] "
	    "[--cafile file]\n"
	    "\t[--abrupt (close at the end of the window, mid-operation)]\n"
	    "\t[-M (print WARMUP_DONE, MEASURE_DONE, IDLE_READY)] [-q]\n");
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	rl.rlim_cur = rl.rlim_max = NOFILE_WANT;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
sample_add(uint32_t us)
{
	uint32_t *n;

	if (nsamples == samplecap) {
		samplecap = samplecap ? samplecap * 2 : 65536;
		if ((n = realloc(samples, samplecap * sizeof(*n))) == NULL)
			err(1, "realloc");
		samples = n;
	}
	samples[nsamples++] = us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The user name for the next session: %d becomes 1..nusers. */
static void
next_user(char *dst_, size_t len)
{
	const char *p = strstr(user_pat, "%d");
	unsigned long long n = user_seq++ % nusers + 1;

	if (p == NULL)
		snprintf(dst_, len, "%s", user_pat);
	else
		snprintf(dst_, len, "%.*s%llu%s", (int)(p - user_pat), user_pat,
		    n, p + 2);
}

/* An IMAP quoted string. */
static void
quote(char *q, size_t len, const char *s)
{
	size_t o = 0;

	q[o++] = '"';
	for (; *s != '\0' && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			q[o++] = '\\';
		q[o++] = *s;
	}
	q[o++] = '"';
	q[o] = '\0';
}

static void
set_events(struct conn *c)
{
	struct epoll_event ev;
	uint32_t want;

	if (c->phase == P_CONNECT)
		want = EPOLLOUT;
	else if (c->tls_want == TLS_WANT_POLLOUT || c->outoff < c->outlen)
		want = EPOLLIN | EPOLLOUT;
	else
		want = EPOLLIN;
	if (want == c->events)
		return;
	c->events = want;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		warn("epoll_ctl mod");
}

static void
conn_close(struct conn *c)
{
	if (c->tls != NULL) {
		(void)tls_close(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd != -1) {
		(void)epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->events = 0;
	c->tls_want = 0;
	c->linelen = c->lit = 0;
	c->outlen = c->outoff = 0;
	c->phase = P_FREE;
}

/* Write what is queued; -1 on error. */
static int
conn_flush(struct conn *c)
{
	ssize_t n;

	c->tls_want = 0;
	while (c->outoff < c->outlen) {
		if (c->tls != NULL) {
			n = tls_write(c->tls, c->out + c->outoff,
			    c->outlen - c->outoff);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				c->tls_want = (int)n;
				break;
			}
			if (n == -1)
				return -1;
		} else {
			n = write(c->fd, c->out + c->outoff,
			    c->outlen - c->outoff);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				return -1;
			}
		}
		c->outoff += n;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	set_events(c);
	return 0;
}

static void
conn_send(struct conn *c, const char *s)
{
	size_t len = strlen(s);

	if (c->outlen + len > sizeof(c->out)) {
		conn_fail(c, "command too long");
		return;
	}
	memcpy(c->out + c->outlen, s, len);
	c->outlen += len;
	if (conn_flush(c) == -1)
		conn_fail(c, "write");
}

static void
send_login(struct conn *c)
{
	char u[512], qu[1100], qp[1100], cmd[2300];

	next_user(u, sizeof(u));
	if (mode == M_POP3_LOGIN) {
		snprintf(cmd, sizeof(cmd), "USER %s\r\n", u);
		c->phase = P_USER;
	} else {
		quote(qu, sizeof(qu), u);
		quote(qp, sizeof(qp), password);
		snprintf(cmd, sizeof(cmd), "a LOGIN %s %s\r\n", qu, qp);
		c->phase = P_LOGIN;
	}
	conn_send(c, cmd);
}

static void
send_fetch(struct conn *c)
{
	c->phase = P_FETCH;
	c->t_start = now_ns();
	c->deadline = c->t_start + (uint64_t)(op_timeout * 1e9);
	conn_send(c, "f FETCH 1 BODY[]\r\n");
}

static int
in_window(uint64_t t)
{
	return measuring && t >= t_measure && t < t_end;
}

/* One operation done: count it and its latency if inside the window. */
static void
op_done(uint32_t us)
{
	if (in_window(now_ns())) {
		ops++;
		sample_add(us);
	}
}

static uint32_t
since_us(uint64_t t)
{
	uint64_t d = (now_ns() - t) / 1000;

	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static int
tagged(const char *line, const char *tag)
{
	size_t n = strlen(tag);

	return strncmp(line, tag, n) == 0 && line[n] == ' ';
}

static int
tagged_ok(const char *line, const char *tag)
{
	return strncasecmp(line + strlen(tag) + 1, "OK", 2) == 0;
}

static void
logged_in(struct conn *c)
{
	c->login_us = since_us(c->t_start);
	switch (mode) {
	case M_IMAP_LOGIN:
		c->phase = P_LOGOUT;
		conn_send(c, "b LOGOUT\r\n");
		break;
	case M_POP3_LOGIN:
		c->phase = P_LOGOUT;
		conn_send(c, "QUIT\r\n");
		break;
	case M_IMAP_FETCH:
		c->phase = P_SELECT;
		conn_send(c, "s SELECT INBOX\r\n");
		break;
	case M_IDLE:
		c->phase = P_HELD;
		c->deadline = 0;
		held++;
		break;
	}
}

/* One complete response line (CRLF stripped). */
static void
on_line(struct conn *c, const char *line)
{
	int pop = mode == M_POP3_LOGIN;

	switch (c->phase) {
	case P_GREETING:
		if (pop ? strncmp(line, "+OK", 3) == 0
			: strncasecmp(line, "* OK", 4) == 0)
			send_login(c);
		else
			conn_fail(c, "greeting");
		break;
	case P_USER:
		if (strncmp(line, "+OK", 3) == 0) {
			char cmd[1100];

			snprintf(cmd, sizeof(cmd), "PASS %s\r\n", password);
			c->phase = P_LOGIN;
			conn_send(c, cmd);
		} else {
			conn_fail(c, "USER refused");
		}
		break;
	case P_LOGIN:
		if (pop) {
			if (strncmp(line, "+OK", 3) == 0)
				logged_in(c);
			else
				conn_fail(c, "PASS refused");
		} else if (tagged(line, "a")) {
			if (tagged_ok(line, "a"))
				logged_in(c);
			else
				conn_fail(c, "LOGIN refused");
		} else if (strncasecmp(line, "* BYE", 5) == 0) {
			conn_fail(c, "BYE at login");
		}
		break;
	case P_SELECT:
		if (tagged(line, "s")) {
			if (tagged_ok(line, "s") && draining) {
				c->phase = P_LOGOUT;
				conn_send(c, "b LOGOUT\r\n");
			} else if (tagged_ok(line, "s")) {
				send_fetch(c);
			} else
				conn_fail(c, "SELECT refused");
		}
		break;
	case P_FETCH:
		if (tagged(line, "f")) {
			if (!tagged_ok(line, "f")) {
				conn_fail(c, "FETCH refused");
				break;
			}
			op_done(since_us(c->t_start));
			if (draining) {
				c->phase = P_LOGOUT;
				conn_send(c, "b LOGOUT\r\n");
			} else {
				send_fetch(c);
			}
		} else if (strncasecmp(line, "* BYE", 5) == 0) {
			conn_fail(c, "BYE during FETCH");
		}
		break;
	case P_LOGOUT:
		if (pop ? line[0] == '+' || line[0] == '-'
			: tagged(line, "b")) {
			op_done(c->login_us);
			c->phase = P_EOF;
		}
		break;
	default:
		/* untagged data while held or closing */
		break;
	}
}

/* Split input into lines; skip IMAP literals ({n} at a line's end). */
static void
on_data(struct conn *c, const char *p, size_t n)
{
	const char *nl;
	size_t take;

	while (n > 0 && c->fd != -1) {
		if (c->lit > 0) {
			take = c->lit < n ? c->lit : n;
			c->lit -= take;
			p += take;
			n -= take;
			continue;
		}
		nl = memchr(p, '\n', n);
		take = nl ? (size_t)(nl - p) + 1 : n;
		if (c->linelen + take >= sizeof(c->line)) {
			/* an over-long line: keep its end, for a literal */
			size_t keep = 64;

			if (c->linelen > keep) {
				memmove(c->line, c->line + c->linelen - keep,
				    keep);
				c->linelen = keep;
			}
			if (take >= sizeof(c->line) - keep) {
				size_t skip =
				    take - (sizeof(c->line) - keep - 1);

				p += skip;
				n -= skip;
				take -= skip;
			}
		}
		memcpy(c->line + c->linelen, p, take);
		c->linelen += take;
		p += take;
		n -= take;
		if (nl == NULL)
			break;
		/* a complete line */
		while (c->linelen > 0 &&
		    (c->line[c->linelen - 1] == '\n' ||
			c->line[c->linelen - 1] == '\r'))
			c->linelen--;
		c->line[c->linelen] = '\0';
		if (mode != M_POP3_LOGIN && c->linelen > 2 &&
		    c->line[c->linelen - 1] == '}') {
			char *b = strrchr(c->line, '{');

			if (b != NULL) {
				c->lit = strtoull(b + 1, NULL, 10);
				c->linelen = 0;
				continue;
			}
		}
		c->linelen = 0;
		on_line(c, c->line);
	}
}

static void
conn_eof(struct conn *c)
{
	if (c->phase == P_EOF) {
		conn_close(c);
		if (!stopping && !draining && mode != M_IDLE)
			conn_start(c);
		return;
	}
	conn_fail(c, "connection closed");
}

static void
conn_read(struct conn *c)
{
	ssize_t n;
	int rounds = 0;

	for (;;) {
		if (c->tls != NULL) {
			n = tls_read(c->tls, rbuf, sizeof(rbuf));
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				c->tls_want = (int)n;
				set_events(c);
				return;
			}
			if (n == -1) {
				if (c->phase == P_EOF) {
					conn_eof(c);
					return;
				}
				conn_fail(c, tls_error(c->tls));
				return;
			}
		} else {
			n = read(c->fd, rbuf, sizeof(rbuf));
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					return;
				if (c->phase == P_EOF && errno == ECONNRESET) {
					conn_eof(c);
					return;
				}
				conn_fail(c, strerror(errno));
				return;
			}
		}
		if (n == 0) {
			conn_eof(c);
			return;
		}
		if (in_window(now_ns()))
			bytes += n;
		on_data(c, rbuf, n);
		if (c->fd == -1)
			return;
		/* TLS: drain what libtls holds; clear: be fair to others */
		if (c->tls == NULL && ++rounds >= 16)
			return;
	}
}

static void
conn_handshake(struct conn *c)
{
	int rv = tls_handshake(c->tls);

	if (rv == TLS_WANT_POLLIN || rv == TLS_WANT_POLLOUT) {
		c->tls_want = rv;
		set_events(c);
		return;
	}
	if (rv == -1) {
		conn_fail(c, tls_error(c->tls));
		return;
	}
	c->tls_want = 0;
	c->phase = P_GREETING;
	set_events(c);
	/* the greeting may already sit in libtls's buffer */
	conn_read(c);
}

static void
conn_connected(struct conn *c)
{
	int e = 0;
	socklen_t elen = sizeof(e);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) == -1 ||
	    e != 0) {
		conn_fail(c, strerror(e ? e : errno));
		return;
	}
	if (use_tls) {
		if ((c->tls = tls_client()) == NULL)
			err(1, "tls_client");
		if (tls_configure(c->tls, tcfg) == -1)
			errx(1, "tls_configure: %s", tls_error(c->tls));
		if (tls_connect_socket(c->tls, c->fd,
			servername ? servername : host) == -1) {
			conn_fail(c, tls_error(c->tls));
			return;
		}
		c->phase = P_HANDSHAKE;
		conn_handshake(c);
		return;
	}
	c->phase = P_GREETING;
	set_events(c);
}

static void
conn_start(struct conn *c)
{
	struct epoll_event ev;
	int on = 1;

	if (mode == M_IDLE)
		opened++;
	c->t_start = now_ns();
	c->deadline = c->t_start + (uint64_t)(op_timeout * 1e9);
	c->fd = socket(dst.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_fail(c, strerror(errno));
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/*
	 * Each source address has its own ephemeral ports: -b on several
	 * loadgens spreads 100,000 sessions where one address runs out.
	 */
	/*
	 * The port is left to connect(): one bound here would keep its
	 * number from every other connect() on the machine, the proxy's to
	 * its upstreams too.
	 */
	if (have_src &&
	    (setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on,
		 sizeof(on)) == -1 ||
		bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1)) {
		conn_fail(c, strerror(errno));
		return;
	}
	c->phase = P_CONNECT;
	c->events = EPOLLOUT;
	ev.events = EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		err(1, "epoll_ctl add");
	if (connect(c->fd, (struct sockaddr *)&dst, dstlen) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, strerror(errno));
		return;
	}
}

static void
conn_fail(struct conn *c, const char *why)
{
	static unsigned int shown;
	int was_held = c->phase == P_HELD;

	if (!quiet && shown < 5) {
		shown++;
		fprintf(stderr, "loadgen: %s\n", why);
	}
	all_failures++;
	if (in_window(now_ns()) || mode == M_IDLE)
		failures++;
	conn_close(c);
	if (mode == M_IDLE) {
		if (was_held)
			held--;
		idle_failed++;
		return;
	}
	if (!stopping && !draining) {
		c->phase = P_SLEEP;
		c->deadline = now_ns() + RETRY_NS;
	}
}

static void
conn_event(struct conn *c, uint32_t events)
{
	if (c->phase == P_CONNECT) {
		conn_connected(c);
		return;
	}
	if (c->phase == P_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if ((events & EPOLLOUT) && c->outoff < c->outlen) {
		if (conn_flush(c) == -1) {
			conn_fail(c, "write");
			return;
		}
	}
	if (c->tls_want == TLS_WANT_POLLOUT && !(events & EPOLLOUT))
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLOUT))
		conn_read(c);
}

static unsigned int
busy_conns(void)
{
	unsigned int i, busy = 0;

	for (i = 0; i < nconns; i++)
		if (conns[i].phase != P_FREE && conns[i].phase != P_SLEEP)
			busy++;
	return busy;
}

/* Timeouts and reconnects. */
static void
sweep(uint64_t now)
{
	unsigned int i;

	for (i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (c->phase == P_SLEEP && draining) {
			c->phase = P_FREE;
		} else if (c->phase == P_SLEEP && now >= c->deadline) {
			c->phase = P_FREE;
			conn_start(c);
		} else if (c->phase != P_FREE && c->phase != P_SLEEP &&
		    c->phase != P_HELD && c->deadline != 0 &&
		    now >= c->deadline) {
			conn_fail(c, "timeout");
		}
	}
}

/* Slots are used in order, each once: open more while few are busy. */
static void
idle_open_more(void)
{
	while (
	    !stopping && opened < target && opened - held - idle_failed < conc)
		conn_start(&conns[opened]);
}

static void
resolve(void)
{
	struct addrinfo hints, *res;
	int e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port_str, &hints, &res)) != 0)
		errx(1, "%s port %s: %s", host, port_str, gai_strerror(e));
	memcpy(&dst, res->ai_addr, res->ai_addrlen);
	dstlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static const char *
mode_name(void)
{
	static const char *names[] = {"imap-login", "pop3-login", "imap-fetch",
	    "idle"};

	return names[mode];
}

static void
report(void)
{
	double secs, rate, mbps, p50 = 0, p99 = 0, pmax = 0;

	if (mode == M_IDLE) {
		secs = t_ready ? (t_ready - t_begin) / 1e9
			       : (now_ns() - t_begin) / 1e9;
		printf("idle: %u of %u sessions held, %llu failures "
		       "(opened in %.2f s)\n",
		    held, target, failures, secs);
		printf("RESULT mode=idle conc=%u secs=%.3f ops=%u rate=%.1f "
		       "p50_ms=0 p99_ms=0 failures=%llu bytes=0 mbps=0 "
		       "held=%u target=%u\n",
		    conc, secs, opened, secs > 0 ? opened / secs : 0, failures,
		    held, target);
		return;
	}
	secs =
	    (double)((t_end < now_ns() ? t_end : now_ns()) - t_measure) / 1e9;
	if (secs <= 0)
		secs = 1e-9;
	if (nsamples > 0) {
		qsort(samples, nsamples, sizeof(*samples), cmp_u32);
		p50 = samples[nsamples / 2] / 1000.0;
		p99 = samples[(nsamples * 99) / 100 < nsamples
			      ? (nsamples * 99) / 100
			      : nsamples - 1] /
		    1000.0;
		pmax = samples[nsamples - 1] / 1000.0;
	}
	rate = ops / secs;
	mbps = bytes / secs / 1e6;
	printf("%s: %llu ops in %.2f s = %.1f/s, p50 %.3f ms, p99 %.3f ms, "
	       "max %.3f ms, %llu failures, %.1f MB/s (%d connections%s)\n",
	    mode_name(), ops, secs, rate, p50, p99, pmax, failures, mbps, conc,
	    use_tls ? ", TLS" : "");
	printf("RESULT mode=%s conc=%u secs=%.3f ops=%llu rate=%.1f "
	       "p50_ms=%.3f p99_ms=%.3f failures=%llu bytes=%llu mbps=%.2f "
	       "held=0 target=0\n",
	    mode_name(), conc, secs, ops, rate, p50, p99, failures, bytes,
	    mbps);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	    {"tls", no_argument, NULL, 'S'},
	    {"insecure", no_argument, NULL, 'k'},
	    {"servername", required_argument, NULL, 'N'},
	    {"cafile", required_argument, NULL, 'C'},
	    {"abrupt", no_argument, NULL, 'A'},
	    {NULL, 0, NULL, 0},
	};
	struct epoll_event evs[MAX_EVENTS];
	struct sigaction sa;
	uint64_t now, last_sweep = 0;
	unsigned int i;
	int ch, n;

	while ((ch = getopt_long(argc, argv,
		    "b:c:d:h:m:Mn:p:qT:u:U:w:W:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			src.sin_family = AF_INET;
			if (inet_pton(AF_INET, optarg, &src.sin_addr) != 1)
				errx(1, "-b wants an IPv4 address");
			have_src = 1;
			break;
		case 'c':
			conc = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			duration = strtod(optarg, NULL);
			break;
		case 'h':
			host = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "imap-login") == 0)
				mode = M_IMAP_LOGIN;
			else if (strcmp(optarg, "pop3-login") == 0)
				mode = M_POP3_LOGIN;
			else if (strcmp(optarg, "imap-fetch") == 0)
				mode = M_IMAP_FETCH;
			else if (strcmp(optarg, "idle") == 0)
				mode = M_IDLE;
			else
				usage();
			break;
		case 'M':
			markers = 1;
			break;
		case 'n':
			target = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			port_str = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'T':
			op_timeout = strtod(optarg, NULL);
			break;
		case 'u':
			user_pat = optarg;
			break;
		case 'U':
			nusers = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			password = optarg;
			break;
		case 'W':
			warmup = strtod(optarg, NULL);
			break;
		case 'S':
			use_tls = 1;
			break;
		case 'k':
			insecure = 1;
			break;
		case 'N':
			servername = optarg;
			break;
		case 'C':
			cafile = optarg;
			break;
		case 'A':
			abrupt = 1;
			break;
		default:
			usage();
		}
	}
	if (argc != optind || conc == 0 || nusers == 0 || duration <= 0 ||
	    warmup < 0 || (mode == M_IDLE && target == 0))
		usage();
	if (use_tls && mode == M_POP3_LOGIN)
		errx(1, "--tls is for the IMAP modes (IMAPS)");
	raise_nofile();
	resolve();
	if (use_tls) {
		if ((tcfg = tls_config_new()) == NULL)
			errx(1, "tls_config_new");
		if (insecure) {
			tls_config_insecure_noverifycert(tcfg);
			tls_config_insecure_noverifyname(tcfg);
		} else if (cafile != NULL &&
		    tls_config_set_ca_file(tcfg, cafile) == -1) {
			errx(1, "%s: %s", cafile, tls_config_error(tcfg));
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");

	nconns = mode == M_IDLE ? target : conc;
	if ((conns = calloc(nconns, sizeof(*conns))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nconns; i++)
		conns[i].fd = -1;
	t_begin = now_ns();
	if (mode == M_IDLE) {
		idle_open_more();
	} else {
		t_measure = t_begin + (uint64_t)(warmup * 1e9);
		t_end = t_measure + (uint64_t)(duration * 1e9);
		measuring = 1;
		for (i = 0; i < nconns; i++)
			conn_start(&conns[i]);
	}

	for (;;) {
		n = epoll_wait(epfd, evs, MAX_EVENTS, SWEEP_MS);
		if (n == -1 && errno != EINTR)
			err(1, "epoll_wait");
		for (i = 0; n > 0 && i < (unsigned int)n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->fd != -1)
				conn_event(c, evs[i].events);
		}
		now = now_ns();
		if (now - last_sweep >= SWEEP_MS * 1000000ULL) {
			sweep(now);
			last_sweep = now;
		}
		if (mode == M_IDLE) {
			if (!idle_ready) {
				idle_open_more();
				if (held + idle_failed >= target || stopping) {
					idle_ready = 1;
					t_ready = now;
					if (markers) {
						printf("IDLE_READY held=%u "
						       "failures=%u\n",
						    held, idle_failed);
						fflush(stdout);
					}
				}
			} else if (stopping ||
			    now - t_ready >= (uint64_t)(duration * 1e9)) {
				break;
			}
			continue;
		}
		if (!measured && now >= t_measure) {
			measured = 1;
			if (markers) {
				printf("WARMUP_DONE\n");
				fflush(stdout);
			}
		}
		if (!draining && (now >= t_end || stopping)) {
			if (markers) {
				printf("MEASURE_DONE\n");
				fflush(stdout);
			}
			if (stopping && now < t_end)
				t_end = now;
			if (abrupt || stopping)
				break;
			/* let what is under way finish, then log out */
			draining = 1;
			t_drain = now;
		}
		if (draining &&
		    (stopping || now - t_drain >= DRAIN_NS ||
			busy_conns() == 0))
			break;
	}
	report();
	fflush(stdout);
	for (i = 0; i < nconns; i++)
		if (conns[i].fd != -1)
			conn_close(&conns[i]);
	return 0;
}
