/*
 * relay: receives login requests (with the client socket) from authproc,
 * connects to the user's upstream, logs in, and on success takes the
 * session over and relays it.  On failure it closes its copy of the
 * client socket and tells authproc, which still holds the session.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>
#include <event2/buffer.h>

#include "log.h"
#include "mcache.h"
#include "policy.h"
#include "proc.h"
#include "proxyproto.h"
#include "relay.h"
#include "sandbox.h"

struct conf_global relay_conf;
static struct imsgev parent_iev;
static struct imsgev *authproc_iev;
static uint64_t authproc_gen; /* counts authproc channels */
static struct rsession_list rsessions = TAILQ_HEAD_INITIALIZER(rsessions);
static int sandboxed;
static int draining; /* a reload: finish, then exit */
static int have_sandbox;
static struct conf_sandbox sandbox_conf;
static struct conf_tls_global tls_conf;
static struct conf_memcache memcache_conf;
static struct event_base *relay_base;

static void rlogin_free(struct rsession *);
static void rsession_flush(struct rsession *);
static void upstream_io(int, short, void *);
static void rsession_bridge_done(struct tlsbridge *, void *);

static void rsession_connect_next(struct rsession *);
static void upstream_set_events(struct rsession *, short);
static int upstream_write(struct rsession *);
static void rsession_reset_upstream(struct rsession *);

static const struct relay_engine *const engines[] = {
    &relay_imap_engine,
    &relay_pop3_engine,
    &relay_http_engine,
};

const struct relay_engine *
relay_engine_find(uint32_t proto)
{
	size_t i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (engines[i]->proto == proto)
			return engines[i];
	return NULL;
}

/*
 * Before the credentials went out, a pool's next member may still get
 * the login; after a refusal on a cached route, the cache entry goes
 * and the handlers are asked once more.  Returns 1 if the attempt goes
 * on elsewhere.
 */
static int
rsession_try_elsewhere(struct rsession *rs, uint32_t status, const char *text)
{
	char addr[128];

	if (status == LOGIN_TEMPFAIL && rs->lg->pool != NULL &&
	    !rs->lg->unsendable &&
	    (rs->state == R_CONNECTING || rs->state == R_TLS_HANDSHAKE ||
		rs->state == R_GREETING)) {
		pool_failed(rs->lg->pool, rs->lg->member, wallclock_ms());
		if (!pool_has_untried(rs->lg->pool, rs->lg->req.proto,
			rs->lg->tried))
			return 0;
		log_info("session %016llx: upstream %s (%s): %s; trying the "
			 "pool's next",
		    (unsigned long long)rs->sid, rs->lg->upstream->conf.name,
		    sockaddr_str(&rs->lg->uaddr, addr, sizeof(addr)), text);
		rsession_reset_upstream(rs);
		rsession_connect_next(rs);
		return 1;
	}
	if (status == LOGIN_FAILED && rs->lg->route_src == ROUTE_SRC_CACHE &&
	    !rs->lg->relooked) {
		/* the account may have moved: forget, ask again, once */
		lookup_forget(rs);
		rs->lg->relooked = 1;
		rs->lg->failed_addr = rs->lg->uaddr;
		upstream_text(rs->lg->refusal, sizeof(rs->lg->refusal), text,
		    strlen(text));
		rsession_reset_upstream(rs);
		rs->lg->handlers_tried = 0;
		rsession_arm_login_timer(rs);
		lookup_route(rs);
		return 1;
	}
	return 0;
}

static void
rsession_report(struct rsession *rs, uint32_t status, const char *text)
{
	struct login_result res;

	memset(&res, 0, sizeof(res));
	res.status = status;
	upstream_text(res.text, sizeof(res.text), text, strlen(text));
	rsession_tell_authproc(rs, IMSG_LOGIN_RESULT, &res, sizeof(res));
}

/* To the parent, which writes the audit log. */
void
relay_send_audit(const struct audit_record *a)
{
	imsgev_compose(&parent_iev, IMSG_AUDIT, 0, -1, a, sizeof(*a));
}

void
relay_send_access(const struct access_record *a)
{
	imsgev_compose(&parent_iev, IMSG_ACCESS, 0, -1, a, sizeof(*a));
}

/* The audit record for an attempt that reached relay. */
static void
rsession_audit(struct rsession *rs, uint32_t status, const char *text)
{
	struct audit_record a;
	uint64_t now = wallclock_ms();

	if (rs->lg->req.proto < CTL_PROTO_SLOTS)
		proc_stats
		    .attempts[rs->lg->req.proto][status == LOGIN_OK ? AUDIT_OK
			    : status == LOGIN_FAILED ? AUDIT_BAD_CREDENTIALS
			    : status == LOGIN_CLIENT_GONE
			    ? AUDIT_ABORTED
			    : AUDIT_UPSTREAM_UNAVAILABLE]++;
	if (!relay_conf.audit)
		return;
	memset(&a, 0, sizeof(a));
	a.time_ms = now;
	a.sid = rs->sid;
	a.duration_ms = rs->lg->req.start_ms && now > rs->lg->req.start_ms
	    ? now - rs->lg->req.start_ms
	    : 0;
	a.listener_id = rs->lg->req.listener_id;
	a.proto = rs->lg->req.proto;
	switch (status) {
	case LOGIN_OK:
		a.result = AUDIT_OK;
		break;
	case LOGIN_FAILED:
		a.result = AUDIT_BAD_CREDENTIALS;
		break;
	case LOGIN_CLIENT_GONE:
		a.result = AUDIT_ABORTED;
		break;
	default:
		a.result = AUDIT_UPSTREAM_UNAVAILABLE;
	}
	a.tls = rs->lg->req.tls;
	a.facts = rs->lg->req.facts;
	a.client = rs->lg->req.client;
	memcpy(a.user, rs->lg->req.user, sizeof(a.user));
	snprintf(a.mech, sizeof(a.mech), "%s",
	    login_mech_name(rs->lg->req.mech));
	upstream_text(a.reason, sizeof(a.reason), text, strlen(text));
	if (rs->lg->upstream != NULL)
		snprintf(a.upstream, sizeof(a.upstream), "%s",
		    rs->lg->upstream->conf.name);
	imsgev_compose(&parent_iev, IMSG_AUDIT, 0, -1, &a, sizeof(a));
}

/*
 * The upstream login is over.  On success relay keeps the session and
 * starts moving bytes; otherwise the client goes back to authproc.
 */
/*
 * The login is the client's problem, not the upstream's (a method it
 * does not offer, fields too long to send): no pool member is to blame,
 * or any client could mark members down.
 */
void
rsession_login_unsendable(struct rsession *rs, const char *text)
{
	rs->lg->unsendable = 1;
	rsession_login_done(rs, LOGIN_TEMPFAIL, text);
}

void
rsession_login_done(struct rsession *rs, uint32_t status, const char *text)
{
	char addr[128], uaddr[128];
	size_t left;

	if (rsession_try_elsewhere(rs, status, text))
		return;
	if (rs->lg->engine->failed != NULL) {
		/*
		 * No login here: the protocol answers the client itself, and
		 * the session lives on meanwhile, so the failed upstream's
		 * events must not fire again.
		 */
		char why[TEXT_MAX_LEN + 1];

		/* text may be the TLS context's, which the reset frees */
		snprintf(why, sizeof(why), "%s", text);
		rsession_reset_upstream(rs);
		rs->lg->engine->failed(rs, status, why);
		return;
	}
	if (rs->lg->pool != NULL && status == LOGIN_OK)
		pool_succeeded(rs->lg->pool, rs->lg->member);
	if (status == LOGIN_FAILED && relay_policy.shared)
		counter_failure(&rs->lg->req);
	evtimer_del(&rs->lg->timer);
	explicit_bzero(rs->lg->req.pass, sizeof(rs->lg->req.pass));
	/* on success text is the upstream's OK line, for the client */
	rsession_audit(rs, status, status == LOGIN_OK ? "" : text);
	sockaddr_str(&rs->lg->req.client, addr, sizeof(addr));
	sockaddr_str(&rs->lg->uaddr, uaddr, sizeof(uaddr));
	if (status != LOGIN_OK) {
		log_info("session %016llx: %s login from %s to %s (%s) failed: "
			 "%s",
		    (unsigned long long)rs->sid,
		    mail_proto_name(rs->lg->req.proto), addr,
		    rs->lg->upstream ? rs->lg->upstream->conf.name : "-", uaddr,
		    text);
		rsession_report(rs, status, text);
		rsession_free(rs);
		return;
	}
	log_info("session %016llx: %s login from %s relayed to %s (%s)",
	    (unsigned long long)rs->sid, mail_proto_name(rs->lg->req.proto),
	    addr, rs->lg->upstream->conf.name, uaddr);
	/* the upstream may have said more right behind its OK */
	left = evbuffer_get_length(rs->lg->uin);
	{
		unsigned char *extra = evbuffer_pullup(rs->lg->uin, -1);
		size_t oklen = strlen(text);
		unsigned char *toclient;

		if ((toclient = malloc(oklen + left + 1)) == NULL) {
			rsession_report(rs, LOGIN_TEMPFAIL, "out of memory");
			rsession_free(rs);
			return;
		}
		memcpy(toclient, text, oklen);
		if (left)
			memcpy(toclient + oklen, extra, left);
		if (rs->utls != NULL) {
			/* TLS upstream: no splice, the bridge encrypts */
			upstream_set_events(rs, 0);
			if ((rs->bridge = calloc(1, sizeof(*rs->bridge))) ==
			    NULL)
				fatal("calloc");
			/* a client's half-close must not cut the replies */
			rs->bridge->plain_half_close = 1;
			rs->bridge->upstream_net = 1;
			rs->bridge->linger_sec = relay_conf.timeout_linger;
			rs->bridge->stall_sec = relay_conf.timeout_stall;
			if (tlsbridge_start(rs->bridge, rs->utls, rs->ufd,
				rs->cfd, rs->lg->pipelined, rs->lg->pipelen,
				toclient, oklen + left, rsession_bridge_done,
				rs) == -1) {
				free(toclient);
				rsession_report(rs, LOGIN_TEMPFAIL,
				    "cannot start relaying");
				rsession_free(rs);
				return;
			}
			rs->bridging = 1;
		} else if (splice_start(rs, toclient, oklen + left,
			       rs->lg->pipelined, rs->lg->pipelen) == -1) {
			free(toclient);
			rsession_report(rs, LOGIN_TEMPFAIL,
			    "cannot start relaying");
			rsession_free(rs);
			return;
		} else
			rs->splicing = 1;
		free(toclient);
	}
	rs->state = R_RELAYING;
	rsession_report(rs, LOGIN_OK, "");
	rsession_keep_info(rs);
	rlogin_free(rs);
}

static void
rsession_bridge_done(struct tlsbridge *b, void *arg)
{
	struct rsession *rs = arg;

	if (b->net_lost[0] != '\0')
		relay_log_upstream_lost(rs, b->net_lost);
	switch (b->ended) {
	case TLSBRIDGE_END_PLAIN_STALL:
	case TLSBRIDGE_END_NET_STALL:
		relay_log_stall(rs, b->ended == TLSBRIDGE_END_PLAIN_STALL);
		break;
	case TLSBRIDGE_END_LINGER:
		if (b->net_eof)
			relay_log_linger(rs);
		else
			log_info("session %016llx: upstream silent for %u s "
				 "after the client closed",
			    (unsigned long long)rs->sid,
			    relay_conf.timeout_linger);
		break;
	default:
		break;
	}
	/* the bridge closed both sockets and freed the TLS context */
	rs->bridging = 0;
	rs->utls = NULL;
	rs->cfd = rs->ufd = -1;
	rs->c2u.bytes = rs->bridge->bytes_out;
	rs->u2c.bytes = rs->bridge->bytes_in;
	relay_session_closed(rs);
}

/*
 * A command for the upstream.  The socket almost always takes it at
 * once: write right away and watch for writability only if something
 * is left, which spares two epoll_ctl calls each way per command.
 */
static void
secret_free(const void *data, size_t len, void *arg)
{
	(void)arg;
	explicit_bzero((void *)data, len);
	free((void *)data);
}

void
rsession_send(struct rsession *rs, const char *data, size_t len)
{
	char *copy;

	/*
	 * What goes upstream during a login carries the credentials: each
	 * line is a block of ours that is wiped once sent or dropped, where
	 * the buffer's own memory would be freed as it was.
	 */
	if ((copy = malloc(len)) == NULL)
		fatal("malloc");
	memcpy(copy, data, len);
	if (evbuffer_add_reference(rs->lg->uout, copy, len, secret_free,
		NULL) == -1)
		fatalx("evbuffer_add_reference");
	if (rs->lg->corked)
		return;
	rsession_flush(rs);
}

/*
 * Commands sent between cork and uncork leave in one segment: the
 * upstream reads them at once and answers them at once.
 */
void
rsession_cork(struct rsession *rs)
{
	rs->lg->corked = 1;
}

void
rsession_uncork(struct rsession *rs)
{
	rs->lg->corked = 0;
	if (evbuffer_get_length(rs->lg->uout) > 0)
		rsession_flush(rs);
}

static void
rsession_flush(struct rsession *rs)
{
	if (rs->state != R_CONNECTING && rs->state != R_TLS_HANDSHAKE &&
	    upstream_write(rs) == 0 && evbuffer_get_length(rs->lg->uout) == 0)
		return;
	/* left over, or an error the event handler will meet */
	upstream_set_events(rs, EV_READ | EV_WRITE);
}

void
rsession_printf(struct rsession *rs, const char *fmt, ...)
{
	char buf[UPSTREAM_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		/*
		 * Bounded fields make this unreachable; if it ever happens,
		 * send nothing and let the login timer fail the attempt.
		 */
		log_warnx("session %016llx: upstream command too long",
		    (unsigned long long)rs->sid);
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	rsession_send(rs, buf, n);
	explicit_bzero(buf, sizeof(buf));
}

/* The login is over one way or the other: its state goes. */
static void
rlogin_free(struct rsession *rs)
{
	struct rlogin *lg = rs->lg;

	if (lg == NULL)
		return;
	lookup_cancel(rs);
	if (evtimer_initialized(&lg->wait_ev))
		evtimer_del(&lg->wait_ev);
	/* after splice_start: its read event kept the socket in epoll */
	upstream_set_events(rs, 0);
	if (event_initialized(&lg->timer))
		evtimer_del(&lg->timer);
	if (lg->uin != NULL)
		evbuffer_free(lg->uin);
	if (lg->uout != NULL)
		evbuffer_free(lg->uout);
	if (lg->pipelined != NULL) {
		explicit_bzero(lg->pipelined, lg->pipelen);
		free(lg->pipelined);
	}
	explicit_bzero(lg, sizeof(*lg));
	free(lg);
	rs->lg = NULL;
}

struct rsession_list *
relay_sessions(void)
{
	return &rsessions;
}

/* ---- a reload: a new generation of relays takes the new logins ---- */

int
relay_draining(void)
{
	return draining;
}

/*
 * A draining relay exits once its authproc (draining too) has gone and
 * its last session has ended: until then old pre-auth sessions may
 * still log in through it.
 */
static void
retire_check(void)
{
	if (!draining || !TAILQ_EMPTY(&rsessions) || authproc_iev != NULL)
		return;
	log_info("drained: exiting");
	proc_child_exit();
}

static void
drain(void)
{
	unsigned int n = 0;
	struct rsession *rs;

	draining = 1;
	TAILQ_FOREACH(rs, &rsessions, entry)
	n++;
	log_info("draining: %u sessions", n);
	relay_http_drain();
	retire_check();
}

static void retire_check(void);

void
rsession_free(struct rsession *rs)
{
	rsession_drop_info(rs);
	TAILQ_REMOVE(&rsessions, rs, entry);
	if (rs->hx != NULL)
		relay_http_free(rs);
	rlogin_free(rs);
	if (rs->bridging) {
		tlsbridge_stop(rs->bridge);
		rs->utls = NULL;
		rs->cfd = rs->ufd = -1;
	} else if (rs->splicing)
		splice_stop(rs);
	/* after the bridge's done callback too: it touches nothing later */
	free(rs->bridge);
	if (rs->utls != NULL)
		tls_free(rs->utls);
	if (rs->cfd != -1)
		close(rs->cfd);
	if (rs->ufd != -1)
		close(rs->ufd);
	explicit_bzero(rs, sizeof(*rs));
	free(rs);
	if (draining && TAILQ_EMPTY(&rsessions))
		retire_check();
}

void
relay_log_stall(struct rsession *rs, int client)
{
	log_info("session %016llx: %s took nothing for %u s",
	    (unsigned long long)rs->sid, client ? "client" : "upstream",
	    relay_conf.timeout_stall);
}

void
relay_log_linger(struct rsession *rs)
{
	log_info("session %016llx: client still open %u s after the "
		 "upstream closed",
	    (unsigned long long)rs->sid, relay_conf.timeout_linger);
}

void
relay_log_upstream_lost(struct rsession *rs, const char *why)
{
	log_info("session %016llx: upstream connection lost: %s",
	    (unsigned long long)rs->sid, why);
}

/* Called by splice.c when both directions are done. */
void
relay_session_closed(struct rsession *rs)
{
	char addr[128];

	log_info("session %016llx: closed (%s), %llu bytes up, %llu bytes down",
	    (unsigned long long)rs->sid,
	    sockaddr_str(&rs->client, addr, sizeof(addr)),
	    (unsigned long long)rs->c2u.bytes,
	    (unsigned long long)rs->u2c.bytes);
	rsession_free(rs);
}

static int
upstream_is_connected(struct rsession *rs)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getpeername(rs->ufd, (struct sockaddr *)&ss, &len) == 0;
}

/*
 * A plain upstream is watched only for its greeting, so relay does not
 * see its connect complete.  Both time-outs run from the connect; the
 * timer first fires at the shorter one, and finds out which applies.
 * Returns 1 if the attempt goes on.
 */
static int
plain_connect_timeout(struct rsession *rs)
{
	struct rlogin *lg = rs->lg;
	uint32_t limit;
	struct timeval tv = {0, 0};

	if (upstream_is_connected(rs)) {
		rs->state = R_GREETING;
		limit = relay_conf.timeout_login;
	} else
		limit = relay_conf.timeout_connect;
	if (lg->waited >= limit)
		return 0;
	tv.tv_sec = limit - lg->waited;
	lg->waited = limit;
	evtimer_add(&lg->timer, &tv);
	return 1;
}

static void
upstream_timeout(int fd, short event, void *arg)
{
	struct rsession *rs = arg;

	(void)fd;
	(void)event;
	if (rs->state == R_LOOKUP) {
		lookup_cancel(rs);
		rsession_login_done(rs, LOGIN_TEMPFAIL, "route lookup timeout");
		return;
	}
	if (rs->state == R_CONNECTING && rs->lg->uevents == EV_READ &&
	    plain_connect_timeout(rs))
		return;
	rsession_login_done(rs, LOGIN_TEMPFAIL,
	    rs->state == R_CONNECTING ? "upstream connect timeout"
				      : "upstream login timeout");
}

/* Feed complete upstream lines to the protocol; stop when it is done. */
static void
upstream_lines(struct rsession *rs)
{
	char *line;
	size_t len;
	int more;

	for (;;) {
		line = evbuffer_readln(rs->lg->uin, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(rs->lg->uin) >
			    UPSTREAM_LINE_MAX)
				rsession_login_done(rs, LOGIN_TEMPFAIL,
				    "upstream line too long");
			return;
		}
		if (len > UPSTREAM_LINE_MAX - 64) {
			/* it could not be passed on whole */
			free(line);
			rsession_login_done(rs, LOGIN_TEMPFAIL,
			    "upstream line too long");
			return;
		}
		more = rs->lg->engine->upstream_line(rs, line, len);
		explicit_bzero(line, len);
		free(line);
		if (!more)
			return; /* rs is relaying or freed */
	}
}

/*
 * Reading and writing are two events on one socket: adding or dropping
 * the write side then costs one epoll_ctl (a MOD) rather than a delete
 * and an add of a combined event.
 */
static void
upstream_set_events(struct rsession *rs, short events)
{
	struct rlogin *lg = rs->lg;

	if ((events & EV_READ) && !(lg->uevents & EV_READ))
		event_add(&lg->uev, NULL);
	if ((events & EV_WRITE) && !(lg->uevents & EV_WRITE))
		event_add(&lg->uwev, NULL);
	if (!(events & EV_READ) && (lg->uevents & EV_READ))
		event_del(&lg->uev);
	if (!(events & EV_WRITE) && (lg->uevents & EV_WRITE))
		event_del(&lg->uwev);
	lg->uevents = events;
}

/*
 * A protocol without a login dialogue (HTTP) takes the connected
 * upstream over from here; 1 if it did.
 */
static int
upstream_hand_over(struct rsession *rs)
{
	if (rs->lg->engine->upstream_ready == NULL)
		return 0;
	upstream_set_events(rs, 0);
	evtimer_del(&rs->lg->timer);
	rs->lg->engine->upstream_ready(rs);
	return 1;
}

static void
upstream_handshake(struct rsession *rs)
{
	short want = 0;

	switch (tlsbridge_handshake_events(rs->utls, rs->ufd, &want)) {
	case 1:
		log_debug("session %016llx: upstream TLS %s %s",
		    (unsigned long long)rs->sid, tls_conn_version(rs->utls),
		    tls_conn_cipher(rs->utls));
		if (upstream_hand_over(rs))
			break;
		rs->state = R_GREETING;
		upstream_set_events(rs, EV_READ);
		break;
	case 0:
		upstream_set_events(rs, want);
		break;
	default:
		rsession_login_done(rs, LOGIN_TEMPFAIL, tls_error(rs->utls));
	}
}

/*
 * The pool's servers want the client's address in a PROXY v2 header,
 * before anything else (TLS included).  A fresh socket takes these few
 * bytes at once; a short write is treated as a failure.
 */
static int
send_proxy_header(struct rsession *rs)
{
	unsigned char hdr[64];
	size_t len;

	len = proxy_v2_build(hdr, sizeof(hdr), &rs->lg->req.client,
	    &rs->lg->req.local);
	if (len == 0)
		return -1;
	return write(rs->ufd, hdr, len) == (ssize_t)len ? 0 : -1;
}

/* Returns 1 if the upstream is plain and its greeting may be read now. */
static int
upstream_connected(struct rsession *rs)
{
	struct timeval tv;
	int err = 0;
	socklen_t len = sizeof(err);
	const char *name;

	if (getsockopt(rs->ufd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		rsession_login_done(rs, LOGIN_TEMPFAIL, strerror(err));
		return 0;
	}
	evtimer_del(&rs->lg->timer);
	tv.tv_sec = relay_conf.timeout_login;
	tv.tv_usec = 0;
	evtimer_add(&rs->lg->timer, &tv);
	if (rs->lg->pool != NULL && rs->lg->pool->conf.proxy_v2 &&
	    send_proxy_header(rs) == -1) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "cannot send the PROXY header");
		return 0;
	}
	if (!upstream_tls(rs->lg->upstream, rs->lg->req.proto)) {
		if (upstream_hand_over(rs))
			return 0;
		rs->state = R_GREETING;
		upstream_set_events(rs, EV_READ);
		return 1;
	}
	if (rs->lg->upstream->tlscfg == NULL) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "no trusted CA for upstream TLS");
		return 0;
	}
	name = rs->lg->upstream->conf.servername[0]
	    ? rs->lg->upstream->conf.servername
	    : NULL;
	if ((rs->utls = tls_client()) == NULL ||
	    tls_configure(rs->utls, rs->lg->upstream->tlscfg) == -1 ||
	    tls_connect_socket(rs->utls, rs->ufd, name) == -1) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    rs->utls ? tls_error(rs->utls) : "tls_client failed");
		return 0;
	}
	rs->state = R_TLS_HANDSHAKE;
	upstream_handshake(rs);
	return 0;
}

/* Upstream bytes during login, through TLS when the upstream wants it. */
static int
upstream_read(struct rsession *rs)
{
	unsigned char buf[4096];
	struct evbuffer_iovec space;
	ssize_t n;

	if (rs->utls == NULL) {
		/*
		 * Not evbuffer_read(): it asks FIONREAD first, a system call
		 * per read that tells us nothing a plain read(2) does not.
		 */
		if (evbuffer_reserve_space(rs->lg->uin, UPSTREAM_LINE_MAX,
			&space, 1) != 1) {
			/* this login fails, not every session of the relay */
			log_warnx("session %016llx: out of memory",
			    (unsigned long long)rs->sid);
			return -1;
		}
		n = read(rs->ufd, space.iov_base, UPSTREAM_LINE_MAX);
		if (n > 0) {
			space.iov_len = n;
			evbuffer_commit_space(rs->lg->uin, &space, 1);
			return 0;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		return 0;
	}
	for (;;) {
		n = tls_read(rs->utls, buf, sizeof(buf));
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
			return 0;
		if (n <= 0)
			return -1;
		evbuffer_add(rs->lg->uin, buf, n);
		/* drain libtls fully: decrypted bytes raise no socket event */
		if (evbuffer_get_length(rs->lg->uin) > 4 * UPSTREAM_LINE_MAX)
			return -1;
	}
}

static int
upstream_write(struct rsession *rs)
{
	char tbuf[16384];
	ssize_t n, len;

	if (rs->utls == NULL) {
		if (evbuffer_write(rs->lg->uout, rs->ufd) == -1 &&
		    errno != EAGAIN && errno != EINTR)
			return -1;
		return 0;
	}
	/* a copy of ours, wiped, where a pullup would leave one unwiped */
	while ((len = evbuffer_copyout(rs->lg->uout, tbuf, sizeof(tbuf))) > 0) {
		n = tls_write(rs->utls, tbuf, len);
		explicit_bzero(tbuf, len);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
			return 0;
		if (n == -1)
			return -1;
		evbuffer_drain(rs->lg->uout, n);
	}
	return 0;
}

static void
upstream_io(int fd, short event, void *arg)
{
	struct rsession *rs = arg;

	(void)fd;
	if (rs->state == R_CONNECTING &&
	    (!upstream_connected(rs) || !(event & EV_READ)))
		return;
	if (rs->state == R_TLS_HANDSHAKE) {
		upstream_handshake(rs);
		return;
	}
	if (evbuffer_get_length(rs->lg->uout) > 0) {
		if (upstream_write(rs) == -1) {
			rsession_login_done(rs, LOGIN_TEMPFAIL,
			    "upstream write failed");
			return;
		}
		if (evbuffer_get_length(rs->lg->uout) == 0)
			upstream_set_events(rs, EV_READ);
	}
	if (event & EV_READ) {
		if (upstream_read(rs) == -1) {
			rsession_login_done(rs, LOGIN_TEMPFAIL,
			    "upstream closed the connection");
			return;
		}
		upstream_lines(rs);
	}
}

static void
rsession_reset_upstream(struct rsession *rs)
{
	upstream_set_events(rs, 0);
	if (event_initialized(&rs->lg->timer))
		evtimer_del(&rs->lg->timer);
	if (rs->utls != NULL) {
		tls_free(rs->utls);
		rs->utls = NULL;
	}
	if (rs->ufd != -1) {
		close(rs->ufd);
		rs->ufd = -1;
	}
	evbuffer_drain(rs->lg->uin, evbuffer_get_length(rs->lg->uin));
	evbuffer_drain(rs->lg->uout, evbuffer_get_length(rs->lg->uout));
	rs->lg->caps = 0;
	rs->lg->corked = 0;
	/* between servers: nothing here is a server's failure */
	rs->state = R_LOOKUP;
}

static void
rsession_connect(struct rsession *rs)
{
	struct timeval tv;
	int on = 1;

	if (rs->lg->engine->reuse != NULL && rs->lg->engine->reuse(rs))
		return;
	rs->ufd = socket(rs->lg->uaddr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (rs->ufd == -1) {
		log_warn("socket");
		rsession_login_done(rs, LOGIN_TEMPFAIL, "out of sockets");
		return;
	}
	setsockopt(rs->ufd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	setsockopt(rs->ufd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	rs->state = R_CONNECTING;
	if (connect(rs->ufd, (struct sockaddr *)&rs->lg->uaddr,
		sockaddr_len(&rs->lg->uaddr)) == -1 &&
	    errno != EINPROGRESS) {
		rsession_login_done(rs, LOGIN_TEMPFAIL, strerror(errno));
		return;
	}
	event_set(&rs->lg->uev, rs->ufd, EV_READ | EV_PERSIST, upstream_io, rs);
	event_set(&rs->lg->uwev, rs->ufd, EV_WRITE | EV_PERSIST, upstream_io,
	    rs);
	/*
	 * A plain upstream speaks first: its greeting, or an error or hang-up
	 * (which epoll reports as readable), also says how the connect went.
	 * Only TLS and a PROXY header need to know when to write.
	 */
	tv.tv_sec = relay_conf.timeout_connect;
	tv.tv_usec = 0;
	if (upstream_tls(rs->lg->upstream, rs->lg->req.proto) ||
	    rs->lg->engine->client_first ||
	    (rs->lg->pool != NULL && rs->lg->pool->conf.proxy_v2))
		upstream_set_events(rs, EV_WRITE);
	else {
		upstream_set_events(rs, EV_READ);
		if (relay_conf.timeout_login < tv.tv_sec)
			tv.tv_sec = relay_conf.timeout_login;
	}
	rs->lg->waited = tv.tv_sec;
	evtimer_del(&rs->lg->timer);
	evtimer_add(&rs->lg->timer, &tv);
}

/* Connect again to the server chosen (a kept connection was dead). */
void
rsession_reconnect(struct rsession *rs)
{
	rsession_connect(rs);
}

void
rsession_login_free(struct rsession *rs)
{
	rlogin_free(rs);
}

/* A route chosen elsewhere (the HTTP fallback pool): its next member. */
void
rsession_connect_pool(struct rsession *rs, struct pool_ctx *pool,
    enum route_source src)
{
	rs->lg->route_src = src;
	rs->lg->pool = pool;
	rsession_connect_next(rs);
}

/* The pool's next member, or a temporary failure if none is left. */
static void
rsession_connect_next(struct rsession *rs)
{
	int i;

	i = pool_pick(rs->lg->pool, &rs->lg->req.client, rs->lg->req.proto,
	    rs->lg->tried, wallclock_ms());
	if (i == -1) {
		/* not a connect failure: no member is to be failed over */
		rs->state = R_LOOKUP;
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    rs->lg->tried ? "no upstream in the pool answered"
				  : "no upstream for this protocol");
		return;
	}
	rs->lg->member = i;
	rs->lg->tried |= 1u << i;
	rs->lg->upstream = rs->lg->pool->members[i].u;
	rs->lg->uaddr = *upstream_addr(rs->lg->upstream, rs->lg->req.proto);
	rsession_connect(rs);
}

void
rsession_route_static(struct rsession *rs, const char *why)
{
	rs->lg->route_src = ROUTE_SRC_STATIC;
	if ((rs->lg->pool = route_lookup(rs->lg->req.user)) == NULL) {
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    why != NULL ? why : "no route for user");
		return;
	}
	rsession_connect_next(rs);
}

/* A route from a lookup handler or the cache: one server, plain. */
void
rsession_route_to(struct rsession *rs, const struct sockaddr_storage *ss,
    const char *account, enum route_source src)
{
	char addr[128];

	sockaddr_str(ss, addr, sizeof(addr));
	rs->lg->route_src = src;
	rs->lg->pool = NULL;
	if (!lookup_upstream_allowed(ss)) {
		log_warnx("session %016llx: %s route to %s refused: outside "
			  "every upstream network",
		    (unsigned long long)rs->sid,
		    src == ROUTE_SRC_CACHE ? "cached" : "handler's", addr);
		if (src == ROUTE_SRC_CACHE)
			lookup_forget(rs);
		rs->lg->route_refused = 1;
		rsession_login_done(rs, LOGIN_TEMPFAIL,
		    "route outside the upstream networks");
		return;
	}
	if (rs->lg->relooked && sockaddr_same_host(ss, &rs->lg->failed_addr) &&
	    sockaddr_port(ss) == sockaddr_port(&rs->lg->failed_addr)) {
		/* the same server again: its refusal stands */
		rsession_login_done(rs, LOGIN_FAILED, rs->lg->refusal);
		return;
	}
	snprintf(rs->lg->account, sizeof(rs->lg->account), "%s", account);
	memset(&rs->lg->dyn, 0, sizeof(rs->lg->dyn));
	/* an address with its port fits; the name is for logs and audit */
	memcpy(rs->lg->dyn.conf.name, addr, sizeof(rs->lg->dyn.conf.name) - 1);
	rs->lg->dyn.conf.name[sizeof(rs->lg->dyn.conf.name) - 1] = '\0';
	upstream_set_addr(&rs->lg->dyn, rs->lg->req.proto, ss);
	rs->lg->upstream = &rs->lg->dyn;
	rs->lg->uaddr = *ss;
	if (src == ROUTE_SRC_HANDLER)
		lookup_cache_store(rs);
	rsession_connect(rs);
}

static void
refusal_wait_done(int fd, short event, void *arg)
{
	struct rsession *rs = arg;

	(void)fd;
	(void)event;
	rsession_login_done(rs, LOGIN_FAILED, rs->lg->refusal);
}

/* A handler refused the login; Auth-Wait holds the answer back. */
void
rsession_refused(struct rsession *rs, const char *text, uint32_t wait)
{
	struct timeval tv = {wait, 0};

	snprintf(rs->lg->refusal, sizeof(rs->lg->refusal), "%s", text);
	/* Auth-Wait (at most a minute) is the deadline now */
	evtimer_del(&rs->lg->timer);
	if (wait == 0) {
		rsession_login_done(rs, LOGIN_FAILED, rs->lg->refusal);
		return;
	}
	rs->state = R_LOOKUP;
	evtimer_set(&rs->lg->wait_ev, refusal_wait_done, rs);
	evtimer_add(&rs->lg->wait_ev, &tv);
}

/* The route lookup too must end: the login time-out bounds it. */
void
rsession_arm_login_timer(struct rsession *rs)
{
	struct timeval tv = {relay_conf.timeout_login, 0};

	evtimer_del(&rs->lg->timer);
	evtimer_add(&rs->lg->timer, &tv);
}

static void
rsession_start(struct rsession *rs)
{
	snprintf(rs->lg->account, sizeof(rs->lg->account), "%s",
	    rs->lg->req.user);
	if (relay_policy.shared)
		counter_attempt(&rs->lg->req);
	rsession_route(rs);
}

static int
client_fd_ok(int fd)
{
	int type, domain, flags;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    type != SOCK_STREAM)
		return 0;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1 ||
	    (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX))
		return 0;
	/* authproc's accept4() made it so; check rather than trust */
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    (!(flags & O_NONBLOCK) &&
		fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1))
		return 0;
	return 1;
}

/*
 * A session for one attempt or exchange, with the client socket: the
 * caller fills in the request and starts it.  NULL if the socket is not
 * one relay can use.
 */
struct rsession *
rsession_new(struct imsgev *iev, struct imsg *imsg, uint32_t proto)
{
	if (!client_fd_ok(imsg->fd))
		return NULL;
	return rsession_new_fd(iev, imsg, proto, imsg_take_fd(imsg));
}

/* The same, with a client socket relay has checked and kept before. */
struct rsession *
rsession_new_fd(struct imsgev *iev, struct imsg *imsg, uint32_t proto, int fd)
{
	struct rsession *rs;

	if ((rs = calloc(1, sizeof(*rs))) == NULL ||
	    (rs->lg = calloc(1, sizeof(*rs->lg))) == NULL)
		fatal("calloc");
	rs->lg->id = imsg->hdr.peerid;
	rs->lg->chan = iev;
	rs->lg->engine = relay_engine_find(proto);
	rs->lg->req.proto = proto;
	rs->cfd = fd;
	rs->ufd = -1;
	if ((rs->lg->uin = evbuffer_new()) == NULL ||
	    (rs->lg->uout = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	evtimer_set(&rs->lg->timer, upstream_timeout, rs);
	TAILQ_INSERT_TAIL(&rsessions, rs, entry);
	return rs;
}

/* To authproc about this session, unless authproc has been replaced. */
int
rsession_tell_authproc(struct rsession *rs, uint32_t type, const void *data,
    size_t len)
{
	if (rs->lg == NULL || rs->lg->chan == NULL ||
	    rs->lg->chan != authproc_iev)
		return -1;
	return imsgev_compose(rs->lg->chan, type, rs->lg->id, -1, data, len);
}

/* Route one attempt: lookup handlers (and the cache), or the table. */
void
rsession_route(struct rsession *rs)
{
	rsession_arm_login_timer(rs);
	if (lookup_configured())
		lookup_route(rs);
	else
		rsession_route_static(rs, NULL);
}

static void
authproc_handle_login(struct imsgev *iev, struct imsg *imsg)
{
	struct rsession *rs;
	struct login_request *req = imsg->data;

	if ((rs = rsession_new(iev, imsg, req->proto)) == NULL) {
		struct login_result res;

		log_warnx("session %u: unusable client socket",
		    imsg->hdr.peerid);
		memset(&res, 0, sizeof(res));
		res.status = LOGIN_TEMPFAIL;
		snprintf(res.text, sizeof(res.text), "unusable client socket");
		imsgev_compose(iev, IMSG_LOGIN_RESULT, imsg->hdr.peerid, -1,
		    &res, sizeof(res));
		return; /* imsg_free closes it */
	}
	rs->sid = req->sid;
	rs->client = req->client;
	memcpy(&rs->lg->req, req, sizeof(rs->lg->req));
	rs->lg->pipelen = req->pipelen;
	if (rs->lg->pipelen > 0) {
		if ((rs->lg->pipelined = malloc(rs->lg->pipelen)) == NULL)
			fatal("malloc");
		memcpy(rs->lg->pipelined,
		    (unsigned char *)imsg->data + sizeof(*req),
		    rs->lg->pipelen);
	}
	/* SO_KEEPALIVE came from the listener */
	rsession_start(rs);
}

static void
authproc_lost(struct imsgev *iev)
{
	struct rsession *rs, *next;

	for (rs = TAILQ_FIRST(&rsessions); rs != NULL; rs = next) {
		next = TAILQ_NEXT(rs, entry);
		/* a relayed session owes authproc nothing more */
		if (rs->lg == NULL || rs->lg->chan != iev)
			continue;
		rsession_free(rs);
	}
	relay_http_channel_lost(iev);
	imsgev_clear(iev);
	if (authproc_iev == iev)
		authproc_iev = NULL;
	free(iev);
	retire_check();
}

/* The authproc channel a reply is for, unless it has been replaced. */
struct imsgev *
relay_authproc_channel(uint64_t gen)
{
	return gen == authproc_gen ? authproc_iev : NULL;
}

static int
authproc_handle(struct imsg *imsg, void *arg)
{
	char err[128];

	switch (imsg->hdr.type) {
	case IMSG_LOGIN_REQUEST:
		if (login_request_valid(imsg, err, sizeof(err)) == -1) {
			log_warnx("authproc: %s", err);
			return -1;
		}
		authproc_handle_login(arg, imsg);
		return 0;
	case IMSG_HTTP_REQUEST:
		if (http_request_rec_valid(imsg, err, sizeof(err)) == -1 ||
		    !relay_http_configured()) {
			log_warnx("authproc: %s", err);
			return -1;
		}
		relay_http_request(arg, imsg);
		return 0;
	case IMSG_HTTP_BODY:
		if (!relay_http_configured() ||
		    relay_http_body(arg, imsg) == -1) {
			log_warnx("authproc: http body for no request");
			return -1;
		}
		return 0;
	case IMSG_HTTP_RELEASE:
		if (!relay_http_configured())
			return -1;
		relay_http_release(arg, imsg->hdr.peerid);
		return 0;
	case IMSG_COUNTER_QUERY:
		if (!counter_op_valid(imsg) || !relay_policy.shared) {
			log_warnx("authproc: bad counter operation");
			return -1;
		}
		counter_query(imsg->hdr.peerid, authproc_gen, imsg->data);
		return 0;
	default:
		return -1;
	}
}

static void
authproc_dispatch(int fd, short event, void *arg)
{
	struct imsgev *iev = arg;

	(void)fd;
	/* a compromised authproc is dropped; the parent restarts it */
	if (proc_peer_dispatch(iev, event, PROC_AUTHPROC,
		authproc_to_relay_rules, authproc_to_relay_nrules,
		authproc_handle, iev) != PEER_OK)
		authproc_lost(iev);
}

static void
parent_handle(struct imsg *imsg)
{
	struct peer_channel *pc;
	struct conf_upstream *u;
	struct conf_route *r;
	struct conf_blob *b;
	struct upstream_ctx *uc;
	struct conf_lookup *lk;
	uint32_t i;

	switch (imsg->hdr.type) {
	case IMSG_CONF_SANDBOX:
		memcpy(&sandbox_conf, imsg->data, sizeof(sandbox_conf));
		if (sandboxed ||
		    !imsg_string_ok(sandbox_conf.chroot,
			sizeof(sandbox_conf.chroot)))
			fatalx("bad sandbox message");
		have_sandbox = 1;
		break;
	case IMSG_CONF_GLOBAL:
		memcpy(&relay_conf, imsg->data, sizeof(relay_conf));
		break;
	case IMSG_CONF_HTTP:
		relay_http_init(imsg->data, relay_base);
		break;
	case IMSG_CONF_TLS_GLOBAL:
		memcpy(&tls_conf, imsg->data, sizeof(tls_conf));
		break;
	case IMSG_CONF_POLICY:
		memcpy(&relay_policy, imsg->data, sizeof(relay_policy));
		if (relay_policy.nallow > POLICY_MAX_ALLOW ||
		    relay_policy.nproxy > POLICY_MAX_ALLOW)
			fatalx("bad policy message");
		policy_init(&relay_policy);
		break;
	case IMSG_CONF_MEMCACHE:
		memcpy(&memcache_conf, imsg->data, sizeof(memcache_conf));
		if (memcache_conf.nservers > MCACHE_MAX_SERVERS ||
		    memcache_conf.timeout_ms == 0)
			fatalx("bad memcache message");
		for (i = 0; i < memcache_conf.nservers; i++)
			if (!sockaddr_valid(&memcache_conf.servers[i]))
				fatalx("bad memcache message");
		break;
	case IMSG_CONF_BLOB:
		b = imsg->data;
		if (!conf_blob_valid(imsg) || b->kind != BLOB_CA)
			fatalx("bad CA blob");
		/* an https:// lookup handler's, or an upstream's */
		if (b->owner_id >= LOOKUP_BLOB_OWNER) {
			if (lookup_handler_ca(b, (unsigned char *)(b + 1),
				&tls_conf) == -1)
				fatalx("bad CA blob");
		} else if ((uc = route_find_upstream(b->owner_id)) == NULL ||
		    blob_store(&uc->ca, &uc->calen, &uc->cagot, b,
			(unsigned char *)(b + 1)) == -1)
			fatalx("bad CA blob");
		break;
	case IMSG_CONF_UPSTREAM:
		u = imsg->data;
		if (!imsg_string_ok(u->name, sizeof(u->name)) ||
		    (u->has_imap && !sockaddr_valid(&u->imap)) ||
		    (u->has_pop3 && !sockaddr_valid(&u->pop3)))
			fatalx("bad upstream message");
		route_add_upstream(u);
		break;
	case IMSG_CONF_POOL:
		if (!imsg_string_ok(((struct conf_pool *)imsg->data)->name,
			NAME_MAX_LEN + 1) ||
		    route_add_pool(imsg->data) == -1)
			fatalx("bad pool message");
		break;
	case IMSG_CONF_LOOKUP:
		lk = imsg->data;
		if (lk->nhandlers > LOOKUP_MAX_HANDLERS ||
		    lk->nnetworks > LOOKUP_MAX_NETWORKS || lk->timeout_ms == 0)
			fatalx("bad lookup message");
		for (i = 0; i < lk->nhandlers; i++)
			if (!sockaddr_valid(&lk->handlers[i].addr) ||
			    !imsg_string_ok(lk->handlers[i].host,
				sizeof(lk->handlers[i].host)) ||
			    !imsg_string_ok(lk->handlers[i].path,
				sizeof(lk->handlers[i].path)) ||
			    lk->handlers[i].tls > 1 ||
			    !imsg_string_ok(lk->handlers[i].servername,
				sizeof(lk->handlers[i].servername)) ||
			    (lk->handlers[i].tls &&
				lk->handlers[i].servername[0] == '\0') ||
			    !imsg_string_ok(lk->handlers[i].ca,
				sizeof(lk->handlers[i].ca)))
				fatalx("bad lookup message");
		lookup_init(lk, relay_base);
		break;
	case IMSG_CONF_ROUTE:
		r = imsg->data;
		if (!imsg_string_ok(r->match, sizeof(r->match)) ||
		    r->kind < ROUTE_USER || r->kind > ROUTE_DEFAULT ||
		    route_add(r) == -1)
			fatalx("bad route message");
		break;
	case IMSG_CONF_END:
		/* TLS set-up may read files: do it before the sandbox */
		if (!have_sandbox || sandboxed)
			fatalx("no sandbox configuration");
		route_upstreams_tls(&tls_conf);
		mcache_init(&memcache_conf);
		sandbox_enter(PROC_RELAY, &sandbox_conf);
		sandboxed = 1;
		mcache_start();
		if (!lookup_start())
			log_info("ready");
		break;
	case IMSG_CTL_QUERY:
		if (!sandboxed)
			fatalx("control query before the configuration");
		relay_ctl_query(imsg);
		break;
	case IMSG_DRAIN:
		if (!sandboxed)
			fatalx("drain before the configuration");
		drain();
		break;
	case IMSG_COUNTER_FORGET:
		/* posternctl unblock, checked by the parent */
		if (!sandboxed || counter_forget(imsg->data) == -1)
			fatalx("bad counter forget message");
		break;
	case IMSG_PEER_CHANNEL:
		pc = imsg->data;
		if (pc->role != PROC_AUTHPROC)
			fatalx("unexpected peer %u", pc->role);
		if (authproc_iev != NULL)
			authproc_lost(authproc_iev);
		if ((authproc_iev = calloc(1, sizeof(*authproc_iev))) == NULL)
			fatal("calloc");
		authproc_gen++;
		imsgev_init(authproc_iev, imsg_take_fd(imsg), "authproc",
		    authproc_dispatch, NULL);
		authproc_iev->data = authproc_iev;
		authproc_iev->ibuf.peerpid = pc->pid;
		break;
	default:
		fatalx("parent sent unexpected message %u", imsg->hdr.type);
	}
}

static void
parent_dispatch(int fd, short event, void *arg)
{
	(void)fd;
	proc_parent_dispatch(arg, event, parent_handle);
}

#ifdef POSTERN_TEST_HOOKS
/* Test builds only: send authproc a malformed login result. */
static void
test_forge_message(int sig, short event, void *arg)
{
	char junk[3] = "no";
	static const char forged[] = "<4>parent: line forged by relay\n";

	(void)sig;
	(void)event;
	(void)arg;
	if (authproc_iev != NULL)
		imsgev_compose(authproc_iev, IMSG_LOGIN_RESULT, 0, -1, junk,
		    sizeof(junk));
	/* and a log line in another process's name */
	if (write(STDERR_FILENO, forged, sizeof(forged) - 1) == -1)
		log_warn("write");
}
#endif

void
relay_main(void)
{
	relay_base = event_init();
	if (tls_init() == -1)
		fatalx("tls_init failed");
	proc_child_init(&parent_iev, parent_dispatch);
	relay_ctl_init(&parent_iev);
#ifdef POSTERN_TEST_HOOKS
	static struct event ev_forge;

	signal_set(&ev_forge, SIGUSR1, test_forge_message, NULL);
	signal_add(&ev_forge, NULL);
#endif
	event_dispatch();
	exit(0);
}
