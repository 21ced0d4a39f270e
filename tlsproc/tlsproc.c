/*
 * tlsproc: accepts on implicit-TLS listeners, handshakes, and hands
 * authproc the plaintext end of a socketpair; upgrades STARTTLS/STLS
 * connections authproc passes it the same way.  Then it moves bytes
 * between each TLS connection and its socketpair for the session's life.
 * On proxy-protocol listeners it first reads the balancer's clear-text
 * PROXY header, which comes before the TLS handshake.
 *
 * With "tls processes N" several identical workers run this code, each
 * with every key and a descriptor of the same listening sockets; none
 * knows of the others, and each answers authproc only for the
 * connections it carries.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "policy.h"
#include "proc.h"
#include "proxyproto.h"
#include "sandbox.h"
#include "tlsbridge.h"
#include "tlsproc.h"

#define ACCEPT_PAUSE_SEC 1

struct tls_listener {
	TAILQ_ENTRY(tls_listener) entry;
	struct conf_listener conf;
	int fd;
	struct event ev;
	struct tls *ctx;
	uint64_t handshakes; /* done, for posternctl and the metrics */
	uint64_t failures;
};

struct tconn {
	TAILQ_ENTRY(tconn) entry;
	uint32_t session_id; /* authproc's, for STARTTLS */
	int starttls;
	struct tls_listener *listener;
	struct tls *tls;
	int fd;
	struct sockaddr_storage client;
	struct sockaddr_storage local;
	unsigned char *proxybuf; /* the PROXY header so far; NULL: not read */
	size_t proxylen;
	struct event ev;
	struct event timer;
	int bridging;
	/* its 32 KiB of buffers only once the handshake is done */
	struct tlsbridge *bridge;
};

static struct imsgev parent_iev;
static struct imsgev *authproc_iev;
static struct conf_global global_conf;
static struct conf_tls_global tls_conf;
static struct conf_sandbox sandbox_conf;
/* proxy-protocol trusted, the allow-list, the per-address limit */
static struct conf_policy policy_conf;
static struct tls_keypair_list keypairs = TAILQ_HEAD_INITIALIZER(keypairs);
static TAILQ_HEAD(, tls_listener) listeners = TAILQ_HEAD_INITIALIZER(listeners);
static TAILQ_HEAD(, tconn) tconns = TAILQ_HEAD_INITIALIZER(tconns);
static unsigned int ntconns;
static int have_sandbox;
static int ready;    /* configured and sandboxed */
static int draining; /* a reload: no more accepts; finish, then exit */
static void retire_check(void);
static int accept_error; /* out of descriptors or memory: wait a second */
static int accepting;	 /* the listeners' events are added */
static struct event accept_pause_ev;

static void tconn_free(struct tconn *);
static void listeners_update(void);
static void handshake_step(int, short, void *);
static void proxy_step(int, short, void *);

static struct tls_listener *
listener_find(uint32_t id)
{
	struct tls_listener *l;

	TAILQ_FOREACH(l, &listeners, entry)
	if (l->conf.id == id)
		return l;
	return NULL;
}

static struct tls_keypair *
keypair_find(uint32_t id)
{
	struct tls_keypair *k;

	TAILQ_FOREACH(k, &keypairs, entry)
	if (k->conf.id == id)
		return k;
	return NULL;
}

static void
tconn_free(struct tconn *t)
{
	TAILQ_REMOVE(&tconns, t, entry);
	if (t->bridging)
		tlsbridge_stop(t->bridge);
	else {
		event_del(&t->ev);
		if (t->tls != NULL)
			tls_free(t->tls);
		if (t->fd != -1)
			close(t->fd);
	}
	evtimer_del(&t->timer);
	free(t->proxybuf);
	free(t->bridge);
	free(t);
	ntconns--;
	listeners_update();
	retire_check();
}

/*
 * A draining worker's TLS connections carry sessions to their end; it
 * exits when the last is gone and its authproc (draining too, so no
 * more STARTTLS can come) has gone.
 */
static void
retire_check(void)
{
	if (!draining || ntconns > 0 || authproc_iev != NULL)
		return;
	log_info("drained: exiting");
	proc_child_exit();
}

static void
drain(void)
{
	struct tls_listener *l;

	draining = 1;
	TAILQ_FOREACH(l, &listeners, entry)
	if (l->fd != -1) {
		event_del(&l->ev);
		close(l->fd);
		l->fd = -1;
	}
	log_info("draining: %u connections", ntconns);
	retire_check();
}

static void
tconn_bridge_done(struct tlsbridge *b, void *arg)
{
	struct tconn *t = arg;

	if (b->ended == TLSBRIDGE_END_NET_STALL ||
	    b->ended == TLSBRIDGE_END_PLAIN_STALL) {
		char addr[128];

		log_info("tls connection from %s: %s took nothing for %u s",
		    sockaddr_str(&t->client, addr, sizeof(addr)),
		    b->ended == TLSBRIDGE_END_NET_STALL ? "client" : "postern",
		    global_conf.timeout_stall);
	}
	log_debug("tls connection closed: %llu bytes in, %llu bytes out",
	    (unsigned long long)b->bytes_in, (unsigned long long)b->bytes_out);
	t->bridging = 0;
	t->tls = NULL;
	t->fd = -1;
	tconn_free(t);
}

static void
facts_fill(struct tls *tls, struct tls_facts *f)
{
	const char *v;

	memset(f, 0, sizeof(*f));
	if ((v = tls_conn_version(tls)) != NULL)
		snprintf(f->version, sizeof(f->version), "%s", v);
	if ((v = tls_conn_cipher(tls)) != NULL)
		snprintf(f->cipher, sizeof(f->cipher), "%s", v);
	if ((v = tls_conn_servername(tls)) != NULL)
		snprintf(f->servername, sizeof(f->servername), "%s", v);
}

static void
handshake_failed(struct tconn *t, const char *why)
{
	struct starttls_done done;
	char addr[128];

	log_info("tls handshake with %s failed: %s",
	    sockaddr_str(&t->client, addr, sizeof(addr)), why);
	if (t->listener != NULL)
		t->listener->failures++;
	if (t->starttls && authproc_iev != NULL) {
		memset(&done, 0, sizeof(done));
		imsgev_compose(authproc_iev, IMSG_STARTTLS_DONE, t->session_id,
		    -1, &done, sizeof(done));
	}
	tconn_free(t);
}

/* The handshake is done: give authproc a plaintext end, keep the other. */
static void
handshake_done(struct tconn *t)
{
	struct tls_session ts;
	struct starttls_done done;
	int sp[2], sent;

	evtimer_del(&t->timer);
	if (t->listener != NULL)
		t->listener->handshakes++;
	if (authproc_iev == NULL) {
		handshake_failed(t, "authproc not available");
		return;
	}
	if ((t->bridge = calloc(1, sizeof(*t->bridge))) == NULL) {
		log_warn("calloc");
		handshake_failed(t, "out of resources");
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sp) == -1) {
		log_warn("socketpair");
		handshake_failed(t, "out of resources");
		return;
	}
	if (t->starttls) {
		memset(&done, 0, sizeof(done));
		done.ok = 1;
		facts_fill(t->tls, &done.facts);
		sent = imsgev_compose(authproc_iev, IMSG_STARTTLS_DONE,
		    t->session_id, sp[1], &done, sizeof(done));
	} else {
		memset(&ts, 0, sizeof(ts));
		ts.listener_id = t->listener->conf.id;
		ts.client = t->client;
		ts.local = t->local;
		facts_fill(t->tls, &ts.facts);
		sent = imsgev_compose(authproc_iev, IMSG_TLS_SESSION, 0, sp[1],
		    &ts, sizeof(ts));
	}
	if (sent == -1) {
		/* the compose has closed sp[1] */
		log_warn("cannot hand a TLS session to authproc");
		close(sp[0]);
		handshake_failed(t, "out of resources");
		return;
	}
	t->bridging = 1;
	t->bridge->stall_sec = global_conf.timeout_stall;
	tlsbridge_start(t->bridge, t->tls, t->fd, sp[0], NULL, 0, NULL, 0,
	    tconn_bridge_done, t);
}

static void
handshake_step(int fd, short event, void *arg)
{
	struct tconn *t = arg;
	short want = 0;

	(void)fd;
	(void)event;
	switch (tlsbridge_handshake_events(t->tls, t->fd, &want)) {
	case 1:
		handshake_done(t);
		return;
	case 0:
		event_del(&t->ev);
		event_set(&t->ev, t->fd, want, handshake_step, t);
		event_add(&t->ev, NULL);
		return;
	default:
		handshake_failed(t, tls_error(t->tls));
	}
}

/* The client has said something: now it gets TLS state. */
static void
handshake_first(int fd, short event, void *arg)
{
	struct tconn *t = arg;
	struct tls_listener *l = t->listener;

	(void)event;
	if (tls_accept_socket(l->ctx, &t->tls, t->fd) == -1) {
		handshake_failed(t, tls_error(l->ctx));
		return;
	}
	handshake_step(fd, EV_READ, t);
}

/*
 * No TLS state (tens of KiB in the TLS library) until the client's first
 * bytes arrive: a connection that never sends any costs only its tconn
 * until the handshake time-out.
 */
static void
handshake_begin(struct tconn *t)
{
	struct tls_listener *l = t->listener;

	if (l->ctx == NULL) {
		handshake_failed(t, "no usable keypair on this listener");
		return;
	}
	event_del(&t->ev);
	event_set(&t->ev, t->fd, EV_READ, handshake_first, t);
	event_add(&t->ev, NULL);
}

static int
proxy_trusted(const struct sockaddr_storage *ss)
{
	return cidr_match_any(policy_conf.proxy, policy_conf.nproxy, ss);
}

/*
 * A handshake costs this process a connection slot, and once the client
 * has sent something the TLS library's state, for up to the handshake
 * time-out before authproc, which counts clients' connections, ever sees
 * it: so one address gets no more handshakes at once than it may hold
 * pre-auth connections.
 */
static int
handshakes_over_limit(const struct tconn *self)
{
	const struct tconn *t;
	uint32_t n = 0;

	if (policy_conf.max_conn_per_ip == 0 ||
	    self->client.ss_family == AF_UNSPEC ||
	    cidr_match_any(policy_conf.allow, policy_conf.nallow,
		&self->client))
		return 0;
	TAILQ_FOREACH(t, &tconns, entry)
	if (t != self && !t->bridging && !t->starttls && t->proxybuf == NULL &&
	    sockaddr_same_client(&t->client, &self->client) &&
	    ++n >= policy_conf.max_conn_per_ip)
		return 1;
	return 0;
}

/* Before its handshake: no alert, no goodbye, the socket just closes. */
static int
handshake_refused(struct tconn *t)
{
	char addr[128];

	if (!handshakes_over_limit(t))
		return 0;
	log_info("refused %s: too many TLS handshakes from it at once",
	    sockaddr_str(&t->client, addr, sizeof(addr)));
	tconn_free(t);
	return 1;
}

/* No TLS alert: the peer has not started TLS, and may not be TLS at all. */
static void
proxy_failed(struct tconn *t, const char *why)
{
	char addr[128];

	log_warnx("PROXY header from %s: %s; connection closed",
	    sockaddr_str(&t->client, addr, sizeof(addr)), why);
	tconn_free(t);
}

static void
proxy_wait(struct tconn *t)
{
	event_del(&t->ev);
	event_set(&t->ev, t->fd, EV_READ, proxy_step, t);
	event_add(&t->ev, NULL);
}

/* Take n bytes that recv(MSG_PEEK) has just shown are there. */
static int
proxy_take(struct tconn *t, size_t n)
{
	ssize_t got;

	got = recv(t->fd, t->proxybuf + t->proxylen, n, 0);
	if (got < 0 || (size_t)got != n) {
		proxy_failed(t, "connection lost");
		return -1;
	}
	t->proxylen += n;
	return 0;
}

/* From here on the header's client is the client, as on clear text. */
static void
proxy_done(struct tconn *t, const struct proxy_result *r)
{
	char from[128], client[128];

	if (r->has_addr) { /* else LOCAL: the balancer's own check */
		log_debug("PROXY header from %s names %s",
		    sockaddr_str(&t->client, from, sizeof(from)),
		    sockaddr_str(&r->src, client, sizeof(client)));
		t->client = r->src;
		t->local = r->dst;
	}
	free(t->proxybuf);
	t->proxybuf = NULL;
	t->proxylen = 0;
	event_del(&t->ev);
	if (handshake_refused(t))
		return;
	handshake_begin(t);
}

/*
 * Read the PROXY header and not one byte more: what follows is the
 * client's ClientHello, and libtls reads it from the socket itself.  So
 * look with MSG_PEEK and take only header bytes.  proxy_parse() reports
 * PROXY_INCOMPLETE only when every byte it saw lies inside the header,
 * so those are taken at once (peeking again would find the same bytes
 * and spin); once it is done, exactly the rest of the header is taken.
 */
static void
proxy_step(int fd, short event, void *arg)
{
	struct tconn *t = arg;
	struct proxy_result r;
	char addr[128];
	ssize_t n;

	(void)event;
	if (t->proxylen >= PROXY_V2_MAX) {
		proxy_failed(t, "header too long");
		return;
	}
	n = recv(fd, t->proxybuf + t->proxylen, PROXY_V2_MAX - t->proxylen,
	    MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		proxy_wait(t);
		return;
	}
	if (n == 0 && t->proxylen == 0) {
		/* a balancer's bare TCP health check: not worth a warning */
		log_debug("%s closed before its PROXY header",
		    sockaddr_str(&t->client, addr, sizeof(addr)));
		tconn_free(t);
		return;
	}
	if (n <= 0) {
		proxy_failed(t,
		    n == 0 ? "closed within the header" : strerror(errno));
		return;
	}
	switch (proxy_parse(t->proxybuf, t->proxylen + n, &r)) {
	case PROXY_INCOMPLETE:
		if (proxy_take(t, n) == 0)
			proxy_wait(t);
		return;
	case PROXY_BAD:
		proxy_failed(t, "malformed or too long");
		return;
	case PROXY_OK:
		break;
	}
	if (r.consumed <= t->proxylen) { /* cannot be, by the above */
		proxy_failed(t, "parser disagrees with itself");
		return;
	}
	if (proxy_take(t, r.consumed - t->proxylen) == -1)
		return;
	proxy_done(t, &r);
}

/* Only balancers we trust may speak for clients. */
static void
proxy_begin(struct tconn *t)
{
	char addr[128];

	if (!proxy_trusted(&t->client)) {
		log_warnx("refused %s: not a trusted PROXY sender",
		    sockaddr_str(&t->client, addr, sizeof(addr)));
		tconn_free(t);
		return;
	}
	if ((t->proxybuf = malloc(PROXY_V2_MAX)) == NULL) {
		log_warn("malloc");
		tconn_free(t);
		return;
	}
	proxy_step(t->fd, EV_READ, t);
}

static void
handshake_timeout(int fd, short event, void *arg)
{
	struct tconn *t = arg;

	(void)fd;
	(void)event;
	/* one deadline covers the PROXY header and the handshake */
	if (t->proxybuf != NULL)
		proxy_failed(t, "timeout");
	else
		handshake_failed(t, "handshake timeout");
}

static void
tconn_start(struct tls_listener *l, int fd, uint32_t session_id, int starttls)
{
	struct tconn *t;
	struct timeval tv;
	socklen_t len;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		log_warn("calloc");
		close(fd);
		return;
	}
	t->listener = l;
	t->fd = fd;
	/*
	 * TLS writes small records, which Nagle would hold for an ACK: the
	 * socket has TCP_NODELAY from its listener (accepted here, or by
	 * authproc for STARTTLS).
	 */
	t->session_id = session_id;
	t->starttls = starttls;
	len = sizeof(t->client);
	if (getpeername(fd, (struct sockaddr *)&t->client, &len) == -1)
		t->client.ss_family = AF_UNSPEC;
	len = sizeof(t->local);
	if (getsockname(fd, (struct sockaddr *)&t->local, &len) == -1)
		t->local = l->conf.addr;
	TAILQ_INSERT_TAIL(&tconns, t, entry);
	ntconns++;
	listeners_update();
	/* set before any path may free the tconn, which deletes it */
	event_set(&t->ev, fd, EV_READ, handshake_first, t);
	evtimer_set(&t->timer, handshake_timeout, t);
	tv.tv_sec = tls_conf.timeout_handshake;
	tv.tv_usec = 0;
	evtimer_add(&t->timer, &tv);
	/* after STARTTLS authproc has read the header already */
	if (!starttls && (l->conf.flags & LISTEN_PROXY))
		proxy_begin(t);
	else if (starttls || !handshake_refused(t))
		handshake_begin(t);
}

/*
 * Watch the tls listeners only while this process can take a connection.
 * The sockets are shared with the other tlsproc workers: not watching
 * (event_del) is private to this process and leaves the connections in
 * the listen queue to the others, where accepting and closing them would
 * refuse clients another worker has room for.  Nothing here may touch
 * the socket itself (no shutdown, no close, no flag change), since that
 * would stop every worker.  Only changes reach epoll_ctl.
 */
static void
listeners_update(void)
{
	struct tls_listener *l;
	int want;

	want = ready && !accept_error && ntconns < global_conf.max_sessions;
	if (want == accepting)
		return;
	accepting = want;
	TAILQ_FOREACH(l, &listeners, entry)
	{
		if (l->fd == -1)
			continue;
		if (want)
			event_add(&l->ev, NULL);
		else
			event_del(&l->ev);
	}
}

static void
accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	accept_error = 0;
	listeners_update();
}

static void
listener_accept(int fd, short event, void *arg)
{
	struct tls_listener *l = arg;
	struct timeval tv = {ACCEPT_PAUSE_SEC, 0};
	int cfd;

	(void)event;
	/* EAGAIN is common: another worker took the connection first */
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("accept; pausing for %d s", ACCEPT_PAUSE_SEC);
			accept_error = 1;
			listeners_update();
			evtimer_add(&accept_pause_ev, &tv);
		}
		return;
	}
	if (ntconns >= global_conf.max_sessions) {
		/* cannot happen: accepting stops at the limit */
		close(cfd);
		return;
	}
	tconn_start(l, cfd, 0, 0);
}

static void
authproc_lost(void)
{
	struct tconn *t, *next;

	imsgev_clear(authproc_iev);
	free(authproc_iev);
	authproc_iev = NULL;
	/* their sessions died with that authproc; ids will be reused */
	for (t = TAILQ_FIRST(&tconns); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->starttls && !t->bridging)
			tconn_free(t);
	}
	retire_check();
}

static int
authproc_handle(struct imsg *imsg, void *arg)
{
	struct starttls_request *req = imsg->data;
	struct tls_listener *l;

	(void)arg;
	if ((l = listener_find(req->listener_id)) == NULL ||
	    !(l->conf.flags & LISTEN_STARTTLS)) {
		log_warnx("authproc asked STARTTLS on listener %u",
		    req->listener_id);
		return -1;
	}
	if (ntconns >= global_conf.max_sessions) {
		struct starttls_done done;

		memset(&done, 0, sizeof(done));
		imsgev_compose(authproc_iev, IMSG_STARTTLS_DONE,
		    imsg->hdr.peerid, -1, &done, sizeof(done));
		return 0; /* imsg_free closes the socket */
	}
	tconn_start(l, imsg_take_fd(imsg), imsg->hdr.peerid, 1);
	return 0;
}

static void
authproc_dispatch(int fd, short event, void *arg)
{
	(void)fd;
	if (proc_peer_dispatch(arg, event, PROC_AUTHPROC,
		authproc_to_tlsproc_rules, authproc_to_tlsproc_nrules,
		authproc_handle, NULL) != PEER_OK)
		authproc_lost();
}

static void
keypair_blob(struct imsg *imsg)
{
	struct conf_blob *b = imsg->data;
	struct tls_keypair *k;

	if (!conf_blob_valid(imsg) || b->kind == BLOB_CA ||
	    (k = keypair_find(b->owner_id)) == NULL)
		fatalx("bad keypair blob");
	if (blob_store(&k->blob[b->kind], &k->bloblen[b->kind],
		&k->blobgot[b->kind], b, (unsigned char *)(b + 1)) == -1)
		fatalx("keypair %s: blob out of order", k->conf.name);
}

/* One server context per listener, from its keypairs. */
static void
listener_context(struct tls_listener *l)
{
	struct tls_keypair *kp[LISTEN_MAX_KEYPAIRS];
	char err[256];
	size_t i, n = 0;

	for (i = 0; i < l->conf.nkeypairs && i < LISTEN_MAX_KEYPAIRS; i++) {
		kp[n] = keypair_find(l->conf.keypairs[i]);
		if (kp[n] == NULL || kp[n]->blob[BLOB_CERT] == NULL ||
		    kp[n]->blob[BLOB_KEY] == NULL ||
		    kp[n]->blobgot[BLOB_KEY] != kp[n]->bloblen[BLOB_KEY]) {
			log_warnx("listener %s: keypair %u missing",
			    l->conf.name, l->conf.keypairs[i]);
			continue;
		}
		n++;
	}
	if ((l->ctx = tls_server_context(&tls_conf, kp, n, err, sizeof(err))) ==
	    NULL)
		log_warnx("listener %s: no TLS: %s", l->conf.name, err);
}

/* The keys are inside the TLS contexts now; drop the PEM copies. */
static void
keypairs_wipe(void)
{
	struct tls_keypair *k;
	int i;

	TAILQ_FOREACH(k, &keypairs, entry)
	{
		for (i = 0; i <= BLOB_CA; i++) {
			if (k->blob[i] == NULL)
				continue;
			explicit_bzero(k->blob[i], k->bloblen[i]);
			free(k->blob[i]);
			k->blob[i] = NULL;
		}
	}
}

/* posternctl and the metrics: handshakes per listener. */
static void
ctl_query(struct imsg *imsg)
{
	const struct ctl_query *q = imsg->data;
	struct ctl_done d = {0, 1};
	struct ctl_listener c;
	struct tls_listener *l;

	if (!ctl_query_valid(q))
		fatalx("bad control query");
	if (q->command == CTL_SHOW_STATS)
		TAILQ_FOREACH(l, &listeners, entry)
		{
			memset(&c, 0, sizeof(c));
			c.listener_id = l->conf.id;
			c.handshakes = l->handshakes;
			c.failures = l->failures;
			imsgev_compose(&parent_iev, IMSG_CTL_LISTENER,
			    imsg->hdr.peerid, -1, &c, sizeof(c));
		}
	imsgev_compose(&parent_iev, IMSG_CTL_DONE, imsg->hdr.peerid, -1, &d,
	    sizeof(d));
}

static void
parent_handle(struct imsg *imsg)
{
	struct tls_listener *l;
	struct tls_keypair *k;
	struct peer_channel *pc;

	switch (imsg->hdr.type) {
	case IMSG_CONF_SANDBOX:
		memcpy(&sandbox_conf, imsg->data, sizeof(sandbox_conf));
		if (!imsg_string_ok(sandbox_conf.chroot,
			sizeof(sandbox_conf.chroot)))
			fatalx("bad sandbox message");
		have_sandbox = 1;
		break;
	case IMSG_CONF_GLOBAL:
		memcpy(&global_conf, imsg->data, sizeof(global_conf));
		break;
	case IMSG_CONF_POLICY:
		memcpy(&policy_conf, imsg->data, sizeof(policy_conf));
		if (policy_conf.nproxy > POLICY_MAX_ALLOW ||
		    policy_conf.nallow > POLICY_MAX_ALLOW)
			fatalx("bad policy message");
		break;
	case IMSG_CONF_TLS_GLOBAL:
		memcpy(&tls_conf, imsg->data, sizeof(tls_conf));
		if (!imsg_string_ok(tls_conf.ciphers, sizeof(tls_conf.ciphers)))
			fatalx("bad tls message");
		break;
	case IMSG_CONF_KEYPAIR:
		if ((k = calloc(1, sizeof(*k))) == NULL)
			fatal("calloc");
		memcpy(&k->conf, imsg->data, sizeof(k->conf));
		if (!imsg_string_ok(k->conf.name, sizeof(k->conf.name)))
			fatalx("bad keypair message");
		TAILQ_INSERT_TAIL(&keypairs, k, entry);
		break;
	case IMSG_CONF_BLOB:
		keypair_blob(imsg);
		break;
	case IMSG_CONF_LISTENER:
		if ((l = calloc(1, sizeof(*l))) == NULL)
			fatal("calloc");
		memcpy(&l->conf, imsg->data, sizeof(l->conf));
		if (!imsg_string_ok(l->conf.name, sizeof(l->conf.name)))
			fatalx("bad listener message");
		l->fd = imsg_take_fd(imsg);
		if (l->fd != -1)
			event_set(&l->ev, l->fd, EV_READ | EV_PERSIST,
			    listener_accept, l);
		TAILQ_INSERT_TAIL(&listeners, l, entry);
		break;
	case IMSG_CONF_END:
		/*
		 * Contexts are built from trusted parent data before the
		 * sandbox, so OpenSSL's one-time set-up (which may want
		 * files) is done; no client byte has been read yet.
		 */
		if (!have_sandbox)
			fatalx("no sandbox configuration");
		TAILQ_FOREACH(l, &listeners, entry)
		listener_context(l);
		keypairs_wipe();
		sandbox_enter(PROC_TLSPROC, &sandbox_conf);
		ready = 1;
		listeners_update();
		log_info("ready");
		break;
	case IMSG_CTL_QUERY:
		if (!ready)
			fatalx("control query before the configuration");
		ctl_query(imsg);
		break;
	case IMSG_DRAIN:
		if (!ready)
			fatalx("drain before the configuration");
		drain();
		break;
	case IMSG_PEER_CHANNEL:
		pc = imsg->data;
		if (pc->role != PROC_AUTHPROC)
			fatalx("unexpected peer %u", pc->role);
		if (authproc_iev != NULL)
			authproc_lost();
		if ((authproc_iev = calloc(1, sizeof(*authproc_iev))) == NULL)
			fatal("calloc");
		imsgev_init(authproc_iev, imsg_take_fd(imsg), "authproc",
		    authproc_dispatch, NULL);
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

void
tlsproc_main(void)
{
	event_init();
	if (tls_init() == -1)
		fatalx("tls_init failed");
	evtimer_set(&accept_pause_ev, accept_resume, NULL);
	proc_child_init(&parent_iev, parent_dispatch);
	event_dispatch();
	exit(0);
}
