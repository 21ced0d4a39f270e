/*
 * What the processes say to each other: message types, the fixed-size
 * records they carry, and the per-channel rules receivers enforce.
 * Every string field is a fixed array that must be NUL-terminated;
 * receivers check that with imsg_string_ok() before using it.
 */
#ifndef POSTERN_PROTO_H
#define POSTERN_PROTO_H

#include <sys/socket.h>

#include <netinet/in.h>

#include <stdint.h>

#include "http.h"
#include "imsg.h"

#define NAME_MAX_LEN 63
#define TAG_MAX_LEN  64
#define USER_MAX_LEN 255
#define PASS_MAX_LEN 1023
#define ID_MAX_LEN   1024
#define TEXT_MAX_LEN 511
#define PIPELINE_MAX 12288

enum proc_role {
	PROC_PARENT,
	PROC_AUTHPROC,
	PROC_RELAY,
	PROC_TLSPROC, /* slot reserved for the TLS issue */
	PROC_MAX
};

enum mail_proto { PROTO_IMAP = 1, PROTO_POP3 = 2, PROTO_HTTP = 3 };

enum login_mech {
	MECH_LOGIN = 1,	   /* IMAP LOGIN */
	MECH_PLAIN = 2,	   /* SASL PLAIN (IMAP or POP3 AUTH) */
	MECH_USERPASS = 3, /* POP3 USER/PASS */
	MECH_NAME = 4,	   /* HTTP: routed by an account name */
	MECH_ID = 5,	   /* HTTP: routed by an account id (token) */
	MECH_BASIC = 6,	   /* HTTP: Basic credentials, a login attempt */
	MECH_FORM = 7	   /* HTTP: a webmail form login */
};

enum login_status {
	LOGIN_OK = 1,	      /* relay took the session over */
	LOGIN_FAILED = 2,     /* the upstream refused the credentials */
	LOGIN_TEMPFAIL = 3,   /* no route, upstream down or timing out */
	LOGIN_CLIENT_GONE = 4 /* the client went away during login */
};

enum imsg_type {
	IMSG_NONE = 0,
	/* parent -> child */
	IMSG_CONF_SANDBOX,
	IMSG_CONF_GLOBAL,
	IMSG_CONF_LISTENER,
	IMSG_CONF_UPSTREAM,
	IMSG_CONF_ROUTE,
	IMSG_CONF_END,
	IMSG_PEER_CHANNEL,
	/* authproc -> relay */
	IMSG_LOGIN_REQUEST,
	IMSG_CONF_TLS_GLOBAL,
	IMSG_CONF_POLICY,
	IMSG_CONF_KEYPAIR,
	IMSG_CONF_BLOB,
	/* tlsproc <-> authproc */
	IMSG_TLS_SESSION,
	IMSG_STARTTLS,
	IMSG_STARTTLS_DONE,
	/* relay -> authproc */
	IMSG_LOGIN_RESULT,
	/* child -> parent */
	IMSG_PEER_MISBEHAVED,
	IMSG_AUDIT,
	/* parent -> relay */
	IMSG_CONF_MEMCACHE,
	IMSG_CONF_POOL,
	IMSG_CONF_LOOKUP,
	/* authproc -> relay: the shared throttle counters */
	IMSG_COUNTER_QUERY,
	/* relay -> authproc */
	IMSG_COUNTER_VALUES,
	/* parent -> authproc, relay */
	IMSG_CONF_HTTP,
	/* authproc -> relay, with the client socket: one HTTP exchange */
	IMSG_HTTP_REQUEST,
	/* relay -> authproc: the exchange is over */
	IMSG_HTTP_DONE,
	/* relay -> parent: one line of the HTTP access log */
	IMSG_ACCESS,
	/* authproc -> relay: a client whose socket relay keeps is gone */
	IMSG_HTTP_RELEASE,
	/* relay -> authproc: a web login's verdict, as soon as it is known */
	IMSG_HTTP_VERDICT,
	/* posternctl -> parent: one command */
	IMSG_CTL_REQUEST,
	/* parent -> posternctl: lines of the answer, then its end */
	IMSG_CTL_TEXT,
	IMSG_CTL_END,
	/* parent -> child: a command or question of posternctl's */
	IMSG_CTL_QUERY,
	/* child -> parent: the answer's records, then its end */
	IMSG_CTL_SESSION,
	IMSG_CTL_STATS,
	IMSG_CTL_UPSTREAM,
	IMSG_CTL_LISTENER,
	IMSG_CTL_HANDLER,
	IMSG_CTL_DONE,
	/* parent -> relay: forget an address's or user's shared counters */
	IMSG_COUNTER_FORGET,
	/* authproc -> parent: an address+user pair it unblocked */
	IMSG_CTL_FORGET,
	/* parent -> child: a new generation has the listeners; finish, exit */
	IMSG_DRAIN,
	/* authproc (draining) -> parent -> authproc (new): throttle counts */
	IMSG_POLICY_STATE,
	/* authproc -> relay: more of a request's body (http_request_rec) */
	IMSG_HTTP_BODY,
	IMSG_TYPE_MAX
};

struct conf_sandbox {
	uint32_t uid;
	uint32_t gid;
	char chroot[256];
};

struct conf_global {
	uint32_t timeout_connect; /* upstream connect, s */
	uint32_t timeout_login;	  /* upstream login, s */
	uint32_t timeout_preauth; /* idle before login, s */
	uint32_t max_line;	  /* pre-auth command line */
	uint32_t max_literal;	  /* pre-auth literal */
	uint32_t max_bad_commands;
	uint32_t max_sessions;		/* per child */
	uint32_t timeout_preauth_total; /* s from connect to login */
	uint32_t relays;		/* relay processes */
	uint32_t tlsprocs;		/* tlsproc workers */
	uint32_t audit;		 /* the parent writes audit records somewhere */
	uint32_t timeout_linger; /* s for the client's close after upstream's */
	uint32_t timeout_stall;	 /* s a relayed write may wait for room */
	char greeting[128];
};

#define LISTEN_TLS	    0x01 /* implicit TLS (993, 995) */
#define LISTEN_STARTTLS	    0x02 /* keypairs: offer STARTTLS/STLS */
#define LISTEN_TLS_REQUIRED 0x04 /* no login before TLS */
#define LISTEN_PROXY	    0x08 /* a PROXY protocol header first */
#define LISTEN_HSTS	    0x10 /* http tls: Strict-Transport-Security */
#define LISTEN_MAX_KEYPAIRS 8

/* What a plain HTTP listener does (Zimbra's zimbraReverseProxyMailMode). */
enum http_mode {
	HTTP_MODE_HTTP = 0, /* serve (the default on a plain listener) */
	HTTP_MODE_BOTH,	    /* serve, with an https listener beside it */
	HTTP_MODE_HTTPS,    /* answer an error page: use https */
	HTTP_MODE_REDIRECT  /* answer 301 to the same URL over https */
};

struct conf_listener {
	uint32_t id;
	uint32_t proto;
	uint32_t flags;
	uint32_t http_mode;
	uint32_t redirect_port; /* redirect: the https port, 443 unsaid */
	uint32_t nkeypairs;
	uint32_t keypairs[LISTEN_MAX_KEYPAIRS]; /* first: default */
	struct sockaddr_storage addr;
	char name[NAME_MAX_LEN + 1];
};

struct conf_tls_global {
	uint32_t protocols;	    /* TLS_PROTOCOL_* bits */
	uint32_t session_lifetime;  /* s; 0: no resumption */
	uint32_t timeout_handshake; /* s */
	char ciphers[256];
};

struct conf_keypair {
	uint32_t id;
	char name[256];
};

enum blob_kind { BLOB_CERT = 1, BLOB_KEY = 2, BLOB_OCSP = 3, BLOB_CA = 4 };

#define BLOB_CHUNK 8192
#define BLOB_MAX   (1024 * 1024)

/* A piece of a file the parent read for a child; data follows. */
struct conf_blob {
	uint32_t owner_id; /* keypair or upstream */
	uint32_t kind;
	uint32_t total;
	uint32_t offset;
	uint32_t len;
};

struct tls_facts {
	char version[16];
	char cipher[64];
	char servername[256];
};

/* tlsproc -> authproc, with the plaintext end of a new TLS session. */
struct tls_session {
	uint32_t listener_id;
	struct sockaddr_storage client;
	struct sockaddr_storage local;
	struct tls_facts facts;
};

/* authproc -> tlsproc, with the client socket after STARTTLS/STLS. */
struct starttls_request {
	uint32_t listener_id;
};

/* tlsproc -> authproc; on success with the plaintext end. */
struct starttls_done {
	uint32_t ok;
	struct tls_facts facts;
};

struct conf_upstream {
	uint32_t id;
	uint32_t has_imap;
	uint32_t has_pop3;
	uint32_t has_http;
	uint32_t tls;	/* implicit TLS to the upstream, every port */
	uint32_t https; /* TLS on the http port only */
	uint32_t noverify;
	char servername[256];
	char hostname[256]; /* `host' when a name: redirects may use it */
	struct sockaddr_storage imap;
	struct sockaddr_storage pop3;
	struct sockaddr_storage http;
	char name[NAME_MAX_LEN + 1];
};

enum route_kind { ROUTE_USER = 1, ROUTE_DOMAIN = 2, ROUTE_DEFAULT = 3 };

/* A route names an upstream or a pool; ids share one number space. */
struct conf_route {
	uint32_t kind;
	uint32_t upstream_id;
	char match[USER_MAX_LEN + 1];
};

#define POOL_MAX_MEMBERS 16

enum pool_balance { POOL_ROUND_ROBIN = 1, POOL_CLIENT_IP = 2 };

/* Identical servers holding the same mailboxes (Zimbra's pools). */
struct conf_pool {
	uint32_t id;
	uint32_t balance;
	uint32_t max_fails;    /* failures before a server is marked down */
	uint32_t fail_timeout; /* s it then stays down */
	uint32_t proxy_v2;     /* a PROXY v2 header first */
	uint32_t nmembers;
	uint32_t members[POOL_MAX_MEMBERS]; /* upstream ids */
	char name[NAME_MAX_LEN + 1];
};

#define LOOKUP_MAX_HANDLERS 8
#define LOOKUP_MAX_NETWORKS 32

/*
 * An https:// handler's CA bundle travels as a BLOB_CA whose owner is
 * LOOKUP_BLOB_OWNER plus the handler's index, far above upstream ids.
 */
#define LOOKUP_BLOB_OWNER 0x80000000u

struct conf_lookup_handler {
	struct sockaddr_storage addr;
	char host[128]; /* the Host header */
	char path[256];
	uint32_t tls;	      /* https:// */
	char servername[256]; /* https: the name its certificate must carry */
	char ca[256];	      /* https: CA file (parent); "": the system's */
};

struct conf_upstream_network {
	uint8_t family;
	uint8_t prefix;
	uint8_t addr[16];
	uint32_t port; /* 0: any */
};

/* HTTP route lookup handlers, the route cache and what routes may name. */
struct conf_lookup {
	uint32_t nhandlers;
	uint32_t timeout_ms; /* per request */
	uint32_t retry_s;    /* a failed handler is left alone this long */
	uint32_t pass_password;
	uint32_t cache_ttl; /* s; 0: routes are not cached */
	uint32_t nnetworks;
	struct conf_lookup_handler handlers[LOOKUP_MAX_HANDLERS];
	struct conf_upstream_network networks[LOOKUP_MAX_NETWORKS];
};

#define MCACHE_MAX_SERVERS 8

struct conf_memcache {
	uint32_t nservers;
	uint32_t timeout_ms; /* per operation */
	uint32_t backoff_s;  /* skipped after a failure */
	struct sockaddr_storage servers[MCACHE_MAX_SERVERS];
};

/*
 * authproc -> relay: read the shared throttle counters of one attempt.
 * relay derives the memcached keys itself from the kinds, the address
 * and the user, and counts attempts and failures itself, so authproc
 * can only read counters.
 */
struct counter_op {
	uint32_t kinds; /* 1 << COUNT_* */
	uint32_t seq;	/* echoed, so a late answer is not taken */
	struct sockaddr_storage client;
	char user[USER_MAX_LEN + 1];
	uint32_t budget; /* POLICY_BUDGET_* */
};

#define COUNTER_KINDS 5 /* indexed by COUNT_*, 0 unused */

/* relay -> authproc: window estimates; ok 0: no shared store now */
struct counter_values {
	uint32_t ok;
	uint32_t seq;
	uint32_t values[COUNTER_KINDS];
};

/* parent -> authproc and relay: the web side. */
struct conf_http {
	uint32_t max_head;	   /* request head, bytes: 431 beyond */
	uint32_t max_target;	   /* request target, bytes: 414 beyond */
	uint64_t max_body;	   /* request body, bytes: 413 beyond; 0 no */
	uint32_t timeout_header;   /* s to read a request head */
	uint32_t timeout_idle;	   /* s a keep-alive client may be silent */
	uint32_t timeout_response; /* s an upstream may take to answer */
	uint32_t hsts_max_age;	   /* s, for LISTEN_HSTS */
	uint32_t fallback_id;	   /* pool or upstream for the IP hash; 0 */
	uint32_t lookup_fail_503;  /* a failed lookup answers 503 */
	uint32_t upstream_idle;	   /* s an idle upstream connection is kept */
	uint32_t upstream_keep;	   /* idle upstream connections, per relay */
	uint32_t access_log;	   /* relay sends access records */
	uint32_t nforms;
	struct http_form_login forms[HTTP_MAX_FORMS];
	uint32_t access_query;	       /* with the query in the path */
	uint32_t soap_oversize_refuse; /* 413 a marker's body too large */
	uint32_t soap_scan_max;	       /* bytes of such a body looked through */
	struct http_route_conf route;
};

#define HTTP_HEAD_MAX	  11264	       /* the largest limit http-header */
#define HTTP_LEFTOVER_MAX PIPELINE_MAX /* bytes relay read past a body */
#define HTTP_HOST_MAX	  255
#define HTTP_PATH_LOG_MAX 255
#define HTTP_CLASS_MAX	  16

enum http_done_result {
	HTTP_DONE_KEEPALIVE = 1, /* the client may send its next request */
	HTTP_DONE_CLOSE,	 /* the connection ends here */
	HTTP_DONE_TAKEN,	 /* relay keeps it (WebSocket) */
	HTTP_DONE_CLIENT_GONE
};

/*
 * authproc -> relay, with the client socket.  Followed by headlen bytes
 * of the head as authproc serialised it (never the client's bytes),
 * then bodylen bytes of the body that authproc had read with the head,
 * still in the client's framing.  A body read whole to be looked
 * through may not fit: its last bodymore bytes follow in IMSG_HTTP_BODY
 * messages, and relay starts nothing before it has them all.
 */
struct http_request_rec {
	uint32_t listener_id;
	uint32_t key_kind; /* enum http_key_kind */
	uint32_t key_source;
	uint32_t framing; /* enum http_framing of the request body */
	uint32_t flags;	  /* HTTP_REQ_* */
	uint32_t headlen;
	uint32_t bodylen;
	uint32_t bodymore;
	uint32_t tls;
	uint64_t content_length;
	uint64_t sid;
	uint64_t start_ms;
	struct sockaddr_storage client;
	struct sockaddr_storage local;
	struct tls_facts facts;
	char key[USER_MAX_LEN + 1];
	char host[HTTP_HOST_MAX + 1]; /* the Host the client used */
	char method[16];
	char path[HTTP_PATH_LOG_MAX + 1]; /* for logs, query dropped */
	/*
	 * A login attempt that passed the policy: 1 Basic, 2 a form (its
	 * success is the auth cookie set), 3 a SOAP login (its success is a
	 * 2xx answer: Zimbra answers a failed AuthRequest with a fault, and
	 * a good one sets a cookie whose name depends on the console).
	 */
	uint32_t attempt;
	char login_user[USER_MAX_LEN + 1];
	char path_class[HTTP_CLASS_MAX];
};

/* relay -> parent: one HTTP request, for the access log. */
struct access_record {
	uint64_t time_ms;
	uint64_t sid;
	uint64_t bytes_up;
	uint64_t bytes_down;
	uint32_t duration_ms;
	uint32_t status;
	struct sockaddr_storage client;
	char method[16];
	char path[HTTP_PATH_LOG_MAX + 1];
	char upstream[NAME_MAX_LEN + 1];
	char user[USER_MAX_LEN + 1];
};

/* relay -> authproc; followed by leftover bytes read past the body. */
struct http_done {
	uint32_t result; /* enum http_done_result */
	uint32_t login;	 /* an attempt's verdict: 0 none, 1 ok, 2 failed */
	uint32_t status; /* what the client was answered */
	uint32_t leftover;
	uint64_t bytes_up;
	uint64_t bytes_down;
};

/*
 * A web login's verdict from the upstream's answer head, sent before the
 * exchange ends: a long poll must not hold its attempt pending (and
 * counted against the failure limits) for an hour.
 */
struct http_verdict {
	uint32_t login; /* 1 ok, 2 failed */
};

#define MAX_RELAYS   16
#define MAX_TLSPROCS 8

struct peer_channel {
	uint32_t role;
	uint32_t pid;
	uint32_t instance; /* which relay or tlsproc, when there are several */
};

/*
 * authproc -> relay, with the client socket.  Followed by pipelen bytes
 * the client sent after its login command, forwarded opaquely upstream
 * if the login succeeds.  idfields holds the client's IMAP ID fields as
 * NUL-separated name/value pairs.
 */
struct login_request {
	uint32_t listener_id;
	uint32_t attempt; /* logins tried on this connection, this one too */
	uint32_t proto;
	uint32_t mech;
	uint32_t idlen;
	uint32_t pipelen;
	struct sockaddr_storage client;
	struct sockaddr_storage local;
	uint32_t tls; /* client side is TLS */
	struct tls_facts facts;
	uint64_t sid;	   /* session id for logs, audit */
	uint64_t start_ms; /* when the attempt began */
	char tag[TAG_MAX_LEN + 1];
	char user[USER_MAX_LEN + 1];
	char authzid[USER_MAX_LEN + 1];
	char pass[PASS_MAX_LEN + 1];
	char idfields[ID_MAX_LEN];
};

enum audit_result {
	AUDIT_OK = 1,
	AUDIT_BAD_CREDENTIALS,
	AUDIT_THROTTLED_IP,
	AUDIT_THROTTLED_USER,
	AUDIT_UPSTREAM_UNAVAILABLE,
	AUDIT_PROTOCOL_ERROR,
	AUDIT_TIMEOUT,
	AUDIT_ABORTED,
	AUDIT_NO_ROUTE,
	AUDIT_KICKED, /* ended by posternctl kick */
	AUDIT_RESULT_MAX
};

/*
 * One login attempt, for the audit log.  authproc sends the ones it
 * decides itself (refusals, protocol errors, time-outs); relay sends the
 * ones that reached an upstream, so the upstream's name never passes
 * through authproc.  Never a password.
 */
struct audit_record {
	uint64_t time_ms; /* wall clock, ms since epoch */
	uint64_t sid;	  /* session id */
	uint32_t duration_ms;
	uint32_t listener_id;
	uint32_t proto;
	uint32_t result;
	uint32_t tls;
	struct tls_facts facts;
	struct sockaddr_storage client;
	char user[USER_MAX_LEN + 1];
	char mech[16];
	char reason[256];
	char upstream[NAME_MAX_LEN + 1];
	uint32_t http_status; /* HTTP: what the client was answered */
	char path_class[HTTP_CLASS_MAX]; /* HTTP: activesync, dav, ... */
};

/* relay -> authproc: how the login went; text is the upstream's words. */
struct login_result {
	uint32_t status;
	char text[TEXT_MAX_LEN + 1];
};

/*
 * posternctl and the control socket.  The parent answers in text lines
 * it formats itself, so the tool needs no knowledge of the records; the
 * children answer the parent in the records below.
 */
enum ctl_command {
	CTL_SHOW_SESSIONS = 1,
	CTL_SHOW_UPSTREAMS,
	CTL_SHOW_LOOKUP,
	CTL_SHOW_STATS,
	CTL_KICK_SESSION,
	CTL_KICK_USER,
	CTL_ROUTE_FLUSH_USER,
	CTL_ROUTE_FLUSH_ALL,
	CTL_UNBLOCK_IP,
	CTL_UNBLOCK_USER,
	CTL_RELOAD,
	CTL_LOG_REOPEN,
	CTL_COMMAND_MAX
};

/* what show sessions lists */
enum ctl_filter { CTL_FILTER_NONE, CTL_FILTER_USER, CTL_FILTER_CLIENT };

#define CTL_TEXT_MAX 1024

/* posternctl -> parent */
struct ctl_request {
	uint32_t command;
	uint32_t filter;
	char arg[USER_MAX_LEN + 1]; /* a user, an address or a session id */
};

/* parent -> posternctl: the command's exit status, 0 for success */
struct ctl_end {
	int32_t status;
};

/* parent -> child; peerid: the parent's query number */
struct ctl_query {
	uint32_t command;
	uint32_t filter;
	uint64_t sid;
	struct sockaddr_storage addr;
	char user[USER_MAX_LEN + 1];
};

/* child -> parent: one session */
struct ctl_session {
	uint64_t sid;
	uint64_t start_ms; /* wall clock */
	uint64_t bytes_up;
	uint64_t bytes_down;
	uint32_t proto;
	uint32_t relaying; /* 0: pre-auth or logging in */
	uint32_t tls;
	uint32_t listener_id;
	struct sockaddr_storage client;
	char user[USER_MAX_LEN + 1];
	char upstream[NAME_MAX_LEN + 1];
	char servername[256];
};

/* a latency histogram: upper bounds in ms, the last one infinite */
#define CTL_HIST_BUCKETS 10
extern const double ctl_hist_bounds_s[CTL_HIST_BUCKETS - 1];
struct ctl_histogram {
	uint64_t bucket[CTL_HIST_BUCKETS]; /* not cumulative */
	uint64_t sum_us;
	uint64_t errors;
};

#define CTL_PROTO_SLOTS 4 /* indexed by enum mail_proto */
enum ctl_limit {
	CTL_LIMIT_IP,	       /* throttle ip, throttle failures ip */
	CTL_LIMIT_USER,	       /* throttle user, failures ip user */
	CTL_LIMIT_CONNECTIONS, /* limit connections-per-ip */
	CTL_LIMIT_ATTEMPTS,    /* limit attempts (per connection) */
	CTL_LIMIT_REQUESTS,    /* limit http-requests */
	CTL_LIMIT_MAX
};

/* child -> parent: a process's counters; each role fills its part */
struct ctl_stats {
	uint64_t sessions_preauth[CTL_PROTO_SLOTS]; /* open now */
	uint64_t sessions_relayed[CTL_PROTO_SLOTS]; /* open now */
	uint64_t attempts[CTL_PROTO_SLOTS][AUDIT_RESULT_MAX];
	uint64_t throttled[CTL_LIMIT_MAX];
	uint64_t bytes_up[CTL_PROTO_SLOTS];   /* client to upstream */
	uint64_t bytes_down[CTL_PROTO_SLOTS]; /* upstream to client */
	struct ctl_histogram lookup;
	struct ctl_histogram memcache;
	uint64_t http_requests;
};

/* relay -> parent: one pool member */
struct ctl_upstream {
	char pool[NAME_MAX_LEN + 1];
	char upstream[NAME_MAX_LEN + 1];
	uint32_t down;	/* marked down now */
	uint32_t fails; /* in a row */
	uint64_t connect_failures;
};

/* tlsproc -> parent: one listener's handshakes */
struct ctl_listener {
	uint32_t listener_id;
	uint32_t pad;
	uint64_t handshakes;
	uint64_t failures;
};

/* relay -> parent: one lookup handler */
struct ctl_handler {
	char url[320];
	uint32_t down;
	uint32_t fails;
	uint64_t errors;
};

/* child -> parent: the answer is complete */
struct ctl_done {
	uint32_t count; /* sessions kicked, routes or counters forgotten */
	uint32_t ok;	/* 0: the command could not be carried out */
};

/* shared counters to drop (posternctl unblock): authproc names the
 * address+user pairs it reset, the parent checks and passes them on */
struct counter_forget {
	uint32_t kinds; /* bits of 1 << enum counter_kind */
	uint32_t budget;
	struct sockaddr_storage client;
	char user[USER_MAX_LEN + 1];
};

extern struct ctl_stats proc_stats;
int ctl_request_valid(const struct ctl_request *, char *err, size_t);
int ctl_query_valid(const struct ctl_query *);
void ctl_stats_add(struct ctl_stats *, const struct ctl_stats *);
void ctl_hist_observe(struct ctl_histogram *, uint64_t us);

extern const struct imsg_rule control_rules[];
extern const size_t control_nrules;
extern const struct imsg_rule control_reply_rules[];
extern const size_t control_reply_nrules;

extern const struct imsg_rule parent_to_child_rules[];
extern const size_t parent_to_child_nrules;
extern const struct imsg_rule child_to_parent_rules[];
extern const size_t child_to_parent_nrules;
extern const struct imsg_rule authproc_to_relay_rules[];
extern const size_t authproc_to_relay_nrules;
extern const struct imsg_rule tlsproc_to_authproc_rules[];
extern const size_t tlsproc_to_authproc_nrules;
extern const struct imsg_rule authproc_to_tlsproc_rules[];
extern const size_t authproc_to_tlsproc_nrules;
extern const struct imsg_rule relay_to_authproc_rules[];
extern const size_t relay_to_authproc_nrules;

const char *proc_role_name(enum proc_role);
const char *mail_proto_name(enum mail_proto);
int login_request_valid(const struct imsg *, char *, size_t);
int login_result_valid(const struct imsg *, char *, size_t);
int tls_facts_valid(const struct tls_facts *);
int conf_blob_valid(const struct imsg *);
int audit_record_valid(const struct imsg *);
int audit_record_valid_from_authproc(const struct imsg *);
int counter_op_valid(const struct imsg *);
int http_request_rec_valid(const struct imsg *, char *, size_t);
int http_done_valid(const struct imsg *);
int http_verdict_valid(const struct imsg *);
int access_record_valid(const struct imsg *);
const char *audit_result_name(enum audit_result);
const char *audit_result_word(uint32_t, enum audit_result);
const char *login_mech_name(enum login_mech);
uint64_t wallclock_ms(void);
uint64_t monotonic_us(void);

/* blob.c: reassemble a file the parent sent in chunks */
int blob_store(unsigned char **, size_t *, size_t *, const struct conf_blob *,
    const unsigned char *);
int sockaddr_valid(const struct sockaddr_storage *);
socklen_t sockaddr_len(const struct sockaddr_storage *);
int sockaddr_is_wildcard(const struct sockaddr_storage *);
in_port_t sockaddr_port(const struct sockaddr_storage *);
const char *sockaddr_host(const struct sockaddr_storage *, char *, size_t);
int sockaddr_same_host(const struct sockaddr_storage *,
    const struct sockaddr_storage *);
int sockaddr_same_client(const struct sockaddr_storage *,
    const struct sockaddr_storage *);
const char *sockaddr_str(const struct sockaddr_storage *, char *, size_t);

#endif
