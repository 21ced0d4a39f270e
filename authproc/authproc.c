/*
 * authproc: accepts clients on the listeners the parent passed it, speaks
 * IMAP and POP3 until the client names its user and credentials, then
 * hands the socket and a bounded login request to relay.  If the login
 * fails, the session comes back here and the client may try again.
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
#include <event2/bufferevent.h>

#include "authproc.h"
#include "log.h"
#include "proc.h"
#include "proxyproto.h"
#include "policy.h"
#include "sandbox.h"

#define ACCEPT_PAUSE_SEC  1
#define OUTPUT_HIWAT	  (64 * 1024) /* stop reading above */
#define POLICY_WAIT_MAX	  2	      /* s for the shared counters */
#define POLICY_EXPIRE_SEC 30
#define DRAIN_SEC	  2 /* an HTTP client's rest, after our last word */
/*
 * A draining authproc (a reload started a new one) waits this long
 * after its last session before it exits: a TLS handshake its tlsproc
 * had under way may still bring it one.
 */
#define RETIRE_GRACE_SEC 10

struct conf_global authproc_conf;
struct conf_policy authproc_policy;
static struct imsgev parent_iev;
static struct imsgev *relays[MAX_RELAYS]; /* by instance */
static uint32_t relay_next;
static struct imsgev *tlsprocs[MAX_TLSPROCS]; /* by instance */
static uint32_t tlsproc_next;
static TAILQ_HEAD(, listener_ctx) listeners = TAILQ_HEAD_INITIALIZER(listeners);
static TAILQ_HEAD(, session) sessions = TAILQ_HEAD_INITIALIZER(sessions);
static unsigned int nsessions;
static int draining;
static uint64_t drain_started_ms;
static struct event retire_ev;
static void retire_check(void);
static uint32_t next_session_id;
static uint32_t sid_base; /* random per process start */
static int sandboxed;
static int configured;
static struct event accept_pause_ev;
static struct event expire_ev;
static int accept_paused;
static struct event_base *evbase;

static void session_free(struct session *);
static void session_drain(struct session *);
static void session_setup_bev(struct session *);
static void session_total_timeout(int, short, void *);
static void session_policy_result(struct session *, int);
static void session_delay_done(int, short, void *);
static void session_login_checked(struct session *, const uint32_t *);
static int session_query_counters(struct session *);
static struct imsgev *relay_pick(void);
static int conn_limit_reached(const struct sockaddr_storage *);
static int conn_limit_reached_except(const struct sockaddr_storage *,
    const struct session *);
static void session_greet(struct session *);
static void session_proxy_input(struct session *);
static void conn_refuse(struct listener_ctx *, int, struct sockaddr_storage *);
static void tlsproc_lost(struct imsgev *);
static struct imsgev *tlsproc_pick(void);
static void tlsproc_dispatch(int, short, void *);
static void listeners_pause(int);

#ifdef POSTERN_TEST_HOOKS
/*
 * Test builds only: a small kernel send buffer on client sockets, so that
 * a client that reads nothing leaves replies waiting in authproc.
 */
static int test_client_sndbuf;
#endif

static const struct proto_engine *const engines[] = {
    &imap_engine,
    &pop3_engine,
    &http_engine,
};

static const struct proto_engine *
proto_engine_find(uint32_t proto)
{
	size_t i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (engines[i]->proto == proto)
			return engines[i];
	return NULL;
}

static struct session *
session_find(uint32_t id)
{
	struct session *s;

	TAILQ_FOREACH(s, &sessions, entry)
	if (s->id == id)
		return s;
	return NULL;
}

/*
 * A reply is written straight away once the event that made it is
 * handled (a socket nearly always has room for it), and only what does
 * not fit makes the bufferevent watch for writability: watching costs
 * two epoll_ctl calls and a wake-up per reply, which for a POP3 login's
 * USER answer was a fifth of authproc's system calls.
 */
static void
session_output_added(struct session *s)
{
	if (s->greeting || s->flush_armed ||
	    (bufferevent_get_enabled(s->bev) & EV_WRITE))
		return;
	s->flush_armed = 1;
	event_active(&s->flush_ev, EV_TIMEOUT, 1);
}

static void session_write_cb(struct bufferevent *, void *);

/*
 * Write the output now, for the bufferevent (which keeps its output's
 * start frozen).  What is left, or an error, the bufferevent meets once
 * it may write.  Returns 1 if all went out.
 */
static int
session_write_now(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, s->fd);
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) == 0)
		return 1;
	bufferevent_enable(s->bev, EV_WRITE);
	return 0;
}

static void
session_flush(evutil_socket_t fd, short event, void *arg)
{
	struct session *s = arg;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	(void)fd;
	(void)event;
	s->flush_armed = 0;
	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(s->bev) & EV_WRITE)) {
		session_maybe_free(s);
		return;
	}
	/* once drained, what the bufferevent would have said */
	if (session_write_now(s))
		session_write_cb(s->bev, s);
}

void
session_write(struct session *s, const char *data, size_t len)
{
	if (bufferevent_write(s->bev, data, len) == -1) {
		log_warnx("session %016llx: cannot buffer output",
		    (unsigned long long)s->sid);
		s->state = S_CLOSING;
	}
	session_output_added(s);
}

void
session_printf(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap) == -1)
		s->state = S_CLOSING;
	va_end(ap);
	session_output_added(s);
}

/*
 * Audit an attempt (or a pre-auth limit) decided here.  Attempts that
 * reach relay are audited there, with the upstream's name.
 */
void
session_audit(struct session *s, enum audit_result result, const char *reason)
{
	struct audit_record a;
	uint64_t now = wallclock_ms();

	log_info("session %016llx: %s: %s", (unsigned long long)s->sid,
	    audit_result_name(result), reason);
	if (s->listener->conf.proto < CTL_PROTO_SLOTS &&
	    result < AUDIT_RESULT_MAX)
		proc_stats.attempts[s->listener->conf.proto][result]++;
	if (!authproc_conf.audit)
		return;
	memset(&a, 0, sizeof(a));
	a.time_ms = now;
	a.sid = s->sid;
	a.duration_ms = s->req.start_ms ? now - s->req.start_ms : 0;
	a.listener_id = s->listener->conf.id;
	a.proto = s->listener->conf.proto;
	a.result = result;
	a.tls = s->tls;
	a.facts = s->facts;
	a.client = s->client;
	memcpy(a.user, s->req.user, sizeof(a.user));
	snprintf(a.mech, sizeof(a.mech), "%s", login_mech_name(s->req.mech));
	snprintf(a.reason, sizeof(a.reason), "%s", reason);
	memcpy(a.path_class, s->http_class, sizeof(a.path_class));
	imsgev_compose(&parent_iev, IMSG_AUDIT, 0, -1, &a, sizeof(a));
}

/* The user's attempt budget this session spends (throttle http separate) */
static int
session_budget(const struct session *s)
{
	return policy_budget(s->listener->conf.proto);
}

/* The pending attempt's outcome, for the failure limits; once only. */
static void
session_policy_result(struct session *s, int failed)
{
	if (!s->counted)
		return;
	policy_result(&s->client, s->req.user, session_budget(s),
	    wallclock_ms(), failed);
	s->counted = 0;
}

/* An attempt that relay decided: counted as it went, then wiped. */
void
session_attempt_done(struct session *s, int failed)
{
	session_policy_result(s, failed);
	session_reset_attempt(s);
}

/* Forget everything about a login attempt, successful or not. */
void
session_reset_attempt(struct session *s)
{
	session_policy_result(s, 0);
	explicit_bzero(&s->req, sizeof(s->req));
	s->has_user = 0;
	s->acked_literals = 0;
	if (s->state != S_CLOSING)
		s->state = S_PREAUTH;
}

void
session_close_after_write(struct session *s)
{
	/*
	 * A timer still armed for the counters' answer or a failure delay
	 * would otherwise revive the wiped attempt after the goodbye.
	 */
	if (evtimer_initialized(&s->delay_ev))
		evtimer_del(&s->delay_ev);
	session_reset_attempt(s);
	s->state = S_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
}

/*
 * Engines never free a session themselves; each event entry point calls
 * this last, so no engine code can touch a freed session.
 */
void
session_maybe_free(struct session *s)
{
	if (s->state != S_CLOSING ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return;
	if (s->engine->drain_on_close)
		session_drain(s);
	else
		session_free(s);
}

/*
 * An HTTP client may have sent more than we read (a body, the next
 * request): closing now would answer it with a reset that can destroy
 * our last reply on its way.  Shut our side, read and drop the rest for
 * a moment, then close.
 */
static void
session_drain(struct session *s)
{
	struct timeval tv = {DRAIN_SEC, 0};
	struct evbuffer *in = bufferevent_get_input(s->bev);

	/* a client that keeps sending gets the same few seconds */
	session_deadline(s, DRAIN_SEC);
	shutdown(s->fd, SHUT_WR);
	s->state = S_DRAIN;
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_set_timeouts(s->bev, &tv, NULL);
	bufferevent_setwatermark(s->bev, EV_READ, 0, 0);
	bufferevent_enable(s->bev, EV_READ);
}

void
session_bad_command(struct session *s)
{
	if (++s->bad_commands < authproc_conf.max_bad_commands)
		return;
	session_audit(s, AUDIT_PROTOCOL_ERROR, "too many bad commands");
	s->engine->too_many_bad(s);
}

static void
session_free(struct session *s)
{
	char addr[128];

	log_debug("session %016llx: closed (%s)", (unsigned long long)s->sid,
	    sockaddr_str(&s->client, addr, sizeof(addr)));
	if (s->state == S_LOGIN_PENDING || s->state == S_POLICY_WAIT)
		session_audit(s, AUDIT_ABORTED,
		    "client left before its login was sent");
	session_policy_result(s, 0);
	/* relay's copy of the socket would keep the connection open */
	if (s->relay_has_fd && s->relay != NULL)
		imsgev_compose(s->relay, IMSG_HTTP_RELEASE, s->id, -1, NULL, 0);
	TAILQ_REMOVE(&sessions, s, entry);
	event_del(&s->flush_ev);
	if (s->engine->release != NULL)
		s->engine->release(s);
	if (evtimer_initialized(&s->delay_ev))
		evtimer_del(&s->delay_ev);
	if (evtimer_initialized(&s->total_ev))
		evtimer_del(&s->total_ev);
	/* dropped from epoll now, not after the close below */
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_free(s->bev);
	if (s->fd != -1)
		close(s->fd);
	explicit_bzero(s, sizeof(*s));
	free(s);
	if (nsessions-- >= authproc_conf.max_sessions)
		listeners_pause(0);
	if (draining && nsessions == 0)
		retire_check();
}

static void
login_fail_local(struct session *s, uint32_t status, const char *text)
{
	struct login_result res;

	memset(&res, 0, sizeof(res));
	res.status = status;
	snprintf(res.text, sizeof(res.text), "%s", text);
	s->engine->login_result(s, &res);
}

/* The next connected channel of several, in turn; NULL if none is. */
static struct imsgev *
channel_pick(struct imsgev **chans, uint32_t n, uint32_t *next)
{
	uint32_t k, i;

	for (k = 0; k < n; k++) {
		i = (*next)++ % n;
		if (chans[i] != NULL)
			return chans[i];
	}
	return NULL;
}

/* Relays take attempts in turn. */
static struct imsgev *
relay_pick(void)
{
	return channel_pick(relays, MAX_RELAYS, &relay_next);
}

static int
relay_available(void)
{
	uint32_t i;

	for (i = 0; i < MAX_RELAYS; i++)
		if (relays[i] != NULL)
			return 1;
	return 0;
}

/* Send the attempt to relay, with a duplicate of the client socket. */
void
session_send_login(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	unsigned char *msg;
	size_t pipelen;
	int fd;

	if (s->req.mech == 0 || s->req.user[0] == '\0') {
		/* relay would take this for a broken authproc */
		log_warnx("session %016llx: no login to send",
		    (unsigned long long)s->sid);
		session_close_after_write(s);
		return;
	}
	if ((s->relay = relay_pick()) == NULL) {
		session_audit(s, AUDIT_UPSTREAM_UNAVAILABLE,
		    "relay not available");
		login_fail_local(s, LOGIN_TEMPFAIL, "relay not available");
		return;
	}
	pipelen = evbuffer_get_length(in);
	if (pipelen > PIPELINE_MAX) {
		/* cannot happen with the read watermark; fail safe anyway */
		session_audit(s, AUDIT_UPSTREAM_UNAVAILABLE,
		    "too much pipelined input");
		login_fail_local(s, LOGIN_TEMPFAIL, "too much pipelined input");
		return;
	}
	if ((fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warn("session %016llx: dup", (unsigned long long)s->sid);
		session_audit(s, AUDIT_UPSTREAM_UNAVAILABLE,
		    "out of resources");
		login_fail_local(s, LOGIN_TEMPFAIL, "out of resources");
		return;
	}
	s->req.listener_id = s->listener->conf.id;
	s->req.attempt = ++s->logins;
	s->req.proto = s->listener->conf.proto;
	s->req.sid = s->sid;
	s->req.client = s->client;
	s->req.local = s->local;
	s->req.tls = s->tls;
	s->req.facts = s->facts;
	memcpy(s->req.idfields, s->idfields, sizeof(s->req.idfields));
	s->req.idlen = s->idlen;
	s->req.pipelen = pipelen;
	if ((msg = malloc(sizeof(s->req) + pipelen)) == NULL)
		fatal("malloc");
	memcpy(msg, &s->req, sizeof(s->req));
	evbuffer_copyout(in, msg + sizeof(s->req), pipelen);
	if (imsgev_compose(s->relay, IMSG_LOGIN_REQUEST, s->id, fd, msg,
		sizeof(s->req) + pipelen) == -1) {
		log_warn("session %016llx: cannot queue login",
		    (unsigned long long)s->sid);
		explicit_bzero(msg, sizeof(s->req) + pipelen);
		free(msg);
		login_fail_local(s, LOGIN_TEMPFAIL, "out of resources");
		return;
	}
	explicit_bzero(msg, sizeof(s->req) + pipelen);
	free(msg);
	/* the credentials now live only in the queued message */
	explicit_bzero(s->req.pass, sizeof(s->req.pass));
	s->state = S_LOGIN_SENT;
	log_debug("session %016llx: login for user sent to relay",
	    (unsigned long long)s->sid);
}

int
session_can_starttls(const struct session *s)
{
	return !s->tls && (s->listener->conf.flags & LISTEN_STARTTLS);
}

/* No credentials in clear text where the listener demands TLS. */
int
session_login_allowed(const struct session *s)
{
	return s->tls || !(s->listener->conf.flags & LISTEN_TLS_REQUIRED);
}

/*
 * Hand the socket to tlsproc.  Anything the client sent after the
 * STARTTLS command is thrown away unread (CVE-2011-0411): it was not
 * protected by TLS and must not be taken for commands inside it.
 */
static void
session_send_starttls(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct starttls_request req;
	int fd;

	evbuffer_drain(in, evbuffer_get_length(in));
	if ((s->tlsproc = tlsproc_pick()) == NULL ||
	    (fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warnx("session %016llx: STARTTLS impossible now",
		    (unsigned long long)s->sid);
		s->tlsproc = NULL;
		s->state = S_CLOSING;
		return;
	}
	memset(&req, 0, sizeof(req));
	req.listener_id = s->listener->conf.id;
	imsgev_compose(s->tlsproc, IMSG_STARTTLS, s->id, fd, &req, sizeof(req));
	s->state = S_STARTTLS_SENT;
	/* tlsproc owns the socket now; keep ours only to close it later */
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_set_timeouts(s->bev, NULL, NULL);
}

void
session_starttls(struct session *s)
{
	bufferevent_disable(s->bev, EV_READ);
	s->state = S_STARTTLS_PENDING;
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_send_starttls(s);
}

/* tlsproc finished the handshake: continue on the plaintext end. */
static void
session_starttls_done(struct session *s, const struct starttls_done *done,
    int fd)
{
	s->tlsproc = NULL; /* the worker is done with this session */
	if (!done->ok || fd == -1) {
		log_info("session %016llx: STARTTLS failed",
		    (unsigned long long)s->sid);
		if (fd != -1)
			close(fd);
		session_free(s);
		return;
	}
	/* dropped from epoll now, not after the close below */
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_free(s->bev);
	close(s->fd);
	s->fd = fd;
	if ((s->bev = bufferevent_socket_new(evbase, fd, 0)) == NULL)
		fatalx("bufferevent_socket_new failed");
	s->tls = 1;
	s->facts = done->facts;
	s->state = S_PREAUTH;
	session_reset_attempt(s);
	session_setup_bev(s);
	log_debug("session %016llx: TLS %s %s", (unsigned long long)s->sid,
	    s->facts.version, s->facts.cipher);
}

/*
 * A protocol engine has a complete login.  Whatever we still owe the
 * client must reach it before relay starts writing to the same socket.
 */
static void
login_refuse(struct session *s, enum audit_result result, const char *why,
    const char *message)
{
	struct login_result res;

	session_audit(s, result, why);
	memset(&res, 0, sizeof(res));
	res.status = LOGIN_TEMPFAIL;
	snprintf(res.text, sizeof(res.text), "%s", message);
	s->engine->throttled(s, &res);
}

/* The protocol engine reads what the client sent. */
static void
session_run_engine(struct session *s)
{
	s->engine->input(s);
	session_maybe_free(s);
}

/* A refused login: commands pipelined behind it are ours again. */
static void
session_resume_input(struct session *s)
{
	if (s->state == S_PREAUTH)
		session_run_engine(s);
	else
		session_maybe_free(s);
}

/*
 * The shared counters (through relay and memcached) decide, with this
 * node's attempts in flight added; without them the local table does.
 */
static void
session_login_checked(struct session *s, const uint32_t *shared)
{
	enum policy_verdict v;
	const char *msg = NULL;
	uint64_t now = wallclock_ms();

	/* throttled attempts never reach relay or the upstream */
	v = policy_check_shared(&s->client, s->req.user, session_budget(s), now,
	    shared, &msg);
	if (v != POLICY_ALLOW) {
		proc_stats
		    .throttled[v == POLICY_THROTTLED_IP ? CTL_LIMIT_IP
							: CTL_LIMIT_USER]++;
		bufferevent_enable(s->bev, EV_READ);
		login_refuse(s,
		    v == POLICY_THROTTLED_IP ? AUDIT_THROTTLED_IP
					     : AUDIT_THROTTLED_USER,
		    v == POLICY_THROTTLED_IP ? "address over its limit"
					     : "user over its limit",
		    msg);
		return;
	}
	/* relay counts it in the shared store when it takes it */
	policy_attempt(&s->client, s->req.user, session_budget(s), now);
	s->counted = 1;
	s->state = S_LOGIN_PENDING;
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		s->engine->send_login(s);
}

static void
session_policy_timeout(int fd, short event, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)event;
	if (s->state != S_POLICY_WAIT)
		return;
	log_warnx("session %016llx: no answer from the shared throttle "
		  "counters; deciding from this node's",
	    (unsigned long long)s->sid);
	session_login_checked(s, NULL);
	session_resume_input(s);
}

static int
session_query_counters(struct session *s)
{
	struct timeval tv = {POLICY_WAIT_MAX, 0};
	struct counter_op op;

	memset(&op, 0, sizeof(op));
	if ((op.kinds = policy_kinds_checked(&s->client)) == 0)
		return -1;
	op.client = s->client;
	op.seq = ++s->query_seq;
	op.budget = session_budget(s);
	snprintf(op.user, sizeof(op.user), "%s", s->req.user);
	if ((s->relay = relay_pick()) == NULL ||
	    imsgev_compose(s->relay, IMSG_COUNTER_QUERY, s->id, -1, &op,
		sizeof(op)) == -1)
		return -1;
	s->state = S_POLICY_WAIT;
	evtimer_set(&s->delay_ev, session_policy_timeout, s);
	evtimer_add(&s->delay_ev, &tv);
	return 0;
}

static void
relay_handle_counters(struct imsg *imsg, struct imsgev *from)
{
	const struct counter_values *cv = imsg->data;
	struct session *s;

	if ((s = session_find(imsg->hdr.peerid)) == NULL ||
	    s->state != S_POLICY_WAIT || s->relay != from ||
	    cv->seq != s->query_seq)
		return; /* timed out or gone meanwhile */
	evtimer_del(&s->delay_ev);
	session_login_checked(s, cv->ok ? cv->values : NULL);
	session_resume_input(s);
}

void
session_login(struct session *s)
{
	s->req.start_ms = wallclock_ms();
	if (authproc_policy.max_attempts && s->engine->attempts_limited &&
	    ++s->attempts > authproc_policy.max_attempts) {
		/* the connection has had its chances: it ends here */
		proc_stats.throttled[CTL_LIMIT_ATTEMPTS]++;
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "too many login attempts on one connection");
		s->engine->too_many_attempts(s);
		session_reset_attempt(s);
		session_close_after_write(s);
		return;
	}
	bufferevent_disable(s->bev, EV_READ);
	if (authproc_policy.shared && relay_available() &&
	    session_query_counters(s) == 0)
		return;
	session_login_checked(s, NULL);
}

/* A client that does not read its replies gets no more of them. */
int
session_output_full(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) < OUTPUT_HIWAT)
		return 0;
	bufferevent_disable(s->bev, EV_READ);
	s->output_full = 1;
	return 1;
}

static void
session_dispatch_input(struct session *s)
{
	if (s->state == S_DRAIN) {
		struct evbuffer *in = bufferevent_get_input(s->bev);

		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (s->state == S_PROXY) {
		session_proxy_input(s);
		if (s->state != S_PREAUTH) {
			session_maybe_free(s);
			return;
		}
	}
	session_run_engine(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_dispatch_input(arg);
}

static void
session_total_timeout(int fd, short event, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)event;
	if (s->state == S_DRAIN) {
		session_free(s);
		return;
	}
	if (s->state != S_PREAUTH && s->state != S_SASL) {
		/* busy with a login or TLS: look again in a second */
		struct timeval tv = {1, 0};

		evtimer_add(&s->total_ev, &tv);
		return;
	}
	if (s->engine->audit_timeouts)
		session_audit(s, AUDIT_TIMEOUT, "pre-auth time limit");
	s->engine->timeout(s);
	session_maybe_free(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	/* with a write low watermark this may run before the output is empty */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0 &&
	    s->state != S_PREAUTH && s->state != S_SASL)
		return;
	if (s->state == S_LOGIN_PENDING)
		s->engine->send_login(s);
	else if (s->state == S_STARTTLS_PENDING)
		session_send_starttls(s);
	else if (s->output_full &&
	    (s->state == S_PREAUTH || s->state == S_SASL)) {
		/* the client caught up: take its commands again */
		s->output_full = 0;
		bufferevent_enable(s->bev, EV_READ);
		session_dispatch_input(s);
		return;
	}
	session_maybe_free(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == S_DRAIN) {
		session_free(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && s->state == S_CLOSING) {
		/* it would not even take our goodbye */
		session_free(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) &&
	    (s->state == S_PREAUTH || s->state == S_SASL ||
		s->state == S_CLOSING) &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) {
		/* a half-close: the client still gets what it asked for */
		s->state = S_CLOSING;
		bufferevent_disable(s->bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->engine->audit_timeouts)
			session_audit(s, AUDIT_TIMEOUT,
			    s->state == S_SASL ? "no SASL response"
					       : "pre-auth idle timeout");
		s->engine->timeout(s);
		bufferevent_enable(s->bev, EV_WRITE);
		session_maybe_free(s);
		return;
	}
	/* EOF or error: nothing more can be said to this client */
	if (s->state == S_SASL)
		session_audit(s, AUDIT_ABORTED, "client left during SASL");
	session_free(s);
}

static struct session *
session_new(struct listener_ctx *l, int fd, struct sockaddr_storage *ss,
    const struct sockaddr_storage *local, const struct tls_facts *facts)
{
	struct session *s;
	socklen_t len;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("calloc");
		close(fd);
		return NULL;
	}
	s->state = S_PREAUTH;
	s->id = ++next_session_id;
	s->sid = (uint64_t)sid_base << 32 | s->id;
	s->started_ms = wallclock_ms();
	s->fd = fd;
	s->listener = l;
	s->engine = l->engine;
	s->client = *ss;
#ifdef POSTERN_TEST_HOOKS
	if (test_client_sndbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &test_client_sndbuf,
		    sizeof(test_client_sndbuf));
#endif
	if (facts != NULL) {
		s->tls = 1;
		s->facts = *facts;
	}
	len = sizeof(s->local);
	if (facts != NULL)
		s->local = *local; /* fd is tlsproc's socketpair */
	else if (!sockaddr_is_wildcard(&l->conf.addr) ||
	    getsockname(fd, (struct sockaddr *)&s->local, &len) == -1)
		s->local = l->conf.addr;
	if ((s->bev = bufferevent_socket_new(evbase, fd, 0)) == NULL) {
		log_warnx("bufferevent_socket_new failed");
		close(fd);
		free(s);
		return NULL;
	}
	event_assign(&s->flush_ev, evbase, -1, 0, session_flush, s);
	session_setup_bev(s);
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	if (authproc_conf.timeout_preauth_total > 0) {
		struct timeval tv = {authproc_conf.timeout_preauth_total, 0};

		evtimer_set(&s->total_ev, session_total_timeout, s);
		evtimer_add(&s->total_ev, &tv);
	}
	if (++nsessions >= authproc_conf.max_sessions) {
		log_warnx("session limit %u reached; pausing accept",
		    authproc_conf.max_sessions);
		listeners_pause(1);
	}
	if ((l->conf.flags & LISTEN_PROXY) && facts == NULL) {
		/*
		 * The load balancer speaks first; the greeting waits.  On
		 * tls listeners tlsproc has read the header already.
		 */
		s->state = S_PROXY;
		return s;
	}
	session_greet(s);
	return s;
}

static void
session_greet(struct session *s)
{
	/* the greeting is written at once: a new socket has room for it */
	s->greeting = 1;
	s->engine->greet(s);
	s->greeting = 0;
	(void)session_write_now(s);
}

/*
 * The PROXY header names the real client: from here on it is the client
 * everywhere (throttling, audit, the upstream).  A header we cannot
 * parse ends the connection without a word.
 */
static void
session_proxy_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct proxy_result r;
	size_t len = evbuffer_get_length(in);
	const unsigned char *p = evbuffer_pullup(in, -1);
	char addr[128];

	switch (proxy_parse(p, len, &r)) {
	case PROXY_INCOMPLETE:
		if (len < PROXY_V2_MAX)
			return;
		/* FALLTHROUGH */
	case PROXY_BAD:
		log_info("session %016llx: bad PROXY header from %s",
		    (unsigned long long)s->sid,
		    sockaddr_str(&s->client, addr, sizeof(addr)));
		s->state = S_CLOSING;
		return;
	case PROXY_OK:
		break;
	}
	evbuffer_drain(in, r.consumed);
	if (r.has_addr) {
		s->client = r.src;
		s->local = r.dst;
	}
	s->state = S_PREAUTH;
	if (conn_limit_reached_except(&s->client, s)) {
		session_audit(s, AUDIT_PROTOCOL_ERROR,
		    "too many connections from the client's address");
		session_printf(s, "%s", s->engine->busy);
		session_close_after_write(s);
		return;
	}
	session_greet(s);
}

static void
session_setup_bev(struct session *s)
{
	struct timeval tv;

	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* never buffer more than relay can be handed as pipelined input */
	bufferevent_setwatermark(s->bev, EV_READ, 0, PIPELINE_MAX);
	/* tell us when the client has drained half of a full output */
	bufferevent_setwatermark(s->bev, EV_WRITE, OUTPUT_HIWAT / 2, 0);
	tv.tv_sec = authproc_conf.timeout_preauth;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	/* a new bufferevent may write; ours may once it has output */
	bufferevent_disable(s->bev, EV_WRITE);
	bufferevent_enable(s->bev, EV_READ);
}

/* Too many unauthenticated connections from this address already? */
static int
conn_limit_reached_except(const struct sockaddr_storage *ss,
    const struct session *self)
{
	struct session *s;
	unsigned int n = 0;

	if (authproc_policy.max_conn_per_ip == 0 || policy_allowlisted(ss))
		return 0;
	TAILQ_FOREACH(s, &sessions, entry)
	if (s != self && s->state != S_PROXY &&
	    sockaddr_same_client(&s->client, ss) &&
	    ++n >= authproc_policy.max_conn_per_ip) {
		proc_stats.throttled[CTL_LIMIT_CONNECTIONS]++;
		return 1;
	}
	return 0;
}

static int
conn_limit_reached(const struct sockaddr_storage *ss)
{
	return conn_limit_reached_except(ss, NULL);
}

static void
conn_refuse(struct listener_ctx *l, int fd, struct sockaddr_storage *ss)
{
	char addr[128];
	ssize_t n;

	log_info("refused %s: too many pre-auth connections",
	    sockaddr_str(ss, addr, sizeof(addr)));
	/* a best-effort goodbye; the socket is non-blocking */
	n = write(fd, l->engine->busy, strlen(l->engine->busy));
	(void)n;
	close(fd);
}

static void
listeners_pause(int pause)
{
	struct listener_ctx *l;

	if (pause == accept_paused)
		return;
	accept_paused = pause;
	TAILQ_FOREACH(l, &listeners, entry)
	{
		if (l->fd == -1)
			continue;
		if (pause)
			event_del(&l->ev);
		else
			event_add(&l->ev, NULL);
	}
}

static void
accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	if (nsessions < authproc_conf.max_sessions)
		listeners_pause(0);
}

static void
listener_accept(int fd, short event, void *arg)
{
	struct listener_ctx *l = arg;
	struct sockaddr_storage ss;
	struct timeval tv = {ACCEPT_PAUSE_SEC, 0};
	socklen_t len;
	int cfd;

	(void)event;
	len = sizeof(ss);
	/* TCP_NODELAY and SO_KEEPALIVE come from the listener */
	cfd = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd == -1) {
		switch (errno) {
		case EAGAIN:
		case EINTR:
		case ECONNABORTED:
			return;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			log_warn("accept; pausing for %d s", ACCEPT_PAUSE_SEC);
			listeners_pause(1);
			evtimer_add(&accept_pause_ev, &tv);
			return;
		default:
			log_warn("accept");
			return;
		}
	}
	if (l->conf.flags & LISTEN_PROXY) {
		/* only load balancers we trust may speak for clients */
		if (!policy_proxy_trusted(&ss)) {
			char addr[128];

			log_info("refused %s: not a trusted PROXY sender",
			    sockaddr_str(&ss, addr, sizeof(addr)));
			close(cfd);
			return;
		}
	} else if (conn_limit_reached(&ss)) {
		conn_refuse(l, cfd, &ss);
		return;
	}
	session_new(l, cfd, &ss, NULL, NULL);
}

/* relay owns the client now; our copy closes silently. */
void
session_handed_off(struct session *s)
{
	log_debug("session %016llx: handed to relay",
	    (unsigned long long)s->sid);
	session_reset_attempt(s);
	session_free(s);
}

/*
 * The deadline for the whole of what the client is about to say: the
 * pre-auth total for mail, a request head for HTTP.  0 disarms it.
 */
void
session_deadline(struct session *s, unsigned int secs)
{
	struct timeval tv = {secs, 0};

	if (evtimer_initialized(&s->total_ev))
		evtimer_del(&s->total_ev);
	if (secs == 0)
		return;
	evtimer_set(&s->total_ev, session_total_timeout, s);
	evtimer_add(&s->total_ev, &tv);
}

int
session_deadline_armed(struct session *s)
{
	return evtimer_initialized(&s->total_ev) &&
	    evtimer_pending(&s->total_ev, NULL);
}

/*
 * Give relay the client for one exchange: a message of the engine's
 * making, with a duplicate of the socket.  We read nothing meanwhile,
 * unless the engine says relay will not read either (keep_reading):
 * then what comes in waits in our buffer for the exchange's end, with
 * no idle time-out while relay is busy.
 */
int
session_send_relay(struct session *s, uint32_t type, const void *data,
    size_t len, int keep_reading)
{
	int fd = -1;

	/* the socket goes once; relay keeps it for the next requests */
	if (!s->relay_has_fd || s->relay == NULL) {
		s->relay_has_fd = 0;
		if ((s->relay = relay_pick()) == NULL)
			return -1;
		if ((fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			log_warn("session %016llx: dup",
			    (unsigned long long)s->sid);
			return -1;
		}
	}
	if (imsgev_compose(s->relay, type, s->id, fd, data, len) == -1) {
		log_warn("session %016llx: cannot queue for relay",
		    (unsigned long long)s->sid);
		return -1;
	}
	s->relay_has_fd = 1;
	if (keep_reading)
		bufferevent_set_timeouts(s->bev, NULL, NULL);
	else
		bufferevent_disable(s->bev, EV_READ);
	s->state = S_LOGIN_SENT;
	return 0;
}

/* tlsproc workers take STARTTLS upgrades in turn. */
static struct imsgev *
tlsproc_pick(void)
{
	return channel_pick(tlsprocs, MAX_TLSPROCS, &tlsproc_next);
}

/*
 * A worker is gone (or was caught lying): the upgrades it was doing die
 * with it.  Sessions it handed over earlier hold its socketpair and see
 * it close; those of the other workers are untouched.
 */
static void
tlsproc_lost(struct imsgev *iev)
{
	struct session *s, *next;
	uint32_t i;

	log_warnx("lost a tlsproc channel");
	for (i = 0; i < MAX_TLSPROCS; i++)
		if (tlsprocs[i] == iev)
			tlsprocs[i] = NULL;
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->tlsproc == iev && s->state == S_STARTTLS_SENT)
			session_free(s);
	}
	imsgev_clear(iev);
	free(iev);
}

static struct listener_ctx *
listener_find(uint32_t id)
{
	struct listener_ctx *l;

	TAILQ_FOREACH(l, &listeners, entry)
	if (l->conf.id == id)
		return l;
	return NULL;
}

static int
tlsproc_handle(struct imsg *imsg, struct imsgev *from)
{
	struct tls_session *ts;
	struct starttls_done *done;
	struct listener_ctx *l;
	struct session *s;

	switch (imsg->hdr.type) {
	case IMSG_TLS_SESSION:
		ts = imsg->data;
		if ((l = listener_find(ts->listener_id)) == NULL ||
		    !(l->conf.flags & LISTEN_TLS) ||
		    !tls_facts_valid(&ts->facts) ||
		    !sockaddr_valid(&ts->client) || !sockaddr_valid(&ts->local))
			return -1;
		if (nsessions >= authproc_conf.max_sessions)
			return 0; /* imsg_free closes the fd */
		if (conn_limit_reached(&ts->client)) {
			/* the goodbye goes out through tlsproc */
			conn_refuse(l, imsg_take_fd(imsg), &ts->client);
			return 0;
		}
		session_new(l, imsg_take_fd(imsg), &ts->client, &ts->local,
		    &ts->facts);
		return 0;
	case IMSG_STARTTLS_DONE:
		done = imsg->data;
		if (!tls_facts_valid(&done->facts) || done->ok > 1)
			return -1;
		/* a worker answers only for the upgrades it was given */
		if ((s = session_find(imsg->hdr.peerid)) == NULL ||
		    s->state != S_STARTTLS_SENT || s->tlsproc != from)
			return 0;
		session_starttls_done(s, done, imsg_take_fd(imsg));
		return 0;
	}
	return -1;
}

static int
tlsproc_handle_msg(struct imsg *imsg, void *arg)
{
	return tlsproc_handle(imsg, arg);
}

static void
tlsproc_dispatch(int fd, short event, void *arg)
{
	(void)fd;
	if (proc_peer_dispatch(arg, event, PROC_TLSPROC,
		tlsproc_to_authproc_rules, tlsproc_to_authproc_nrules,
		tlsproc_handle_msg, arg) != PEER_OK)
		tlsproc_lost(arg);
}

static void
relay_lost(struct imsgev *iev)
{
	struct session *s, *next;
	uint32_t i;

	log_warnx("lost a relay channel");
	for (i = 0; i < MAX_RELAYS; i++)
		if (relays[i] == iev)
			relays[i] = NULL;
	/* the attempts that relay had are lost with it; clients may retry */
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->relay != iev)
			continue;
		s->relay = NULL;
		s->relay_has_fd = 0;
		if (s->state == S_LOGIN_SENT) {
			session_audit(s, AUDIT_UPSTREAM_UNAVAILABLE,
			    "relay restarted");
			login_fail_local(s, LOGIN_TEMPFAIL, "relay restarted");
			session_maybe_free(s);
		}
	}
	imsgev_clear(iev);
	free(iev);
}

static void
session_delay_done(int fd, short event, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)event;
	if (s->state != S_DELAY)
		return;
	s->state = S_LOGIN_SENT;
	s->engine->login_result(s, &s->delayed);
	explicit_bzero(&s->delayed, sizeof(s->delayed));
	session_maybe_free(s);
}

static void
relay_handle_result(struct imsg *imsg, struct imsgev *from)
{
	struct session *s;
	struct login_result *res = imsg->data;
	uint32_t delay;

	if ((s = session_find(imsg->hdr.peerid)) == NULL ||
	    s->state != S_LOGIN_SENT || s->relay != from) {
		log_debug("login result for unknown session %u",
		    imsg->hdr.peerid);
		return;
	}
	if (res->status == LOGIN_OK) {
		session_handed_off(s);
		return;
	}
	if (res->status == LOGIN_CLIENT_GONE) {
		session_free(s);
		return;
	}
	session_policy_result(s, res->status == LOGIN_FAILED);
	if (res->status == LOGIN_FAILED) {
		delay = policy_failure_delay(++s->failures);
		if (delay > 0) {
			/* each failure on a connection waits longer */
			struct timeval tv = {delay / 1000,
			    (delay % 1000) * 1000};

			s->delayed = *res;
			s->state = S_DELAY;
			evtimer_set(&s->delay_ev, session_delay_done, s);
			evtimer_add(&s->delay_ev, &tv);
			return;
		}
	}
	s->engine->login_result(s, res);
	session_maybe_free(s);
}

/* An HTTP exchange is over; a message that is not one drops relay. */
static int
relay_handle_http_done(struct imsg *imsg, struct imsgev *from)
{
	const struct http_done *d = imsg->data;
	struct session *s;

	if (!http_done_valid(imsg)) {
		log_warnx("relay: bad http exchange result");
		return -1;
	}
	if ((s = session_find(imsg->hdr.peerid)) == NULL ||
	    s->state != S_LOGIN_SENT || s->relay != from ||
	    s->engine->exchange_done == NULL)
		return 0; /* gone meanwhile */
	if (s->engine->exchange_done(s, d, (const unsigned char *)(d + 1)) == 0)
		session_maybe_free(s);
	return 0;
}

/* A web login's verdict ahead of its exchange's end. */
static int
relay_handle_http_verdict(struct imsg *imsg, struct imsgev *from)
{
	const struct http_verdict *v = imsg->data;
	struct session *s;

	if (!http_verdict_valid(imsg)) {
		log_warnx("relay: bad http login verdict");
		return -1;
	}
	if ((s = session_find(imsg->hdr.peerid)) == NULL ||
	    s->state != S_LOGIN_SENT || s->relay != from ||
	    s->engine->exchange_verdict == NULL)
		return 0; /* gone meanwhile */
	s->engine->exchange_verdict(s, v->login);
	return 0;
}

static int
relay_handle(struct imsg *imsg, void *arg)
{
	char err[128];

	if (imsg->hdr.type == IMSG_COUNTER_VALUES) {
		relay_handle_counters(imsg, arg);
		return 0;
	}
	if (imsg->hdr.type == IMSG_HTTP_DONE)
		return relay_handle_http_done(imsg, arg);
	if (imsg->hdr.type == IMSG_HTTP_VERDICT)
		return relay_handle_http_verdict(imsg, arg);
	if (login_result_valid(imsg, err, sizeof(err)) == -1) {
		log_warnx("relay: %s", err);
		return -1;
	}
	relay_handle_result(imsg, arg);
	return 0;
}

static void
relay_dispatch(int fd, short event, void *arg)
{
	(void)fd;
	if (proc_peer_dispatch(arg, event, PROC_RELAY, relay_to_authproc_rules,
		relay_to_authproc_nrules, relay_handle, arg) != PEER_OK)
		relay_lost(arg);
}

/* A (re)started tlsproc worker: its slot gets the new channel. */
static void
tlsproc_connect(const struct peer_channel *pc, int fd)
{
	struct imsgev *iev;

	if (pc->instance >= MAX_TLSPROCS)
		fatalx("bad tlsproc instance %u", pc->instance);
	if (tlsprocs[pc->instance] != NULL)
		tlsproc_lost(tlsprocs[pc->instance]);
	if ((iev = calloc(1, sizeof(*iev))) == NULL)
		fatal("calloc");
	imsgev_init(iev, fd, "tlsproc", tlsproc_dispatch, iev);
	iev->ibuf.peerpid = pc->pid;
	tlsprocs[pc->instance] = iev;
}

/* ---- a reload: the new generation takes the listeners ---- */

int
authproc_draining(void)
{
	return draining;
}

/* Out of sessions and past the grace: the channels' last words, exit. */
static void
retire_check(void)
{
	struct timeval tv = {1, 0};
	uint32_t i;

	if (nsessions > 0 ||
	    wallclock_ms() < drain_started_ms + RETIRE_GRACE_SEC * 1000) {
		evtimer_add(&retire_ev, &tv);
		return;
	}
	log_info("drained: exiting");
	for (i = 0; i < MAX_RELAYS; i++)
		if (relays[i] != NULL)
			imsgev_clear(relays[i]);
	proc_child_exit();
}

static void
retire_timer(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	retire_check();
}

static void
export_chunk(const void *data, size_t len, void *arg)
{
	(void)arg;
	imsgev_compose(&parent_iev, IMSG_POLICY_STATE, 0, -1, data, len);
}

/*
 * A new authproc accepts from now on.  This one stops accepting, hands
 * its throttle counts over (through the parent), ends HTTP connections
 * that wait for a next request, and lets everything else finish on the
 * rules it started with.
 */
static void
drain(void)
{
	struct listener_ctx *l;
	struct session *s, *next;
	size_t n;

	if (draining)
		return;
	draining = 1;
	drain_started_ms = wallclock_ms();
	TAILQ_FOREACH(l, &listeners, entry)
	if (l->fd != -1) {
		event_del(&l->ev);
		close(l->fd);
		l->fd = -1;
	}
	n = policy_export(export_chunk, NULL, IMSG_MAX_SIZE - 64);
	log_info("draining: %u sessions, %zu throttle counters handed over",
	    nsessions, n);
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->listener->conf.proto == PROTO_HTTP &&
		    s->state == S_PREAUTH &&
		    evbuffer_get_length(bufferevent_get_input(s->bev)) == 0) {
			session_close_after_write(s);
			session_maybe_free(s);
		}
	}
	evtimer_set(&retire_ev, retire_timer, NULL);
	retire_check();
}

/* ---- posternctl: the sessions here, the counters, unblocking ---- */

static void
ctl_done(uint32_t query, uint32_t count)
{
	struct ctl_done d = {count, 1};

	imsgev_compose(&parent_iev, IMSG_CTL_DONE, query, -1, &d, sizeof(d));
}

static int
ctl_session_matches(const struct session *s, const struct ctl_query *q)
{
	if (q->filter == CTL_FILTER_USER)
		return strcasecmp(s->req.user, q->user) == 0;
	if (q->filter == CTL_FILTER_CLIENT)
		return sockaddr_same_host(&s->client, &q->addr);
	return 1;
}

/* A mail login relay has now: relay shows it, not both of us. */
static int
ctl_relay_has(const struct session *s)
{
	return s->state == S_LOGIN_SENT &&
	    s->listener->conf.proto != PROTO_HTTP;
}

static void
ctl_show_sessions(uint32_t query, const struct ctl_query *q)
{
	struct ctl_session c;
	struct session *s;
	uint32_t n = 0;

	TAILQ_FOREACH(s, &sessions, entry)
	{
		if (ctl_relay_has(s) || !ctl_session_matches(s, q))
			continue;
		memset(&c, 0, sizeof(c));
		c.sid = s->sid;
		c.start_ms = s->started_ms;
		c.proto = s->listener->conf.proto;
		c.tls = s->tls;
		c.listener_id = s->listener->conf.id;
		c.client = s->client;
		memcpy(c.user, s->req.user, sizeof(c.user));
		if (s->tls)
			memcpy(c.servername, s->facts.servername,
			    sizeof(c.servername));
		imsgev_compose(&parent_iev, IMSG_CTL_SESSION, query, -1, &c,
		    sizeof(c));
		n++;
	}
	ctl_done(query, n);
}

static void
ctl_show_stats(uint32_t query)
{
	struct ctl_stats st = proc_stats;
	struct session *s;

	TAILQ_FOREACH(s, &sessions, entry)
	if (!ctl_relay_has(s) && s->listener->conf.proto < CTL_PROTO_SLOTS)
		st.sessions_preauth[s->listener->conf.proto]++;
	imsgev_compose(&parent_iev, IMSG_CTL_STATS, query, -1, &st, sizeof(st));
	ctl_done(query, 0);
}

/*
 * With shared counters, the parent has one relay drop the address's or
 * user's keys in memcached; the address+user pairs only this table
 * knows are named to it, and it checks each against the request.
 */
static void
ctl_forgot(enum counter_kind kind, int budget,
    const struct sockaddr_storage *ss, const char *user, void *arg)
{
	struct counter_forget f;

	if (kind != COUNT_IPUSER_FAIL || !authproc_policy.shared)
		return;
	memset(&f, 0, sizeof(f));
	f.kinds = 1u << kind;
	f.budget = budget;
	f.client = *ss;
	snprintf(f.user, sizeof(f.user), "%s", user);
	imsgev_compose(&parent_iev, IMSG_CTL_FORGET, *(uint32_t *)arg, -1, &f,
	    sizeof(f));
}

static void
ctl_unblock(uint32_t query, const struct ctl_query *q)
{
	size_t n;

	if (q->command == CTL_UNBLOCK_IP)
		n = policy_unblock(&q->addr, NULL, ctl_forgot, &query);
	else
		n = policy_unblock(NULL, q->user, ctl_forgot, &query);
	log_info("posternctl unblock %s: %zu counters reset",
	    q->command == CTL_UNBLOCK_IP ? "address" : "user", n);
	ctl_done(query, n);
}

static void
ctl_query(struct imsg *imsg)
{
	const struct ctl_query *q = imsg->data;
	uint32_t query = imsg->hdr.peerid;

	if (!ctl_query_valid(q))
		fatalx("bad control query");
	switch (q->command) {
	case CTL_SHOW_SESSIONS:
		ctl_show_sessions(query, q);
		break;
	case CTL_SHOW_STATS:
		ctl_show_stats(query);
		break;
	case CTL_UNBLOCK_IP:
	case CTL_UNBLOCK_USER:
		ctl_unblock(query, q);
		break;
	default:
		ctl_done(query, 0);
	}
}

static void
parent_handle(struct imsg *imsg)
{
	struct listener_ctx *l;
	struct peer_channel *pc;
	uint32_t i;

	if (!sandboxed && imsg->hdr.type != IMSG_CONF_SANDBOX)
		fatalx("configuration before the sandbox");
	switch (imsg->hdr.type) {
	case IMSG_CONF_SANDBOX:
		if (sandboxed)
			fatalx("sandbox twice");
		if (!imsg_string_ok(((struct conf_sandbox *)imsg->data)->chroot,
			sizeof(((struct conf_sandbox *)imsg->data)->chroot)))
			fatalx("bad sandbox message");
		sandbox_enter(PROC_AUTHPROC, imsg->data);
		sandboxed = 1;
		break;
	case IMSG_CONF_GLOBAL:
		memcpy(&authproc_conf, imsg->data, sizeof(authproc_conf));
		break;
	case IMSG_CONF_HTTP:
		memcpy(&authproc_http, imsg->data, sizeof(authproc_http));
		if (authproc_http.max_head > HTTP_HEAD_MAX ||
		    authproc_http.route.nprefixes > HTTP_MAX_PREFIXES ||
		    authproc_http.timeout_header == 0 ||
		    authproc_http.timeout_idle == 0 ||
		    authproc_http.soap_scan_max > HTTP_SCAN_LIMIT_MAX ||
		    authproc_http.nforms > HTTP_MAX_FORMS)
			fatalx("bad http message");
		for (i = 0; i < authproc_http.nforms; i++)
			if (!imsg_string_ok(authproc_http.forms[i].method,
				sizeof(authproc_http.forms[i].method)) ||
			    !imsg_string_ok(authproc_http.forms[i].path,
				sizeof(authproc_http.forms[i].path)) ||
			    !imsg_string_ok(authproc_http.forms[i].field,
				sizeof(authproc_http.forms[i].field)))
				fatalx("bad http message");
		break;
	case IMSG_CONF_POLICY:
		memcpy(&authproc_policy, imsg->data, sizeof(authproc_policy));
		if ((authproc_policy.ip.max && !authproc_policy.ip.window) ||
		    (authproc_policy.user.max &&
			!authproc_policy.user.window) ||
		    (authproc_policy.ip_fail.max &&
			!authproc_policy.ip_fail.window) ||
		    (authproc_policy.ipuser_fail.max &&
			!authproc_policy.ipuser_fail.window) ||
		    (authproc_policy.requests.max &&
			!authproc_policy.requests.window) ||
		    authproc_policy.nallow > POLICY_MAX_ALLOW ||
		    authproc_policy.nproxy > POLICY_MAX_ALLOW)
			fatalx("bad policy message");
		policy_init(&authproc_policy);
		break;
	case IMSG_CONF_LISTENER:
		if ((l = calloc(1, sizeof(*l))) == NULL)
			fatal("calloc");
		memcpy(&l->conf, imsg->data, sizeof(l->conf));
		if (!imsg_string_ok(l->conf.name, sizeof(l->conf.name)) ||
		    (l->engine = proto_engine_find(l->conf.proto)) == NULL)
			fatalx("bad listener message");
		/* implicit-TLS listeners come without a socket: tlsproc
		 * accepts there and passes us the plaintext */
		l->fd = imsg_take_fd(imsg);
		if (l->fd != -1)
			event_set(&l->ev, l->fd, EV_READ | EV_PERSIST,
			    listener_accept, l);
		TAILQ_INSERT_TAIL(&listeners, l, entry);
		break;
	case IMSG_CTL_QUERY:
		if (!configured)
			fatalx("control query before the configuration");
		ctl_query(imsg);
		break;
	case IMSG_DRAIN:
		if (!configured)
			fatalx("drain before the configuration");
		drain();
		break;
	case IMSG_POLICY_STATE:
		/* a predecessor's counts: a bad chunk is lost, no more */
		if (!configured || draining ||
		    policy_import(imsg->data, imsg->datalen, wallclock_ms()) ==
			-1)
			log_warnx("throttle counters handed over unusable");
		break;
	case IMSG_CONF_END:
		configured = 1;
		TAILQ_FOREACH(l, &listeners, entry)
		if (l->fd != -1)
			event_add(&l->ev, NULL);
		log_info("ready");
		break;
	case IMSG_PEER_CHANNEL:
		pc = imsg->data;
		if (pc->role == PROC_RELAY) {
			struct imsgev *iev;

			if (pc->instance >= MAX_RELAYS)
				fatalx("bad relay instance %u", pc->instance);
			if (relays[pc->instance] != NULL)
				relay_lost(relays[pc->instance]);
			if ((iev = calloc(1, sizeof(*iev))) == NULL)
				fatal("calloc");
			imsgev_init(iev, imsg_take_fd(imsg), "relay",
			    relay_dispatch, NULL);
			iev->data = iev;
			iev->ibuf.peerpid = pc->pid;
			relays[pc->instance] = iev;
		} else if (pc->role == PROC_TLSPROC)
			tlsproc_connect(pc, imsg_take_fd(imsg));
		else
			fatalx("unexpected peer %u", pc->role);
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
#include <fcntl.h>
#include <sys/syscall.h>
/* Test builds only: make a call the sandbox forbids, to prove it kills. */
static void
test_forbidden_call(int sig)
{
	(void)sig;
	syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY);
}

/* Test builds only: send relay a malformed login request. */
static void
test_forge_message(int sig, short event, void *arg)
{
	char junk[16] = "not a request";

	(void)sig;
	(void)event;
	(void)arg;
	if (relays[0] != NULL)
		imsgev_compose(relays[0], IMSG_LOGIN_REQUEST, 0, -1, junk,
		    sizeof(junk));
}
#endif

static void
policy_expire_cb(int fd, short event, void *arg)
{
	struct timeval tv = {POLICY_EXPIRE_SEC, 0};

	(void)fd;
	(void)event;
	policy_expire(wallclock_ms());
	evtimer_add(arg, &tv);
}

void
authproc_main(void)
{
	struct timeval tv = {POLICY_EXPIRE_SEC, 0};

	evbase = event_init();
	sid_base = arc4random();
	/* ids of a restarted authproc should not meet its predecessor's */
	next_session_id = arc4random();
	evtimer_set(&accept_pause_ev, accept_resume, NULL);
	evtimer_set(&expire_ev, policy_expire_cb, &expire_ev);
	evtimer_add(&expire_ev, &tv);
	proc_child_init(&parent_iev, parent_dispatch);
#ifdef POSTERN_TEST_HOOKS
	static struct event ev_forge;

	if (getenv("POSTERN_TEST_CLIENT_SNDBUF") != NULL)
		test_client_sndbuf = atoi(getenv("POSTERN_TEST_CLIENT_SNDBUF"));
	signal(SIGUSR2, test_forbidden_call);
	signal_set(&ev_forge, SIGUSR1, test_forge_message, NULL);
	signal_add(&ev_forge, NULL);
#endif
	event_dispatch();
	exit(0);
}
