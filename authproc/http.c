/*
 * HTTP in authproc: read one request head at a time, parse it strictly,
 * find its routing key and hand relay the head as postern serialises it,
 * with the client socket, for one exchange.  relay answers when the
 * exchange is over and the connection comes back here for the next
 * request (keep-alive), unless it became a WebSocket.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "authproc.h"
#include "log.h"

struct conf_http authproc_http;

static struct http_request req; /* one at a time; large */
static struct http_route_key key;
static unsigned char msg[IMSG_MAX_SIZE];
static size_t scan_held; /* bytes of bodies held to be looked through */

#define HTTP_SCAN_STEP (64 * 1024)

static void http_input(struct session *);

/* A page of our own, and the connection ends after it. */
static void
http_answer_close(struct session *s, int status, const char *why,
    const char *extra)
{
	char page[1024];
	int n;

	log_info("session %016llx: http %d: %s", (unsigned long long)s->sid,
	    status, why);
	if ((n = http_error_page(page, sizeof(page), status, 1, extra)) > 0)
		session_write(s, page, n);
	session_close_after_write(s);
}

static void
http_greet(struct session *s)
{
	struct timeval tv = {authproc_http.timeout_idle, 0};

	/* the client speaks first; the head has its own deadline */
	session_deadline(s, 0);
	bufferevent_set_timeouts(s->bev, &tv, NULL);
}

/* The host part of a Host value, without its port. */
static size_t
http_host_name(const char *host, size_t len)
{
	size_t i;

	if (len > 0 && host[0] == '[') {
		for (i = 0; i < len && host[i] != ']'; i++)
			;
		return i < len ? i + 1 : len;
	}
	for (i = 0; i < len && host[i] != ':'; i++)
		;
	return i;
}

/* mode redirect: the same host and target, over https. */
static void
http_redirect(struct session *s)
{
	char loc[HTTP_HEAD_MAX + 512], port[16] = "";
	size_t hl = http_host_name(req.host, req.hostlen);
	uint32_t p = s->listener->conf.redirect_port;
	int n;

	if (p != 0 && p != 443)
		snprintf(port, sizeof(port), ":%u", p);
	n = snprintf(loc, sizeof(loc), "Location: https://%.*s%s%.*s\r\n",
	    (int)hl, req.host, port, (int)req.targetlen, req.target);
	if (n < 0 || (size_t)n >= sizeof(loc)) {
		http_answer_close(s, 414, "redirect target too long", NULL);
		return;
	}
	http_answer_close(s, 301, "redirected to https", loc);
}

/*
 * What kind of client a path belongs to, for the audit log: the attacks
 * on mail systems go to ActiveSync, EWS and DAV with Basic credentials.
 */
static const char *
http_path_class(void)
{
	static const struct {
		const char *prefix;
		const char *class;
	} classes[] = {
	    {"/microsoft-server-activesync", "activesync"},
	    {"/ews/", "ews"},
	    {"/dav/", "dav"},
	    {"/principals/", "dav"},
	    {"/calendars/", "dav"},
	    {"/addressbooks/", "dav"},
	    {"/.well-known/cal", "dav"},
	    {"/.well-known/card", "dav"},
	    {"/service/soap", "webmail"},
	    {"/service/home/", "webmail"},
	    {"/home/", "webmail"},
	};
	size_t i, n;

	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		n = strlen(classes[i].prefix);
		if (req.targetlen >= n &&
		    strncasecmp(req.target, classes[i].prefix, n) == 0)
			return classes[i].class;
	}
	return "other";
}

/* The target's length without its query. */
static size_t
http_path_len(void)
{
	size_t n;

	for (n = 0; n < req.targetlen && req.target[n] != '?'; n++)
		;
	return n;
}

/*
 * The path for the access log: the query may carry tokens, so it is
 * dropped unless "access log query".
 */
static void
http_log_path(char *dst, size_t dstsz)
{
	size_t n = authproc_http.access_query ? req.targetlen : http_path_len();

	snprintf(dst, dstsz, "%.*s", (int)n, req.target);
}

/*
 * A body under a login path larger than the usual read buffer is read
 * whole before anything is forwarded.  The buffer grows with what
 * arrives, a step at a time (and never past the body: what follows is
 * relay's to read), and takes its room from a budget shared by all
 * clients: a head that only announces a large body holds little.
 */
static int
http_scan_hold(struct session *s, size_t have, size_t need)
{
	size_t next =
	    need - have > HTTP_SCAN_STEP ? have + HTTP_SCAN_STEP : need;

	if (next > s->http_scan_held) {
		if (next - s->http_scan_held > HTTP_SCAN_HELD_MAX - scan_held)
			return -1;
		scan_held += next - s->http_scan_held;
		s->http_scan_held = next;
	}
	/* woken when the step is in, not for every piece of it */
	bufferevent_setwatermark(s->bev, EV_READ, next, next);
	return 0;
}

/*
 * The exchange is over or the session ends: back to the usual buffer.
 * Held until then, as relay keeps a body it was handed as long.
 */
static void
http_scan_release(struct session *s)
{
	if (s->http_scan_held == 0)
		return;
	scan_held -= s->http_scan_held;
	s->http_scan_held = 0;
	bufferevent_setwatermark(s->bev, EV_READ, 0, PIPELINE_MAX);
}

/* What of a body read whole did not fit beside the head goes next. */
static int
http_send_body(struct session *s, const unsigned char *p, size_t len)
{
	size_t n;

	while (len > 0) {
		n = len > IMSG_MAX_SIZE - sizeof(struct imsg_hdr)
		    ? IMSG_MAX_SIZE - sizeof(struct imsg_hdr)
		    : len;
		if (imsgev_compose(s->relay, IMSG_HTTP_BODY, s->id, -1, p, n) ==
		    -1) {
			log_warn("session %016llx: cannot queue for relay",
			    (unsigned long long)s->sid);
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* The record, the head as we serialise it, and the body read so far. */
static int
http_forward(struct session *s, const unsigned char *in, size_t len)
{
	struct http_request_rec *rec = (struct http_request_rec *)msg;
	char *head = (char *)(rec + 1);
	struct http_forward fwd;
	char addr[INET6_ADDRSTRLEN];
	size_t room, body, first;
	ssize_t hl;
	int keep_reading;

	memset(rec, 0, sizeof(*rec));
	memset(&fwd, 0, sizeof(fwd));
	fwd.client_addr = sockaddr_host(&s->client, addr, sizeof(addr));
	fwd.scheme = s->tls ? "https" : "http";
	fwd.trust_forwarded = policy_proxy_trusted(&s->client);
	room = sizeof(msg) - sizeof(struct imsg_hdr) - sizeof(*rec);
	if ((hl = http_request_serialize(&req, &fwd, head, room)) < 0)
		return 431;
	/*
	 * A request with a body, or a WebSocket upgrade, hands relay the
	 * reading: everything read goes, the body and past it the client's
	 * next requests, which relay reads on from and gives back in order
	 * (the read watermark keeps it all within one message).  Without
	 * one, relay reads nothing of the client: what follows the head
	 * stays here, and unless the request is a login attempt (whose
	 * pending result must not be settled by the client leaving) we go
	 * on reading, which spares a pair of epoll_ctl calls per request.
	 */
	keep_reading =
	    req.framing == HTTP_BODY_NONE && !(req.flags & HTTP_REQ_WEBSOCKET);
	body = keep_reading ? 0 : len - req.headlen;
	/* a body read whole to be looked through follows in pieces */
	first = body > room - hl ? room - hl : body;
	keep_reading = keep_reading && !s->http_checked;
	memcpy(head + hl, in + req.headlen, first);
	rec->listener_id = s->listener->conf.id;
	rec->key_kind = key.kind;
	rec->key_source = key.source;
	rec->framing = req.framing;
	rec->flags = req.flags;
	if (s->listener->conf.flags & LISTEN_HSTS)
		rec->flags |= HTTP_REQ_HSTS;
	rec->headlen = hl;
	rec->bodylen = first;
	rec->bodymore = body - first;
	rec->tls = s->tls;
	rec->content_length =
	    req.framing == HTTP_BODY_LENGTH ? req.content_length : 0;
	rec->sid = s->sid;
	rec->start_ms = wallclock_ms();
	rec->client = s->client;
	rec->local = s->local;
	rec->facts = s->facts;
	memcpy(rec->key, key.key, sizeof(rec->key));
	snprintf(rec->host, sizeof(rec->host), "%.*s", (int)req.hostlen,
	    req.host);
	snprintf(rec->method, sizeof(rec->method), "%.*s", (int)req.methodlen,
	    req.method);
	http_log_path(rec->path, sizeof(rec->path));
	/* a form login is webmail wherever its form posts */
	snprintf(rec->path_class, sizeof(rec->path_class), "%s",
	    s->http_form ? "webmail" : http_path_class());
	if (s->http_checked) {
		rec->attempt = s->http_form == 2 ? 3 : s->http_form ? 2 : 1;
		memcpy(rec->login_user, s->req.user, sizeof(rec->login_user));
	}
	if (session_send_relay(s, IMSG_HTTP_REQUEST, msg,
		sizeof(*rec) + hl + first, keep_reading) == -1) {
		explicit_bzero(msg, sizeof(msg));
		return 503;
	}
	explicit_bzero(msg, sizeof(*rec) + hl + first);
	if (http_send_body(s, in + req.headlen + first, body - first) == -1) {
		/* relay has the head: no page of ours may follow it */
		session_close_after_write(s);
		return 0;
	}
	/* what relay now has is no longer ours: credentials are wiped */
	explicit_bzero((void *)in, req.headlen + body);
	evbuffer_drain(bufferevent_get_input(s->bev), req.headlen + body);
	return 0;
}

/*
 * Basic credentials are a login attempt whether or not they route the
 * request ("http route-by" without basic): find them anyway.
 */
static int
http_basic_anyway(struct http_route_key *k)
{
	const struct http_field *f;
	int r;

	if (k->has_basic || authproc_http.route.use_basic ||
	    (f = http_request_field(&req, "Authorization")) == NULL)
		return 0;
	r = http_basic_user(f->value, f->valuelen, k->basic_user,
	    sizeof(k->basic_user));
	if (r == -1)
		return -1;
	k->has_basic = r == 1;
	return 0;
}

static int
http_form_method_is(const struct http_form_login *f)
{
	return req.methodlen == strlen(f->method) &&
	    memcmp(req.method, f->method, req.methodlen) == 0;
}

/* Is a normalised path the form's path, or under it for a prefix? */
static int
http_form_path_matches(const struct http_form_login *f, const char *path,
    size_t plen)
{
	size_t n = strlen(f->path);

	/* case aside: the servers behind may not care either */
	if (plen < n || strncasecmp(path, f->path, n) != 0)
		return 0;
	if (plen == n)
		return 1;
	return f->prefix && (path[n] == '/' || n == 1);
}

/*
 * A body authproc must read whole before anything is forwarded: a
 * client that asked to be told to send it (Expect: 100-continue) is
 * told, once, if there is room for it.  Returns 0 once the body is
 * whole, 1 while it is still coming (within the head's deadline), -1
 * when it was refused.
 */
static int
http_body_wait(struct session *s, size_t len)
{
	size_t need = req.headlen + req.content_length;

	if (len >= need)
		return 0;
	if (need > PIPELINE_MAX && http_scan_hold(s, len, need) == -1) {
		http_answer_close(s, 503,
		    "too many large bodies being looked through",
		    "Retry-After: 5\r\n");
		return -1;
	}
	if ((req.flags & HTTP_REQ_EXPECT_100) && !s->http_continued) {
		session_write(s, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		s->http_continued = 1;
	}
	return 1;
}

/* The form login's user is known: the policy is asked next. */
static void
http_form_start(struct session *s, const char *user, int soap)
{
	snprintf(s->req.user, sizeof(s->req.user), "%s", user);
	s->req.mech = MECH_FORM;
	s->http_form = soap ? 2 : 1;
	snprintf(s->http_class, sizeof(s->http_class), "webmail");
	session_login(s);
}

/*
 * A form login is an attempt for the user its body names: the body is
 * read whole (it is small) and the policy asked, as for Basic.  One
 * whose user cannot be told is refused: it could not be counted.
 */
static void
http_form_login(struct session *s, const struct http_form_login *f,
    const unsigned char *in, size_t len)
{
	const struct http_field *ct;
	char user[USER_MAX_LEN + 1];
	int r;

	if (req.framing != HTTP_BODY_LENGTH ||
	    req.content_length > HTTP_FORM_BODY_MAX) {
		http_answer_close(s, 413, "form login body too large", NULL);
		return;
	}
	if (http_body_wait(s, len) != 0)
		return;
	/* a server may read the query's value before the body's */
	if (http_query_arg(req.target, req.targetlen, f->field, user,
		sizeof(user)) != 0) {
		http_answer_close(s, 400, "form login field in the query",
		    NULL);
		return;
	}
	ct = http_request_field(&req, "Content-Type");
	r = http_form_user(ct != NULL ? ct->value : "",
	    ct != NULL ? ct->valuelen : 0, (const char *)in + req.headlen,
	    req.content_length, f->field, user, sizeof(user));
	if (r <= 0) {
		http_answer_close(s, 400, "form login without a user", NULL);
		return;
	}
	http_form_start(s, user, 0);
}

/*
 * Requests under a marker's path (every SOAP request, Zimbra's at
 * /service/soap) are logins only when their body holds the marker: the
 * body, if small enough, is looked through before anything is
 * forwarded.  Returns 1 when the request was taken here (a login, a
 * refusal, or waiting for the rest of the body), 0 to forward it.
 */
static int
http_soap_check(struct session *s, const struct http_form_login **scan,
    size_t nscan, const unsigned char *in, size_t len)
{
	const char *body = (const char *)in + req.headlen;
	char user[USER_MAX_LEN + 1], other[USER_MAX_LEN + 1];
	size_t i;
	int r, found = 0, refused = 0;

	if (req.framing == HTTP_BODY_NONE)
		return 0;
	if (req.framing != HTTP_BODY_LENGTH) {
		/* a login could hide in it: the server would read it all */
		http_answer_close(s, 411, "chunked body under a login path",
		    NULL);
		return 1;
	}
	if (req.content_length > authproc_http.soap_scan_max) {
		/* too large to look through: see postern.conf(5) */
		if (!authproc_http.soap_oversize_refuse)
			return 0;
		http_answer_close(s, 413,
		    "body under a login path too large "
		    "to look through",
		    NULL);
		return 1;
	}
	if (http_body_wait(s, len) != 0)
		return 1;
	user[0] = '\0';
	for (i = 0; i < nscan; i++) {
		r = http_soap_login(body, req.content_length, scan[i]->marker,
		    scan[i]->field, found ? other : user, sizeof(user));
		/*
		 * Any reading refused refuses the request (a decoy in one
		 * field must not count while the server reads another); a
		 * login without this form's field may have the other's.
		 */
		if (r == -1 ||
		    (r == 1 && found++ && strcmp(user, other) != 0)) {
			found = 0;
			refused = 1;
			break;
		}
		if (r == 2)
			refused = 1;
	}
	if (found) {
		http_form_start(s, user, 1);
		return 1;
	}
	if (refused) {
		http_answer_close(s, 400, "login whose user cannot be told",
		    NULL);
		return 1;
	}
	return 0;
}

/* Could a form login of this request's method cover this path? */
static int
http_form_path_any(const char *path, size_t plen)
{
	const struct http_form_login *f;
	size_t i;

	for (i = 0; i < authproc_http.nforms; i++) {
		f = &authproc_http.forms[i];
		if (http_form_method_is(f) &&
		    (http_form_path_matches(f, path, plen) ||
			(f->prefix && plen > strlen(f->path) &&
			    strncasecmp(path, f->path, strlen(f->path)) == 0)))
			return 1;
	}
	return 0;
}

/*
 * Is this request one of the configured form logins?  Returns 1 when it
 * was taken here, 0 to go on with it as an ordinary request.
 */
static int
http_form_check(struct session *s, const unsigned char *in, size_t len)
{
	const struct http_form_login *f, *scan[HTTP_MAX_FORMS];
	char path[HTTP_TARGET_NORM_MAX];
	size_t i, nscan = 0, methods = 0;
	ssize_t plen;

	for (i = 0; i < authproc_http.nforms; i++)
		methods += http_form_method_is(&authproc_http.forms[i]);
	if (methods == 0)
		return 0;
	plen = http_path_normalize(req.target, http_path_len(), path,
	    sizeof(path));
	if (plen < 0) {
		/*
		 * A folder named "100% #1" is no reason to refuse a POST;
		 * one that some reading could take to a login path is.
		 */
		plen = http_path_loose(req.target, http_path_len(), path,
		    sizeof(path));
		if (plen >= 0 && !http_form_path_any(path, plen))
			return 0;
		http_answer_close(s, 400, "path that cannot be normalised",
		    NULL);
		return 1;
	}
	for (i = 0; i < authproc_http.nforms; i++) {
		f = &authproc_http.forms[i];
		if (!http_form_method_is(f) ||
		    !http_form_path_matches(f, path, plen))
			continue;
		if (f->marker[0] == '\0') {
			http_form_login(s, f, in, len);
			return 1;
		}
		scan[nscan++] = f;
	}
	return nscan > 0 ? http_soap_check(s, scan, nscan, in, len) : 0;
}

/* A whole head: answer it ourselves or give it to relay. */
static void
http_request_ready(struct session *s, const unsigned char *in, size_t len)
{
	uint32_t mode = s->listener->conf.http_mode;
	int status;

	/* counted once, however often its head is parsed again */
	if (!s->http_counted) {
		if (policy_request(&s->client, wallclock_ms())) {
			proc_stats.throttled[CTL_LIMIT_REQUESTS]++;
			http_answer_close(s, 429,
			    "address over its request rate",
			    "Retry-After: 10\r\n");
			return;
		}
		s->http_counted = 1;
	}
	if (!s->tls && mode == HTTP_MODE_HTTPS) {
		http_answer_close(s, 403, "plain http refused", NULL);
		return;
	}
	if (!s->tls && mode == HTTP_MODE_REDIRECT) {
		http_redirect(s);
		return;
	}
	if (http_route_key(&req, &authproc_http.route, &key) == -1 ||
	    http_basic_anyway(&key) == -1) {
		http_answer_close(s, 400, "malformed credentials or path",
		    NULL);
		return;
	}
	/* a form login is judged as one, whatever else it carries */
	if (!s->http_checked && http_form_check(s, in, len)) {
		explicit_bzero(&key, sizeof(key));
		return;
	}
	if (key.has_basic && key.basic_user[0] == '\0') {
		/* credentials for a name we could not count: no try at all */
		explicit_bzero(&key, sizeof(key));
		http_answer_close(s, 400,
		    "Basic credentials without a usable name", NULL);
		return;
	}
	if (key.has_basic && !s->http_checked) {
		/*
		 * Basic credentials make the request a login attempt, under
		 * the policy mail logins answer to; http_send_login() goes
		 * on once it lets the attempt through.
		 */
		snprintf(s->req.user, sizeof(s->req.user), "%s",
		    key.basic_user);
		s->req.mech = MECH_BASIC;
		snprintf(s->http_class, sizeof(s->http_class), "%s",
		    http_path_class());
		explicit_bzero(&key, sizeof(key));
		session_login(s);
		return;
	}
	session_deadline(s, 0);
	if ((status = http_forward(s, in, len)) != 0)
		http_answer_close(s, status,
		    status == 431 ? "head too large to forward"
				  : "relay not available",
		    NULL);
	explicit_bzero(&key, sizeof(key));
}

static void
http_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct http_limits lim;
	size_t len;
	unsigned char *p;

	if (s->state != S_PREAUTH) {
		/*
		 * A full buffer while relay has the exchange: libevent would
		 * call us again and again, a busy loop; reading resumes when
		 * the exchange is over.
		 */
		if (evbuffer_get_length(in) >= PIPELINE_MAX)
			bufferevent_disable(s->bev, EV_READ);
		return;
	}
	if ((len = evbuffer_get_length(in)) == 0)
		return;
	/* from the first byte of a head, the head has its deadline */
	if (!session_deadline_armed(s))
		session_deadline(s, authproc_http.timeout_header);
	lim.max_head = authproc_http.max_head;
	lim.max_target = authproc_http.max_target;
	lim.max_body = authproc_http.max_body;
	p = evbuffer_pullup(in, -1);
	switch (http_request_parse((const char *)p, len, &lim, &req)) {
	case HTTP_PARSE_INCOMPLETE:
		return;
	case HTTP_PARSE_ERROR:
		http_answer_close(s, req.status, req.reason, NULL);
		return;
	case HTTP_PARSE_OK:
		if (s->http_continued)
			req.flags |= HTTP_REQ_CONTINUED;
		http_request_ready(s, p, len);
		return;
	}
}

/*
 * The policy let the request's login through (maybe after asking the
 * shared counters): parse the head again, as nothing of it was drained,
 * and forward it.
 */
static void
http_send_now(struct session *s)
{
	s->http_checked = 1;
	s->state = S_PREAUTH;
	http_input(s);
}

static void
http_delay_done(int fd, short event, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)event;
	if (s->state != S_DELAY)
		return;
	http_send_now(s);
	session_maybe_free(s);
}

/*
 * After failed logins on this connection the next one waits, growing
 * as for mail (throttle delay); relay answers the client directly, so
 * the wait comes before the attempt rather than after its failure.
 */
static void
http_send_login(struct session *s)
{
	uint32_t delay;
	struct timeval tv;

	if (s->failures == 0 ||
	    (delay = policy_failure_delay(s->failures)) == 0) {
		http_send_now(s);
		return;
	}
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	s->state = S_DELAY;
	evtimer_set(&s->delay_ev, http_delay_done, s);
	evtimer_add(&s->delay_ev, &tv);
}

/* relay's verdict on the login, from the upstream's answer. */
static void
http_attempt_over(struct session *s, uint32_t login)
{
	s->http_counted = 0;
	s->http_class[0] = '\0';
	/* the 100 was for that request, login or not */
	s->http_continued = 0;
	if (!s->http_checked)
		return;
	s->http_checked = s->http_form = 0;
	if (login == 2)
		s->failures++;
	session_attempt_done(s, login == 2);
}

/*
 * The verdict ahead of the exchange's end: the attempt is settled, the
 * exchange goes on (settling it would otherwise say we are waiting for
 * the next request already).
 */
static void
http_exchange_verdict(struct session *s, uint32_t login)
{
	http_attempt_over(s, login);
	s->state = S_LOGIN_SENT;
}

/*
 * relay is done with one exchange.  The bytes it read past the end of
 * the body are the start of the next request: they go back into our
 * buffer, empty since the hand-over.
 */
static int
http_exchange_done(struct session *s, const struct http_done *d,
    const unsigned char *leftover)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	http_attempt_over(s, d->login);
	if (d->result != HTTP_DONE_KEEPALIVE)
		s->relay_has_fd = 0; /* relay closed it, or splices it */
	switch (d->result) {
	case HTTP_DONE_TAKEN:
		session_handed_off(s);
		return -1;
	case HTTP_DONE_KEEPALIVE:
		/* a reload: the next request goes to the new generation */
		if (!authproc_draining())
			break;
		/* FALLTHROUGH */
	default:
		session_close_after_write(s);
		return 0;
	}
	if (d->leftover > 0 &&
	    evbuffer_prepend(in, leftover, d->leftover) == -1) {
		session_close_after_write(s);
		return 0;
	}
	s->state = S_PREAUTH;
	http_scan_release(s);
	http_greet(s);
	bufferevent_enable(s->bev, EV_READ);
	http_input(s);
	return 0;
}

/* Idle too long, or a head too slow. */
static void
http_timeout(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0 &&
	    s->state == S_PREAUTH)
		http_answer_close(s, 408, "request head too slow", NULL);
	else
		session_close_after_write(s);
}

/*
 * Before relay had the request (no relay to take it) a page says so;
 * after, relay may have answered part of it already, so the
 * connection just ends.
 */
static void
http_login_result(struct session *s, const struct login_result *res)
{
	/* no answer from an upstream: not the client's failure */
	http_attempt_over(s, 0);
	if (s->state == S_LOGIN_SENT) {
		log_info("session %016llx: http exchange lost: %s",
		    (unsigned long long)s->sid, res->text);
		session_close_after_write(s);
		return;
	}
	http_answer_close(s, 503, res->text, NULL);
}

static void
http_throttled(struct session *s, const struct login_result *res)
{
	s->http_checked = s->http_form = s->http_continued = 0;
	http_answer_close(s, 429, res->text, "Retry-After: 60\r\n");
	s->http_class[0] = '\0';
}

static void
http_too_many(struct session *s)
{
	http_answer_close(s, 429, "too many requests", "Retry-After: 60\r\n");
}

const struct proto_engine http_engine = {
    .proto = PROTO_HTTP,
    .greet = http_greet,
    .input = http_input,
    .login_result = http_login_result,
    .timeout = http_timeout,
    .throttled = http_throttled,
    .too_many_bad = http_too_many,
    .too_many_attempts = http_too_many,
    .send_login = http_send_login,
    .drain_on_close = 1,
    .exchange_done = http_exchange_done,
    .exchange_verdict = http_exchange_verdict,
    .release = http_scan_release,
    .busy = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 20\r\n"
	    "Connection: close\r\n\r\nToo many connections",
};
