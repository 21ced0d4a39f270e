#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "policy.h"
#include "proto.h"

#define FIXED(t) sizeof(t), sizeof(t)

const struct imsg_rule parent_to_child_rules[] = {
    {IMSG_CONF_SANDBOX, FIXED(struct conf_sandbox), IMSG_FD_NONE},
    {IMSG_CONF_GLOBAL, FIXED(struct conf_global), IMSG_FD_NONE},
    {IMSG_CONF_LISTENER, FIXED(struct conf_listener), IMSG_FD_OPTIONAL},
    {IMSG_CONF_TLS_GLOBAL, FIXED(struct conf_tls_global), IMSG_FD_NONE},
    {IMSG_CONF_POLICY, FIXED(struct conf_policy), IMSG_FD_NONE},
    {IMSG_CONF_KEYPAIR, FIXED(struct conf_keypair), IMSG_FD_NONE},
    {IMSG_CONF_BLOB, sizeof(struct conf_blob),
	sizeof(struct conf_blob) + BLOB_CHUNK, IMSG_FD_NONE},
    {IMSG_CONF_UPSTREAM, FIXED(struct conf_upstream), IMSG_FD_NONE},
    {IMSG_CONF_ROUTE, FIXED(struct conf_route), IMSG_FD_NONE},
    {IMSG_CONF_END, 0, 0, IMSG_FD_NONE},
    {IMSG_PEER_CHANNEL, FIXED(struct peer_channel), IMSG_FD_REQUIRED},
    {IMSG_CONF_MEMCACHE, FIXED(struct conf_memcache), IMSG_FD_NONE},
    {IMSG_CONF_POOL, FIXED(struct conf_pool), IMSG_FD_NONE},
    {IMSG_CONF_LOOKUP, FIXED(struct conf_lookup), IMSG_FD_NONE},
    {IMSG_CONF_HTTP, FIXED(struct conf_http), IMSG_FD_NONE},
    {IMSG_CTL_QUERY, FIXED(struct ctl_query), IMSG_FD_NONE},
    {IMSG_DRAIN, 0, 0, IMSG_FD_NONE},
    {IMSG_COUNTER_FORGET, FIXED(struct counter_forget), IMSG_FD_NONE},
    {IMSG_POLICY_STATE, 1, IMSG_MAX_SIZE - sizeof(struct imsg_hdr),
	IMSG_FD_NONE},
};
const size_t parent_to_child_nrules =
    sizeof(parent_to_child_rules) / sizeof(parent_to_child_rules[0]);

/* A child's only word to the parent: "my peer sent me garbage". */
const struct imsg_rule child_to_parent_rules[] = {
    {IMSG_PEER_MISBEHAVED, FIXED(struct peer_channel), IMSG_FD_NONE},
    {IMSG_AUDIT, FIXED(struct audit_record), IMSG_FD_NONE},
    {IMSG_ACCESS, FIXED(struct access_record), IMSG_FD_NONE},
    {IMSG_CTL_SESSION, FIXED(struct ctl_session), IMSG_FD_NONE},
    {IMSG_CTL_STATS, FIXED(struct ctl_stats), IMSG_FD_NONE},
    {IMSG_CTL_UPSTREAM, FIXED(struct ctl_upstream), IMSG_FD_NONE},
    {IMSG_CTL_LISTENER, FIXED(struct ctl_listener), IMSG_FD_NONE},
    {IMSG_CTL_HANDLER, FIXED(struct ctl_handler), IMSG_FD_NONE},
    {IMSG_CTL_DONE, FIXED(struct ctl_done), IMSG_FD_NONE},
    {IMSG_CTL_FORGET, FIXED(struct counter_forget), IMSG_FD_NONE},
    {IMSG_POLICY_STATE, 1, IMSG_MAX_SIZE - sizeof(struct imsg_hdr),
	IMSG_FD_NONE},
};
const size_t child_to_parent_nrules =
    sizeof(child_to_parent_rules) / sizeof(child_to_parent_rules[0]);

const struct imsg_rule authproc_to_relay_rules[] = {
    {IMSG_LOGIN_REQUEST, sizeof(struct login_request),
	sizeof(struct login_request) + PIPELINE_MAX, IMSG_FD_REQUIRED},
    {IMSG_COUNTER_QUERY, FIXED(struct counter_op), IMSG_FD_NONE},
    /* the socket comes with a connection's first request only */
    {IMSG_HTTP_REQUEST, sizeof(struct http_request_rec),
	IMSG_MAX_SIZE - sizeof(struct imsg_hdr), IMSG_FD_OPTIONAL},
    {IMSG_HTTP_RELEASE, 0, 0, IMSG_FD_NONE},
    {IMSG_HTTP_BODY, 1, IMSG_MAX_SIZE - sizeof(struct imsg_hdr), IMSG_FD_NONE},
};
const size_t authproc_to_relay_nrules =
    sizeof(authproc_to_relay_rules) / sizeof(authproc_to_relay_rules[0]);

const struct imsg_rule tlsproc_to_authproc_rules[] = {
    {IMSG_TLS_SESSION, FIXED(struct tls_session), IMSG_FD_REQUIRED},
    {IMSG_STARTTLS_DONE, FIXED(struct starttls_done), IMSG_FD_OPTIONAL},
};
const size_t tlsproc_to_authproc_nrules =
    sizeof(tlsproc_to_authproc_rules) / sizeof(tlsproc_to_authproc_rules[0]);

const struct imsg_rule authproc_to_tlsproc_rules[] = {
    {IMSG_STARTTLS, FIXED(struct starttls_request), IMSG_FD_REQUIRED},
};
const size_t authproc_to_tlsproc_nrules =
    sizeof(authproc_to_tlsproc_rules) / sizeof(authproc_to_tlsproc_rules[0]);

const struct imsg_rule relay_to_authproc_rules[] = {
    {IMSG_LOGIN_RESULT, FIXED(struct login_result), IMSG_FD_NONE},
    {IMSG_COUNTER_VALUES, FIXED(struct counter_values), IMSG_FD_NONE},
    {IMSG_HTTP_DONE, sizeof(struct http_done),
	sizeof(struct http_done) + HTTP_LEFTOVER_MAX, IMSG_FD_NONE},
    {IMSG_HTTP_VERDICT, FIXED(struct http_verdict), IMSG_FD_NONE},
};
const size_t relay_to_authproc_nrules =
    sizeof(relay_to_authproc_rules) / sizeof(relay_to_authproc_rules[0]);

/* The control socket: posternctl asks, the parent answers in text. */
const struct imsg_rule control_rules[] = {
    {IMSG_CTL_REQUEST, FIXED(struct ctl_request), IMSG_FD_NONE},
};
const size_t control_nrules = sizeof(control_rules) / sizeof(control_rules[0]);

const struct imsg_rule control_reply_rules[] = {
    {IMSG_CTL_TEXT, 0, CTL_TEXT_MAX, IMSG_FD_NONE},
    {IMSG_CTL_END, FIXED(struct ctl_end), IMSG_FD_NONE},
};
const size_t control_reply_nrules =
    sizeof(control_reply_rules) / sizeof(control_reply_rules[0]);

/* This process's counters, for posternctl show stats and the metrics. */
struct ctl_stats proc_stats;

/* Prometheus's usual latency bounds, from a millisecond up */
const double ctl_hist_bounds_s[CTL_HIST_BUCKETS - 1] = {0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5};

void
ctl_hist_observe(struct ctl_histogram *h, uint64_t us)
{
	size_t i;

	for (i = 0; i < CTL_HIST_BUCKETS - 1; i++)
		if ((double)us <= ctl_hist_bounds_s[i] * 1e6)
			break;
	h->bucket[i]++;
	h->sum_us += us;
}

static void
hist_add(struct ctl_histogram *to, const struct ctl_histogram *from)
{
	size_t i;

	for (i = 0; i < CTL_HIST_BUCKETS; i++)
		to->bucket[i] += from->bucket[i];
	to->sum_us += from->sum_us;
	to->errors += from->errors;
}

/* The counters are all sums across processes. */
void
ctl_stats_add(struct ctl_stats *to, const struct ctl_stats *from)
{
	size_t p, r;

	for (p = 0; p < CTL_PROTO_SLOTS; p++) {
		to->sessions_preauth[p] += from->sessions_preauth[p];
		to->sessions_relayed[p] += from->sessions_relayed[p];
		to->bytes_up[p] += from->bytes_up[p];
		to->bytes_down[p] += from->bytes_down[p];
		for (r = 0; r < AUDIT_RESULT_MAX; r++)
			to->attempts[p][r] += from->attempts[p][r];
	}
	for (r = 0; r < CTL_LIMIT_MAX; r++)
		to->throttled[r] += from->throttled[r];
	hist_add(&to->lookup, &from->lookup);
	hist_add(&to->memcache, &from->memcache);
	to->http_requests += from->http_requests;
}

static int
ctl_needs_arg(uint32_t command)
{
	switch (command) {
	case CTL_KICK_SESSION:
	case CTL_KICK_USER:
	case CTL_ROUTE_FLUSH_USER:
	case CTL_UNBLOCK_IP:
	case CTL_UNBLOCK_USER:
		return 1;
	default:
		return 0;
	}
}

/* A request as posternctl (or anything on the socket) sent it. */
int
ctl_request_valid(const struct ctl_request *r, char *err, size_t errlen)
{
	size_t i;

	if (r->command < CTL_SHOW_SESSIONS || r->command >= CTL_COMMAND_MAX) {
		snprintf(err, errlen, "unknown command");
		return 0;
	}
	if (r->filter > CTL_FILTER_CLIENT ||
	    (r->filter != CTL_FILTER_NONE && r->command != CTL_SHOW_SESSIONS)) {
		snprintf(err, errlen, "bad filter");
		return 0;
	}
	if (!imsg_string_ok(r->arg, sizeof(r->arg))) {
		snprintf(err, errlen, "argument not terminated");
		return 0;
	}
	for (i = 0; r->arg[i] != '\0'; i++)
		if ((unsigned char)r->arg[i] <= ' ' || r->arg[i] == 0x7f) {
			snprintf(err, errlen,
			    "control byte or space in the "
			    "argument");
			return 0;
		}
	if ((ctl_needs_arg(r->command) || r->filter != CTL_FILTER_NONE) !=
	    (r->arg[0] != '\0')) {
		snprintf(err, errlen,
		    r->arg[0] == '\0' ? "argument missing"
				      : "this command takes no argument");
		return 0;
	}
	return 1;
}

/* A query from the parent: strings terminated, values in range. */
int
ctl_query_valid(const struct ctl_query *q)
{
	return q->command >= CTL_SHOW_SESSIONS &&
	    q->command < CTL_COMMAND_MAX && q->filter <= CTL_FILTER_CLIENT &&
	    imsg_string_ok(q->user, sizeof(q->user));
}

const char *
proc_role_name(enum proc_role role)
{
	switch (role) {
	case PROC_PARENT:
		return "parent";
	case PROC_AUTHPROC:
		return "authproc";
	case PROC_RELAY:
		return "relay";
	case PROC_TLSPROC:
		return "tlsproc";
	default:
		return "unknown";
	}
}

const char *
mail_proto_name(enum mail_proto proto)
{
	static const char *const names[] = {
	    [PROTO_IMAP] = "imap",
	    [PROTO_POP3] = "pop3",
	    [PROTO_HTTP] = "http",
	};

	if ((size_t)proto >= sizeof(names) / sizeof(names[0]) ||
	    names[proto] == NULL)
		return "unknown";
	return names[proto];
}

int
sockaddr_valid(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

socklen_t
sockaddr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
}

/* True for 0.0.0.0 and ::, where only getsockname() tells the address. */
int
sockaddr_is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)ss)->sin6_addr);
	return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
	    htonl(INADDR_ANY);
}

int
sockaddr_same_host(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			   &((const struct sockaddr_in6 *)b)->sin6_addr,
			   sizeof(struct in6_addr)) == 0;
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/*
 * The same client, for limits per client: one IPv4 address, or one IPv6
 * /64, which is what one client gets (as the throttle counters see it).
 */
int
sockaddr_same_client(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != AF_INET6 || b->ss_family != AF_INET6)
		return sockaddr_same_host(a, b);
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		   &((const struct sockaddr_in6 *)b)->sin6_addr, 8) == 0;
}

const char *
sockaddr_host(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = ss->ss_family == AF_INET6
	    ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
	    : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (inet_ntop(ss->ss_family, a, buf, len) == NULL)
		snprintf(buf, len, "unknown");
	return buf;
}

in_port_t
sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

const char *
sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else
		snprintf(buf, len, "(unknown)");
	return buf;
}

/* Deep check of a login request beyond its length: strings and counts. */
int
login_request_valid(const struct imsg *imsg, char *err, size_t errlen)
{
	const struct login_request *req = imsg->data;

	if (imsg->datalen < sizeof(*req) || req->pipelen > PIPELINE_MAX ||
	    imsg->datalen != sizeof(*req) + req->pipelen) {
		snprintf(err, errlen, "login request: bad length");
		return -1;
	}
	if (req->proto != PROTO_IMAP && req->proto != PROTO_POP3) {
		snprintf(err, errlen, "login request: bad protocol");
		return -1;
	}
	if (req->mech < MECH_LOGIN || req->mech > MECH_USERPASS) {
		snprintf(err, errlen, "login request: bad mechanism");
		return -1;
	}
	if (!imsg_string_ok(req->tag, sizeof(req->tag)) ||
	    !imsg_string_ok(req->user, sizeof(req->user)) ||
	    !imsg_string_ok(req->authzid, sizeof(req->authzid)) ||
	    !imsg_string_ok(req->pass, sizeof(req->pass))) {
		snprintf(err, errlen, "login request: unterminated string");
		return -1;
	}
	if (req->idlen > sizeof(req->idfields) ||
	    (req->idlen > 0 && req->idfields[req->idlen - 1] != '\0')) {
		snprintf(err, errlen, "login request: bad ID fields");
		return -1;
	}
	if (req->tls > 1 || !tls_facts_valid(&req->facts)) {
		snprintf(err, errlen, "login request: bad TLS facts");
		return -1;
	}
	if (!sockaddr_valid(&req->client) || !sockaddr_valid(&req->local)) {
		snprintf(err, errlen, "login request: bad address");
		return -1;
	}
	return 0;
}

int
login_result_valid(const struct imsg *imsg, char *err, size_t errlen)
{
	const struct login_result *res = imsg->data;
	size_t i;

	if (imsg->datalen != sizeof(*res) || res->status < LOGIN_OK ||
	    res->status > LOGIN_CLIENT_GONE ||
	    !imsg_string_ok(res->text, sizeof(res->text))) {
		snprintf(err, errlen, "login result: malformed");
		return -1;
	}
	/* the text goes to the client verbatim: no line breaks, no controls */
	for (i = 0; res->text[i] != '\0'; i++) {
		if ((unsigned char)res->text[i] < 0x20 ||
		    res->text[i] == 0x7f) {
			snprintf(err, errlen, "login result: control byte");
			return -1;
		}
	}
	return 0;
}

int
tls_facts_valid(const struct tls_facts *f)
{
	return imsg_string_ok(f->version, sizeof(f->version)) &&
	    imsg_string_ok(f->cipher, sizeof(f->cipher)) &&
	    imsg_string_ok(f->servername, sizeof(f->servername));
}

/* A chunk must lie inside its file and carry exactly its length. */
int
conf_blob_valid(const struct imsg *imsg)
{
	const struct conf_blob *b = imsg->data;

	if (imsg->datalen < sizeof(*b) || b->len > BLOB_CHUNK ||
	    imsg->datalen != sizeof(*b) + b->len)
		return 0;
	if (b->kind < BLOB_CERT || b->kind > BLOB_CA)
		return 0;
	if (b->total > BLOB_MAX || b->offset > b->total ||
	    b->len > b->total - b->offset)
		return 0;
	return 1;
}

int
audit_record_valid(const struct imsg *imsg)
{
	const struct audit_record *a = imsg->data;

	return imsg->datalen == sizeof(*a) && a->result >= AUDIT_OK &&
	    a->result < AUDIT_RESULT_MAX &&
	    (a->proto == PROTO_IMAP || a->proto == PROTO_POP3 ||
		a->proto == PROTO_HTTP) &&
	    a->tls <= 1 && tls_facts_valid(&a->facts) &&
	    sockaddr_valid(&a->client) &&
	    imsg_string_ok(a->user, sizeof(a->user)) &&
	    imsg_string_ok(a->mech, sizeof(a->mech)) &&
	    imsg_string_ok(a->reason, sizeof(a->reason)) &&
	    imsg_string_ok(a->upstream, sizeof(a->upstream)) &&
	    a->http_status <= 999 &&
	    imsg_string_ok(a->path_class, sizeof(a->path_class));
}

/*
 * authproc decides only refusals, protocol errors, time-outs and aborts,
 * before any upstream is chosen: a record of a login that went through,
 * or that names an upstream, can only be forged.
 */
int
audit_record_valid_from_authproc(const struct imsg *imsg)
{
	const struct audit_record *a = imsg->data;

	return audit_record_valid(imsg) && a->result != AUDIT_OK &&
	    a->result != AUDIT_BAD_CREDENTIALS && a->result != AUDIT_KICKED &&
	    a->upstream[0] == '\0';
}

int
counter_op_valid(const struct imsg *imsg)
{
	const struct counter_op *op = imsg->data;
	const uint32_t known = 1 << COUNT_IP | 1 << COUNT_USER |
	    1 << COUNT_IP_FAIL | 1 << COUNT_IPUSER_FAIL;

	return imsg->datalen == sizeof(*op) && op->kinds != 0 &&
	    (op->kinds & ~known) == 0 && sockaddr_valid(&op->client) &&
	    op->budget <= 1 && imsg_string_ok(op->user, sizeof(op->user));
}

/*
 * The head's own framing fields must say what the record says, or a
 * head could carry a second request, or a body the record does not
 * count, to a kept upstream connection.
 */
static int
http_head_framing_ok(const char *head, size_t len,
    const struct http_request_rec *r)
{
	size_t i = 0, eol, ncl = 0, nte = 0;
	char num[32];
	const char *v;

	while (i < len && head[i] != '\n')
		i++;
	for (i++; i < len; i = eol + 1) {
		for (eol = i; eol < len && head[eol] != '\n'; eol++)
			;
		if (eol - i < 2)
			break; /* the empty line */
		if (eol - i > 15 &&
		    strncasecmp(head + i, "Content-Length:", 15) == 0) {
			for (v = head + i + 15; *v == ' '; v++)
				;
			snprintf(num, sizeof(num), "%llu\r",
			    (unsigned long long)r->content_length);
			if (strncmp(v, num, strlen(num)) != 0)
				return 0;
			ncl++;
		} else if (eol - i > 18 &&
		    strncasecmp(head + i, "Transfer-Encoding:", 18) == 0) {
			for (v = head + i + 18; *v == ' '; v++)
				;
			if (strncmp(v, "chunked\r", 8) != 0)
				return 0;
			nte++;
		}
	}
	switch (r->framing) {
	case HTTP_BODY_LENGTH:
		return ncl == 1 && nte == 0;
	case HTTP_BODY_CHUNKED:
		return ncl == 0 && nte == 1;
	default:
		return ncl == 0 && nte == 0;
	}
}

/*
 * A request record from authproc: the lengths add up, the strings end,
 * and the head is one head: it ends with its empty line and holds no
 * NUL and no bare CR or LF, so relay can forward it as it is.
 */
int
http_request_rec_valid(const struct imsg *imsg, char *err, size_t errlen)
{
	const struct http_request_rec *r = imsg->data;
	const char *head = (const char *)(r + 1);
	size_t i;

	if (imsg->datalen < sizeof(*r) || r->headlen < 4 ||
	    r->headlen > HTTP_HEAD_MAX + 2048 || r->bodylen > imsg->datalen ||
	    r->bodymore > HTTP_SCAN_LIMIT_MAX + PIPELINE_MAX ||
	    (r->bodymore > 0 && r->framing != HTTP_BODY_LENGTH) ||
	    imsg->datalen != sizeof(*r) + (size_t)r->headlen + r->bodylen) {
		snprintf(err, errlen, "http request: bad length");
		return -1;
	}
	if (r->key_kind > HTTP_KEY_ACCOUNT_ID ||
	    r->framing > HTTP_BODY_CHUNKED || r->tls > 1 ||
	    (r->framing != HTTP_BODY_LENGTH && r->content_length != 0) ||
	    !sockaddr_valid(&r->client) || !sockaddr_valid(&r->local) ||
	    !tls_facts_valid(&r->facts) ||
	    !imsg_string_ok(r->key, sizeof(r->key)) ||
	    (r->key_kind != HTTP_KEY_NONE && r->key[0] == '\0') ||
	    !imsg_string_ok(r->host, sizeof(r->host)) ||
	    !imsg_string_ok(r->method, sizeof(r->method)) ||
	    !imsg_string_ok(r->path, sizeof(r->path)) || r->attempt > 3 ||
	    !imsg_string_ok(r->login_user, sizeof(r->login_user)) ||
	    (r->attempt && r->login_user[0] == '\0') ||
	    !imsg_string_ok(r->path_class, sizeof(r->path_class))) {
		snprintf(err, errlen, "http request: bad fields");
		return -1;
	}
	if (memcmp(head + r->headlen - 4, "\r\n\r\n", 4) != 0 ||
	    memmem(head, r->headlen, "\r\n\r\n", 4) != head + r->headlen - 4) {
		snprintf(err, errlen, "http request: not one head");
		return -1;
	}
	for (i = 0; i < r->headlen; i++)
		if (head[i] == '\0' ||
		    (head[i] == '\r') !=
			(i + 1 < r->headlen && head[i + 1] == '\n') ||
		    (head[i] == '\n' && (i == 0 || head[i - 1] != '\r'))) {
			snprintf(err, errlen, "http request: bad head");
			return -1;
		}
	if (!http_head_framing_ok(head, r->headlen, r)) {
		snprintf(err, errlen, "http request: framing disagrees");
		return -1;
	}
	return 0;
}

int
access_record_valid(const struct imsg *imsg)
{
	const struct access_record *a = imsg->data;

	return imsg->datalen == sizeof(*a) && a->status <= 999 &&
	    sockaddr_valid(&a->client) &&
	    imsg_string_ok(a->method, sizeof(a->method)) &&
	    imsg_string_ok(a->path, sizeof(a->path)) &&
	    imsg_string_ok(a->upstream, sizeof(a->upstream)) &&
	    imsg_string_ok(a->user, sizeof(a->user));
}

int
http_done_valid(const struct imsg *imsg)
{
	const struct http_done *d = imsg->data;

	return imsg->datalen >= sizeof(*d) &&
	    d->leftover <= HTTP_LEFTOVER_MAX &&
	    imsg->datalen == sizeof(*d) + d->leftover &&
	    d->result >= HTTP_DONE_KEEPALIVE &&
	    d->result <= HTTP_DONE_CLIENT_GONE && d->status <= 999 &&
	    d->login <= 2 &&
	    (d->leftover == 0 || d->result == HTTP_DONE_KEEPALIVE);
}

int
http_verdict_valid(const struct imsg *imsg)
{
	const struct http_verdict *v = imsg->data;

	return imsg->datalen == sizeof(*v) && (v->login == 1 || v->login == 2);
}

const char *
audit_result_name(enum audit_result r)
{
	static const char *names[] = {
	    [AUDIT_OK] = "ok",
	    [AUDIT_BAD_CREDENTIALS] = "bad-credentials",
	    [AUDIT_THROTTLED_IP] = "throttled-ip",
	    [AUDIT_THROTTLED_USER] = "throttled-user",
	    [AUDIT_UPSTREAM_UNAVAILABLE] = "upstream-unavailable",
	    [AUDIT_PROTOCOL_ERROR] = "protocol-error",
	    [AUDIT_TIMEOUT] = "timeout",
	    [AUDIT_ABORTED] = "aborted",
	    [AUDIT_NO_ROUTE] = "no-route",
	    [AUDIT_KICKED] = "kicked",
	};

	if (r < AUDIT_OK || r >= AUDIT_RESULT_MAX)
		return "unknown";
	return names[r];
}

/*
 * The result as the audit log writes it: web records use the words of
 * web operators (one "throttled", with the limit in a field of its own,
 * and "upstream-error"); mail records keep the finer mail names.
 */
const char *
audit_result_word(uint32_t proto, enum audit_result r)
{
	if (proto == PROTO_HTTP) {
		if (r == AUDIT_THROTTLED_IP || r == AUDIT_THROTTLED_USER)
			return "throttled";
		if (r == AUDIT_UPSTREAM_UNAVAILABLE)
			return "upstream-error";
	}
	return audit_result_name(r);
}

const char *
login_mech_name(enum login_mech m)
{
	switch (m) {
	case MECH_LOGIN:
		return "login";
	case MECH_PLAIN:
		return "plain";
	case MECH_USERPASS:
		return "user-pass";
	case MECH_BASIC:
		return "basic";
	case MECH_FORM:
		return "form";
	default:
		return "";
	}
}

/* For latencies: a clock no one sets. */
uint64_t
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t
wallclock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
