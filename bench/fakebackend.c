/*
 * fakebackend: a fast fake IMAP and POP3 mailbox server for measuring a
 * proxy's own cost, plus an optional nginx auth_http responder.
 *
 * One thread, epoll, non-blocking sockets, 127.0.0.1 only (or -b).  Any
 * user and password are accepted.  IMAP: CAPABILITY, ID, LOGIN (quoted,
 * atoms, synchronising and non-synchronising literals), AUTHENTICATE
 * PLAIN (with or without SASL-IR), NOOP, SELECT/EXAMINE, FETCH of message
 * 1 (served from memory with large writes), IDLE, LOGOUT (closes at
 * once).  POP3: CAPA, USER, PASS, AUTH PLAIN, XCLIENT, NOOP, STAT, LIST,
 * RETR 1, QUIT.  The auth_http responder answers every request with
 * Auth-Status: OK, Auth-Server: 127.0.0.1 and the port named by the
 * request's X-Auth-Port header (set per server block in nginx with
 * auth_http_header), else the -P default; with -k k, that port plus 0 to
 * k - 1 in turn (one backend process cannot hold 100,000 sessions where
 * a process may have only 20,000 descriptors).
 *
 * With -w it is also a web server for HTTP proxies: HTTP/1.1, keep-alive
 * and pipelining; a request for any path answers 200 with a fixed
 * 100-byte body, except a path containing /big/N, which answers N bytes
 * (the message body, repeated as often as needed); every answer names the
 * web port in X-Backend.  A request body announced by
 * Content-Length is read and dropped; chunked request bodies are not
 * supported.  HTTP/1.0 or Connection: close closes after the answer.
 *
 *	fakebackend [-b addr] [-i imap-port] [-p pop3-port] [-H http-port]
 *	    [-P auth-port] [-w web-port] [-s message-bytes] [-q]
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define INBUF_SIZE  4096
#define MAX_EVENTS  256
#define NOFILE_WANT (1 << 18)

#define IMAP_CAPS "IMAP4rev1 ID SASL-IR AUTH=PLAIN LITERAL+ IDLE ENABLE UIDPLUS"

enum kind { K_LISTEN, K_IMAP, K_POP3, K_HTTP, K_WEB };

enum cstate {
	C_CMD,	  /* reading command lines */
	C_AUTH,	  /* waiting for a SASL response line */
	C_IDLE,	  /* IMAP IDLE: waiting for DONE */
	C_HTTP,	  /* reading an HTTP request head */
	C_CLOSING /* flush, then close */
};

struct conn {
	enum kind kind;
	enum kind lkind; /* listeners: what they accept */
	int fd;
	enum cstate state;
	char tag[64];	 /* IMAP: tag of a pending AUTHENTICATE/IDLE */
	int first_line;	 /* IMAP: next line starts a new command */
	char cmdtag[64]; /* IMAP: tag of the command being read */
	char cmd[32];	 /* IMAP: its name, upper case */
	char arg1[32];	 /* IMAP: its first argument, upper case */
	size_t skip;	 /* IMAP: literal bytes still to skip; web: body */
	char in[INBUF_SIZE];
	size_t inlen;
	char *out; /* small replies, then the big body, then tail */
	size_t outlen, outoff, outcap;
	const char *big; /* the message body, repeated up to biglen */
	size_t biglen, bigoff;
	char *tail;
	size_t taillen, tailoff, tailcap;
	int writing; /* waiting for EPOLLOUT */
};

static int epfd;
static int quiet;
static char *body;
static size_t bodylen;
static unsigned int auth_default_port;
static unsigned int auth_spread = 1; /* -k: ports port .. port + k - 1 */
static volatile sig_atomic_t stop;
static unsigned long long n_logins, n_fetches, n_conns, n_open;
static unsigned long long n_requests;
static struct conn *listeners[4];
static int nlisteners, listeners_paused;

static void conn_close(struct conn *);
static void conn_process(struct conn *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: fakebackend [-b addr] [-i imap-port] [-p pop3-port] "
	    "[-H http-port]\n"
	    "                   [-P auth-port] [-k auth-ports] [-w web-port]\n"
	    "                   [-s message-bytes] [-q]\n");
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
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

/* An RFC 5322 message of size bytes, CRLF lines, no leading dots. */
static void
make_body(size_t size)
{
	static const char head[] = "From: bench@example.org\r\n"
				   "To: bench@example.org\r\n"
				   "Subject: fakebackend message\r\n"
				   "Message-ID: <1@fakebackend>\r\n\r\n";
	size_t off, hl = sizeof(head) - 1, i, k, left;
	unsigned int x = 12345;

	if (size < hl + 2)
		size = hl + 2;
	if ((body = malloc(size)) == NULL)
		err(1, "malloc");
	memcpy(body, head, hl);
	for (off = hl; off < size;) {
		/* up to 72 letters and CRLF; never leave a single byte */
		left = size - off;
		k = left - 2 < 72 ? left - 2 : 72;
		if (left - k - 2 == 1)
			k--;
		for (i = 0; i < k; i++) {
			x = x * 1103515245 + 12345;
			body[off++] = 'A' + (x >> 16) % 26;
		}
		body[off++] = '\r';
		body[off++] = '\n';
	}
	bodylen = size;
}

static int
listen_on(const char *addr, unsigned int port, enum kind kind)
{
	struct sockaddr_in sin;
	struct epoll_event ev;
	struct conn *c;
	int fd, on = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		errx(1, "bad address %s", addr);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		 0)) == -1)
		err(1, "socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		err(1, "SO_REUSEADDR");
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "bind %s:%u", addr, port);
	if (listen(fd, 4096) == -1)
		err(1, "listen");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		err(1, "calloc");
	c->kind = K_LISTEN;
	c->lkind = kind;
	c->fd = fd;
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		err(1, "epoll_ctl");
	listeners[nlisteners++] = c;
	return fd;
}

static void
listeners_pause(int pause)
{
	struct epoll_event ev;
	int i;

	if (pause == listeners_paused)
		return;
	listeners_paused = pause;
	for (i = 0; i < nlisteners; i++) {
		ev.events = pause ? 0 : EPOLLIN;
		ev.data.ptr = listeners[i];
		(void)epoll_ctl(epfd, EPOLL_CTL_MOD, listeners[i]->fd, &ev);
	}
}

static void
grow(char **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 256;
	char *n;

	if (need <= *cap)
		return;
	while (ncap < need)
		ncap *= 2;
	if ((n = realloc(*buf, ncap)) == NULL)
		err(1, "realloc");
	*buf = n;
	*cap = ncap;
}

/* Queue text: before the big body if none is queued yet, else after it. */
static void __attribute__((format(printf, 2, 3)))
reply(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	char **buf;
	size_t *len, *cap;
	int n;

	if (c->big == NULL) {
		buf = &c->out, len = &c->outlen, cap = &c->outcap;
	} else {
		buf = &c->tail, len = &c->taillen, cap = &c->tailcap;
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		errx(1, "vsnprintf");
	grow(buf, cap, *len + n + 1);
	va_start(ap, fmt);
	vsnprintf(*buf + *len, n + 1, fmt, ap);
	va_end(ap);
	*len += n;
}

static int
pending(struct conn *c)
{
	return c->outoff < c->outlen || c->bigoff < c->biglen ||
	    c->tailoff < c->taillen;
}

static void
set_events(struct conn *c, uint32_t events)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		warn("epoll_ctl mod");
}

/* Write what is queued.  Returns 0 when all is sent, 1 if blocked, -1. */
static int
flush_out(struct conn *c)
{
	struct iovec iov[3];
	ssize_t n;
	size_t k;
	int cnt;

	while (pending(c)) {
		cnt = 0;
		if (c->outoff < c->outlen) {
			iov[cnt].iov_base = c->out + c->outoff;
			iov[cnt++].iov_len = c->outlen - c->outoff;
		}
		if (c->bigoff < c->biglen) {
			/* from the body, wrapping round for a longer answer */
			size_t at = c->bigoff % bodylen, m = bodylen - at;

			if (m > c->biglen - c->bigoff)
				m = c->biglen - c->bigoff;
			iov[cnt].iov_base = (char *)c->big + at;
			iov[cnt++].iov_len = m;
		}
		/* the tail only once the body's last piece is in this write */
		if (c->tailoff < c->taillen &&
		    (c->bigoff >= c->biglen ||
			iov[cnt - 1].iov_len == c->biglen - c->bigoff)) {
			iov[cnt].iov_base = c->tail + c->tailoff;
			iov[cnt++].iov_len = c->taillen - c->tailoff;
		}
		n = writev(c->fd, iov, cnt);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -1;
		}
		k = n;
		if (c->outoff < c->outlen) {
			size_t m = c->outlen - c->outoff;

			m = m < k ? m : k;
			c->outoff += m;
			k -= m;
		}
		if (c->bigoff < c->biglen) {
			size_t m = c->biglen - c->bigoff;

			m = m < k ? m : k;
			c->bigoff += m;
			k -= m;
		}
		c->tailoff += k;
	}
	c->outlen = c->outoff = 0;
	c->big = NULL;
	c->biglen = c->bigoff = 0;
	c->taillen = c->tailoff = 0;
	return 0;
}

static void
want_write(struct conn *c, int on)
{
	if (c->writing == on)
		return;
	c->writing = on;
	set_events(c, on ? EPOLLOUT : EPOLLIN);
}

static void
upcase_word(char *dst, size_t dstsz, const char **pp)
{
	const char *p = *pp;
	size_t o = 0;

	while (*p == ' ')
		p++;
	while (*p != '\0' && *p != ' ' && *p != '\r' && *p != '\n') {
		if (o + 1 < dstsz)
			dst[o++] = toupper((unsigned char)*p);
		p++;
	}
	dst[o] = '\0';
	*pp = p;
}

/* IMAP: the whole command (literals skipped) has been read. */
static void
imap_command(struct conn *c, const char *rest)
{
	const char *t = c->cmdtag, *cmd = c->cmd;

	if (strcmp(cmd, "CAPABILITY") == 0) {
		reply(c, "* CAPABILITY " IMAP_CAPS "\r\n%s OK done\r\n", t);
	} else if (strcmp(cmd, "ID") == 0) {
		reply(c, "* ID (\"name\" \"fakebackend\")\r\n%s OK ID done\r\n",
		    t);
	} else if (strcmp(cmd, "NOOP") == 0 || strcmp(cmd, "CHECK") == 0 ||
	    strcmp(cmd, "ENABLE") == 0) {
		reply(c, "%s OK %s done\r\n", t, cmd);
	} else if (strcmp(cmd, "LOGIN") == 0) {
		n_logins++;
		reply(c, "%s OK [CAPABILITY " IMAP_CAPS "] Logged in\r\n", t);
	} else if (strcmp(cmd, "AUTHENTICATE") == 0) {
		char mech[32], ir[8];
		const char *p = rest;

		upcase_word(mech, sizeof(mech), &p);
		upcase_word(ir, sizeof(ir), &p);
		if (strcmp(mech, "PLAIN") != 0) {
			reply(c, "%s NO Unsupported mechanism\r\n", t);
		} else if (ir[0] != '\0') {
			n_logins++;
			reply(c,
			    "%s OK [CAPABILITY " IMAP_CAPS "] Logged in\r\n",
			    t);
		} else {
			snprintf(c->tag, sizeof(c->tag), "%s", t);
			c->state = C_AUTH;
			reply(c, "+ \r\n");
		}
	} else if (strcmp(cmd, "SELECT") == 0 || strcmp(cmd, "EXAMINE") == 0) {
		reply(c,
		    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
		    "\\Draft)\r\n"
		    "* 1 EXISTS\r\n* 0 RECENT\r\n"
		    "* OK [UIDVALIDITY 1] UIDs valid\r\n"
		    "* OK [UIDNEXT 2] Predicted next UID\r\n"
		    "%s OK [%s] %s completed\r\n",
		    t, cmd[0] == 'S' ? "READ-WRITE" : "READ-ONLY", cmd);
	} else if (strcmp(cmd, "FETCH") == 0 ||
	    (strcmp(cmd, "UID") == 0 && strcmp(c->arg1, "FETCH") == 0)) {
		n_fetches++;
		reply(c, "* 1 FETCH (%sBODY[] {%zu}\r\n",
		    cmd[0] == 'U' ? "UID 1 " : "", bodylen);
		c->big = body;
		c->biglen = bodylen;
		c->bigoff = 0;
		reply(c, ")\r\n%s OK FETCH completed\r\n", t);
	} else if (strcmp(cmd, "IDLE") == 0) {
		snprintf(c->tag, sizeof(c->tag), "%s", t);
		c->state = C_IDLE;
		reply(c, "+ idling\r\n");
	} else if (strcmp(cmd, "LOGOUT") == 0) {
		reply(c, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", t);
		c->state = C_CLOSING;
	} else {
		reply(c, "%s BAD Unknown command\r\n", t);
	}
}

/*
 * One IMAP line (without CRLF).  A line ending in {n} or {n+} announces
 * a literal: for {n} the client waits for a continuation.  The literal's
 * bytes are skipped (any user and password do) and the command goes on
 * with the next line.
 */
static void
imap_line(struct conn *c, char *line, size_t len)
{
	const char *p = line, *q;
	size_t n = 0;
	char *brace;
	int sync = 1, started = 0;

	if (c->state == C_AUTH) {
		c->state = C_CMD;
		if (len == 1 && line[0] == '*') {
			reply(c, "%s BAD Cancelled\r\n", c->tag);
		} else {
			n_logins++;
			reply(c,
			    "%s OK [CAPABILITY " IMAP_CAPS "] Logged in\r\n",
			    c->tag);
		}
		return;
	}
	if (c->state == C_IDLE) {
		c->state = C_CMD;
		reply(c, "%s OK IDLE terminated\r\n", c->tag);
		return;
	}
	if (c->first_line) {
		size_t tl = strcspn(line, " ");

		snprintf(c->cmdtag, sizeof(c->cmdtag), "%.*s", (int)tl, line);
		p = line + tl;
		upcase_word(c->cmd, sizeof(c->cmd), &p);
		q = p;
		upcase_word(c->arg1, sizeof(c->arg1), &q);
		started = 1;
		c->first_line = 0;
	}
	/* a literal announced at the end of the line? */
	if (len >= 3 && line[len - 1] == '}' &&
	    (brace = memrchr(line, '{', len)) != NULL) {
		char *d = brace + 1;

		while (isdigit((unsigned char)*d))
			n = n * 10 + (*d++ - '0');
		if (*d == '+') {
			sync = 0;
			d++;
		}
		if (d == line + len - 1 && d > brace + 1 + !sync) {
			c->skip = n;
			if (sync)
				reply(c, "+ OK\r\n");
			return;
		}
	}
	c->first_line = 1;
	imap_command(c, started ? p : "");
}

static void
pop3_line(struct conn *c, char *line)
{
	char cmd[16];
	const char *p = line;

	if (c->state == C_AUTH) {
		c->state = C_CMD;
		if (strcmp(line, "*") == 0) {
			reply(c, "-ERR Cancelled\r\n");
		} else {
			n_logins++;
			reply(c, "+OK Logged in.\r\n");
		}
		return;
	}
	upcase_word(cmd, sizeof(cmd), &p);
	if (strcmp(cmd, "CAPA") == 0) {
		reply(c,
		    "+OK\r\nTOP\r\nUSER\r\nSASL PLAIN\r\nPIPELINING\r\n"
		    "UIDL\r\n.\r\n");
	} else if (strcmp(cmd, "USER") == 0) {
		reply(c, "+OK\r\n");
	} else if (strcmp(cmd, "PASS") == 0) {
		n_logins++;
		reply(c, "+OK Logged in.\r\n");
	} else if (strcmp(cmd, "AUTH") == 0) {
		char mech[16], ir[8];

		upcase_word(mech, sizeof(mech), &p);
		upcase_word(ir, sizeof(ir), &p);
		if (strcmp(mech, "PLAIN") != 0) {
			reply(c, "-ERR Unsupported mechanism\r\n");
		} else if (ir[0] != '\0' && strcmp(ir, "=") != 0) {
			n_logins++;
			reply(c, "+OK Logged in.\r\n");
		} else {
			c->state = C_AUTH;
			reply(c, "+ \r\n");
		}
	} else if (strcmp(cmd, "XCLIENT") == 0 || strcmp(cmd, "NOOP") == 0 ||
	    strcmp(cmd, "RSET") == 0 || strcmp(cmd, "DELE") == 0) {
		reply(c, "+OK\r\n");
	} else if (strcmp(cmd, "STAT") == 0) {
		reply(c, "+OK 1 %zu\r\n", bodylen);
	} else if (strcmp(cmd, "LIST") == 0) {
		reply(c, "+OK 1 messages\r\n1 %zu\r\n.\r\n", bodylen);
	} else if (strcmp(cmd, "UIDL") == 0) {
		reply(c, "+OK\r\n1 fake1\r\n.\r\n");
	} else if (strcmp(cmd, "RETR") == 0) {
		n_fetches++;
		reply(c, "+OK %zu octets\r\n", bodylen);
		c->big = body;
		c->biglen = bodylen;
		c->bigoff = 0;
		reply(c, ".\r\n");
	} else if (strcmp(cmd, "QUIT") == 0) {
		reply(c, "+OK Logging out.\r\n");
		c->state = C_CLOSING;
	} else {
		reply(c, "-ERR Unknown command\r\n");
	}
}

static const char *
header_value(const char *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p;

	for (p = head; (p = strchr(p, '\n')) != NULL;) {
		p++;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	}
	return NULL;
}

/* The nginx auth_http answer: always OK, to 127.0.0.1:<port>. */
static void
http_request(struct conn *c)
{
	const char *v;
	unsigned int port = auth_default_port;

	c->in[c->inlen < sizeof(c->in) ? c->inlen : sizeof(c->in) - 1] = '\0';
	if ((v = header_value(c->in, "X-Auth-Port")) != NULL)
		port = (unsigned int)strtoul(v, NULL, 10);
	/* in turn over several backends, each within its descriptor limit */
	port += n_logins % auth_spread;
	n_logins++;
	if (port == 0 || port > 65535)
		reply(c, "HTTP/1.0 200 OK\r\nAuth-Status: no port\r\n\r\n");
	else
		reply(c,
		    "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
		    "Auth-Server: 127.0.0.1\r\nAuth-Port: %u\r\n\r\n",
		    port);
	c->state = C_CLOSING;
	c->inlen = 0;
}

/* Queue len bytes before the big body, without formatting. */
static void
append(struct conn *c, const char *buf, size_t len)
{
	grow(&c->out, &c->outcap, c->outlen + len);
	memcpy(c->out + c->outlen, buf, len);
	c->outlen += len;
}

#define WEB_SMALL                                                   \
	"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU" \
	"VWXYZ0123456789abcdefghijklmnopqrstuvwxyz.\n"
#define WEB_HEAD                                     \
	"HTTP/1.1 200 OK\r\nServer: fakebackend\r\n" \
	"X-Backend: %u\r\nContent-Type: text/plain\r\n"
#define WEB_CLOSE "Connection: close\r\n"
#define WEB_ERROR(status) \
	"HTTP/1.1 " status "\r\nContent-Length: 0\r\n" WEB_CLOSE "\r\n"

/* The answers to GET /x, with the -w port in X-Backend, made once. */
static char web_small_ka[384], web_small_close[384];
static size_t web_small_ka_len, web_small_close_len;
static unsigned int web_port;

static void
web_init(void)
{
	web_small_ka_len = snprintf(web_small_ka, sizeof(web_small_ka),
	    WEB_HEAD "Content-Length: 100\r\n\r\n" WEB_SMALL, web_port);
	web_small_close_len = snprintf(web_small_close, sizeof(web_small_close),
	    WEB_HEAD "Content-Length: 100\r\n" WEB_CLOSE "\r\n" WEB_SMALL,
	    web_port);
}

/* Does a field value (up to its CR) name the token, comma-separated? */
static int
has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);

	while (*v != '\0' && *v != '\r' && *v != '\n') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, token, tl) == 0 &&
		    strchr(" \t,\r\n", v[tl]) != NULL)
			return 1;
		while (*v != '\0' && *v != ',' && *v != '\r' && *v != '\n')
			v++;
	}
	return 0;
}

/*
 * The web server: one request head (or a piece of a request body to
 * drop) from the input.  Returns 0 when the input holds nothing
 * complete.
 */
static int
web_take(struct conn *c)
{
	static const char too_large[] = WEB_ERROR("431 Too Large");
	static const char no_chunks[] = WEB_ERROR("501 No Chunks");
	const char *end, *eol, *v, *sp, *big;
	size_t used, len;
	int close_after;

	if (c->inlen == 0)
		return 0;
	if (c->skip > 0) {
		used = c->skip < c->inlen ? c->skip : c->inlen;
		c->skip -= used;
		goto consume;
	}
	if ((end = memmem(c->in, c->inlen, "\r\n\r\n", 4)) == NULL) {
		if (c->inlen < sizeof(c->in))
			return 0;
		append(c, too_large, sizeof(too_large) - 1);
		c->state = C_CLOSING;
		return 1;
	}
	used = end + 4 - c->in;
	c->in[used - 2] = '\0'; /* the head's fields, each after an LF */
	n_requests++;
	/* request line: method SP target SP HTTP/1.x */
	eol = strstr(c->in, "\r\n");
	if (eol == NULL)
		eol = c->in + strlen(c->in);
	sp = memchr(c->in, ' ', eol - c->in);
	close_after = sp == NULL || eol - c->in < 9 ||
	    memcmp(eol - 9, " HTTP/1.0", 9) == 0;
	if ((v = header_value(c->in, "Connection")) != NULL) {
		if (has_token(v, "close"))
			close_after = 1;
		else if (has_token(v, "keep-alive"))
			close_after = 0;
	}
	if (header_value(c->in, "Transfer-Encoding") != NULL) {
		append(c, no_chunks, sizeof(no_chunks) - 1);
		c->state = C_CLOSING;
		return 1;
	}
	if ((v = header_value(c->in, "Content-Length")) != NULL)
		c->skip = (size_t)strtoull(v, NULL, 10);
	big = NULL;
	if (sp != NULL && (big = strstr(sp + 1, "/big/")) != NULL &&
	    ((v = memchr(sp + 1, ' ', eol - sp - 1)) == NULL || big > v))
		big = NULL; /* not in the target */
	if (big != NULL) {
		len = (size_t)strtoull(big + 5, NULL, 10);
		n_fetches++;
		reply(c, WEB_HEAD "Content-Length: %zu\r\n%s\r\n", web_port,
		    len, close_after ? WEB_CLOSE : "");
		if (len > 0) {
			c->big = body;
			c->biglen = len;
			c->bigoff = 0;
		}
	} else if (close_after) {
		append(c, web_small_close, web_small_close_len);
	} else {
		append(c, web_small_ka, web_small_ka_len);
	}
	if (close_after)
		c->state = C_CLOSING;
consume:
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	return 1;
}

/*
 * Take one command (or a piece of a literal) from the input.  Returns 0
 * when the input holds nothing complete.
 */
static int
take_one(struct conn *c)
{
	char *nl;
	size_t used, len;

	if (c->kind == K_WEB)
		return web_take(c);
	if (c->kind == K_HTTP) {
		if (memmem(c->in, c->inlen, "\r\n\r\n", 4) != NULL ||
		    memmem(c->in, c->inlen, "\n\n", 2) != NULL) {
			http_request(c);
			return 1;
		}
		if (c->inlen == sizeof(c->in)) {
			c->state = C_CLOSING;
			return 1;
		}
		return 0;
	}
	if (c->inlen == 0)
		return 0;
	if (c->skip > 0) {
		used = c->skip < c->inlen ? c->skip : c->inlen;
		c->skip -= used;
	} else if ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
		used = nl - c->in + 1;
		len = used - 1;
		if (len > 0 && c->in[len - 1] == '\r')
			len--;
		c->in[len] = '\0';
		if (c->kind == K_IMAP)
			imap_line(c, c->in, len);
		else
			pop3_line(c, c->in);
	} else if (c->inlen == sizeof(c->in)) {
		reply(c,
		    c->kind == K_IMAP ? "* BYE Line too long\r\n"
				      : "-ERR Line too long\r\n");
		c->state = C_CLOSING;
		return 1;
	} else {
		return 0;
	}
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	return 1;
}

/*
 * Answer commands one at a time: each answer goes out before the next
 * command is looked at, so a client that does not read stops being read.
 */
static void
conn_process(struct conn *c)
{
	int rv;

	for (;;) {
		if (pending(c) || c->state == C_CLOSING) {
			if ((rv = flush_out(c)) == -1) {
				conn_close(c);
				return;
			}
			if (rv == 1) {
				want_write(c, 1);
				return;
			}
			if (c->state == C_CLOSING) {
				conn_close(c);
				return;
			}
		}
		if (!take_one(c))
			break;
	}
	want_write(c, 0);
}

static void
conn_read(struct conn *c)
{
	ssize_t n;

	if (c->inlen == sizeof(c->in)) {
		conn_process(c);
		return;
	}
	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	if (n == 0) {
		conn_close(c);
		return;
	}
	c->inlen += n;
	conn_process(c);
}

static void
conn_close(struct conn *c)
{
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	free(c->tail);
	free(c);
	n_open--;
	listeners_pause(0);
}

static void
do_accept(struct conn *l)
{
	struct epoll_event ev;
	struct conn *c;
	int fd, on = 1;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* resumes when a connection closes */
				if (!quiet)
					warn("accept");
				listeners_pause(1);
			}
			return;
		}
		if (l->lkind != K_HTTP)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
			    sizeof(on));
		if ((c = calloc(1, sizeof(*c))) == NULL)
			err(1, "calloc");
		c->kind = l->lkind;
		c->fd = fd;
		c->first_line = 1;
		c->state = c->kind == K_HTTP ? C_HTTP : C_CMD;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
			err(1, "epoll_ctl add");
		n_conns++;
		n_open++;
		if (c->kind == K_IMAP)
			reply(c,
			    "* OK [CAPABILITY " IMAP_CAPS "] fakebackend "
			    "ready\r\n");
		else if (c->kind == K_POP3)
			reply(c, "+OK fakebackend ready\r\n");
		conn_process(c);
	}
}

int
main(int argc, char *argv[])
{
	struct epoll_event evs[MAX_EVENTS];
	struct sigaction sa;
	const char *addr = "127.0.0.1";
	unsigned int imap_port = 0, pop3_port = 0, http_port = 0;
	size_t size = 16 << 20;
	int ch, i, n;

	while ((ch = getopt(argc, argv, "b:H:i:k:p:P:qs:w:")) != -1) {
		switch (ch) {
		case 'b':
			addr = optarg;
			break;
		case 'H':
			http_port = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			imap_port = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			pop3_port = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			auth_spread = (unsigned int)strtoul(optarg, NULL, 10);
			if (auth_spread == 0 || auth_spread > 64)
				usage();
			break;
		case 'P':
			auth_default_port =
			    (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			quiet = 1;
			break;
		case 's':
			size = (size_t)strtoull(optarg, NULL, 10);
			break;
		case 'w':
			web_port = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (imap_port == 0 && pop3_port == 0 && http_port == 0 && web_port == 0)
		usage();
	raise_nofile();
	make_body(size);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	if (imap_port)
		listen_on(addr, imap_port, K_IMAP);
	if (pop3_port)
		listen_on(addr, pop3_port, K_POP3);
	if (http_port)
		listen_on(addr, http_port, K_HTTP);
	if (web_port) {
		web_init();
		listen_on(addr, web_port, K_WEB);
	}
	if (!quiet)
		fprintf(stderr, "fakebackend: ready (message %zu bytes)\n",
		    bodylen);
	while (!stop) {
		n = epoll_wait(epfd, evs, MAX_EVENTS, 1000);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->kind == K_LISTEN) {
				do_accept(c);
			} else if (c->writing) {
				conn_process(c);
			} else {
				conn_read(c);
			}
		}
	}
	if (!quiet)
		fprintf(stderr,
		    "fakebackend: %llu connections, %llu logins, %llu "
		    "fetches, %llu web requests, %llu open at exit\n",
		    n_conns, n_logins, n_fetches, n_requests, n_open);
	return 0;
}
