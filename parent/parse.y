/*
 * postern.conf grammar, in the manner of relayd.conf: one statement per
 * line, '#' comments, quoted or bare strings, upstream blocks in braces.
 * Errors are reported as file:line: message and parsing goes on, so one
 * run of "postern -n" shows every mistake.
 */
%{
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "log.h"
#include "parent.h"

static struct file {
	FILE		*stream;
	const char	*name;
	int		 lineno;
	int		 errors;
} file;

static struct postern_conf	*conf;
static struct upstream		*cur_upstream;
static struct listener		*cur_listener;
static struct keypair		*cur_keypair;
static struct pool		*cur_pool;
static struct conf_lookup_handler *cur_handler;	/* its tls options follow */
static char			 cur_message[POLICY_MSG_MAX];
static int			 tlsprocs_given;	/* "tls processes" seen */

int		 yylex(void);
int		 yyparse(void);
static int	 yyerror(const char *, ...)
    __attribute__((format(printf, 1, 2)));
static int	 kw_cmp(const void *, const void *);
static int	 lookup(const char *);
static int	 lgetc(void);
static void	 lungetc(int);
static int	 add_listener(const char *, long long, int);
static int	 add_route(int, const char *, const char *);
static struct upstream	*find_upstream(const char *);
static struct keypair	*find_keypair(const char *);
static struct pool	*find_pool(const char *);
static int		 add_handler(const char *);
static int		 finish_handler(void);
static int		 handler_tls_opt(char *, size_t, const char *,
			    const char *);
static int		 add_network(const char *, long long);
static int	 finish_listener(void);
static int	 set_path(char *, size_t, const char *);
static int	 set_limit(struct policy_limit *, long long, long long);
static void	 set_message(struct policy_limit *);
static int	 resolve(const char *, int, struct sockaddr_storage *, int);
static int	 host_is_address(const char *);
static int	 add_path_prefix(const char *);
static void	 check_http(const char *, struct postern_conf *);
static int	 prefixes_given;
/* Zimbra and Carbonio: the SOAP AuthRequest and the login page */
/* Zimbra and Carbonio: the SOAP AuthRequest wherever it is posted, the
 * admin console's (by name or by account), and the login page */
static const struct http_form_login zimbra_forms[] = {
	{ "POST", "/service/soap", "account", "AuthRequest", 1 },
	{ "POST", "/service/admin/soap", "name", "AuthRequest", 1 },
	{ "POST", "/service/admin/soap", "account", "AuthRequest", 1 },
	{ "POST", "/", "username", "", 0 },
};
static int	 forms_given;
static int	 add_form_login(const char *, const char *, const char *,
		    const char *);

typedef struct {
	union {
		long long	 number;
		char		*string;
	} v;
	int lineno;
} YYSTYPE;
#define YYSTYPE_IS_DECLARED 1
%}

%token	USER CHROOT TIMEOUT CONNECT LOGIN PREAUTH LIMIT LINE LITERAL
%token	BADCOMMANDS SESSIONS GREETING LISTEN ON PORT IMAP POP3 ROUTE
%token	DOMAIN DEFAULT TO UPSTREAM HOST NAME ERROR
%token	TLS KEYPAIR CERTIFICATE KEY OCSP PROTOCOLS CIPHERS SESSIONLIFETIME
%token	HANDSHAKE REQUIRED CA NOVERIFY AUDIT FILENAME SYSLOG NODE
%token	THROTTLE PER MESSAGE FAILURES IPUSER ALLOW DELAY MAX IP
%token	CONNECTIONSPERIP ATTEMPTS PREAUTHTOTAL PROXYPROTOCOL TRUSTED
%token	MEMCACHE SERVER BACKOFF STORE LOCAL
%token	LOOKUP HANDLER RETRY PASSPASSWORD CACHE NETWORK POOL BALANCE
%token	ROUNDROBIN CLIENTIP MAXFAILS FAILTIMEOUT RELAY PROCESSES
%token	LINGER STALL
%token	HTTP MODE HTTPS REDIRECT BOTH HSTS HSTSMAXAGE FALLBACK
%token	HTTPHEADER HTTPTARGET HTTPBODY HTTPIDLE HTTPRESPONSE
%token	LOOKUPFAILURE ROUTEBY PATH BASIC COOKIE AUTHCOOKIE PATHPREFIX
%token	UPSTREAMIDLE UPSTREAMKEEP ACCESS LOG QUERY HTTPREQUESTS
%token	FORMLOGIN FIELD NONE SEPARATE MARKER OVERSIZE REFUSE PASS SCAN
%token	CONTROL SOCKET GROUP METRICS
%type	<v.number>	window
%token	<v.string>	STRING
%token	<v.number>	NUMBER
%type	<v.number>	proto seconds count mcport netport httpmode
%type	<v.string>	string formmarker

/* strings dropped by error recovery would otherwise leak */
%destructor	{ free($$); }	<v.string>

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar main '\n'
		| grammar httpmain '\n'
		| grammar upstream '\n'
		| grammar pool '\n'
		| grammar error '\n'		{ file.errors++; }
		;

formmarker	: /* empty */		{ $$ = NULL; }
		| MARKER string		{ $$ = $2; }
		;

string		: STRING
		| NUMBER	{
			if (asprintf(&$$, "%lld", $1) == -1)
				fatal("asprintf");
		}
		;

seconds		: NUMBER {
			if ($1 <= 0 || $1 > 86400) {
				yyerror("timeout out of range (1-86400)");
				YYERROR;
			}
			$$ = $1;
		}
		;

count		: NUMBER {
			if ($1 <= 0 || $1 > 1000000) {
				yyerror("limit out of range (1-1000000)");
				YYERROR;
			}
			$$ = $1;
		}
		;

proto		: IMAP		{ $$ = PROTO_IMAP; }
		| POP3		{ $$ = PROTO_POP3; }
		| HTTP		{ $$ = PROTO_HTTP; }
		;

routesrcs	: routesrc
		| routesrcs routesrc
		;

routesrc	: PATH		{ conf->http.route.use_path = 1; }
		| BASIC		{ conf->http.route.use_basic = 1; }
		| COOKIE	{ conf->http.route.use_cookie = 1; }
		;

httpmode	: HTTP		{ $$ = HTTP_MODE_HTTP; }
		| HTTPS		{ $$ = HTTP_MODE_HTTPS; }
		| BOTH		{ $$ = HTTP_MODE_BOTH; }
		| REDIRECT	{ $$ = HTTP_MODE_REDIRECT; }
		;

httpmain	: HTTP FALLBACK TO string {
			if (strlen($4) > NAME_MAX_LEN) {
				yyerror("name too long");
				free($4);
				$4 = NULL;
				YYERROR;
			}
			snprintf(conf->http_fallback,
			    sizeof(conf->http_fallback), "%s", $4);
			free($4);
			$4 = NULL;
		}
		| HTTP LOOKUPFAILURE FALLBACK {
			conf->http.lookup_fail_503 = 0;
		}
		| HTTP LOOKUPFAILURE ERROR {
			conf->http.lookup_fail_503 = 1;
		}
		| HTTP HSTSMAXAGE NUMBER {
			if ($3 < 0 || $3 > 63072000) {
				yyerror("hsts-max-age out of range "
				    "(0-63072000)");
				YYERROR;
			}
			conf->http.hsts_max_age = $3;
		}
		| HTTP ROUTEBY {
			conf->http.route.use_path = 0;
			conf->http.route.use_basic = 0;
			conf->http.route.use_cookie = 0;
		} routesrcs
		| HTTP AUTHCOOKIE string {
			size_t	i;

			for (i = 0; $3[i] != '\0'; i++)
				if (!isalnum((unsigned char)$3[i]) &&
				    strchr("_-.", $3[i]) == NULL)
					break;
			if ($3[i] != '\0' || i == 0 ||
			    i >= sizeof(conf->http.route.cookie)) {
				yyerror("invalid cookie name");
				free($3);
				$3 = NULL;
				YYERROR;
			}
			snprintf(conf->http.route.cookie,
			    sizeof(conf->http.route.cookie), "%s", $3);
			free($3);
			$3 = NULL;
		}
		| HTTP PATHPREFIX string {
			int	r = add_path_prefix($3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| ACCESS LOG FILENAME string {
			int r = set_path(conf->access_path,
			    sizeof(conf->access_path), $4);

			free($4);
			$4 = NULL;
			if (r == -1)
				YYERROR;
		}
		| ACCESS LOG QUERY {
			conf->http.access_query = 1;
		}
		| HTTP FORMLOGIN string string formmarker FIELD string {
			int	r = add_form_login($3, $4, $5, $7);

			free($3);
			$3 = NULL;
			free($4);
			$4 = NULL;
			free($5);
			$5 = NULL;
			free($7);
			$7 = NULL;
			if (r == -1)
				YYERROR;
		}
		| HTTP FORMLOGIN NONE {
			conf->http.nforms = 0;
			forms_given = 1;
		}
		| HTTP FORMLOGIN OVERSIZE REFUSE {
			conf->http.soap_oversize_refuse = 1;
		}
		| HTTP FORMLOGIN OVERSIZE PASS {
			conf->http.soap_oversize_refuse = 0;
		}
		| HTTP FORMLOGIN SCAN NUMBER {
			if ($4 < 1024 || $4 > HTTP_SCAN_LIMIT_MAX) {
				yyerror("form-login scan out of range "
				    "(1024-%d)", HTTP_SCAN_LIMIT_MAX);
				YYERROR;
			}
			conf->http.soap_scan_max = $4;
		}
		| HTTP UPSTREAMKEEP NUMBER {
			if ($3 < 0 || $3 > 10000) {
				yyerror("upstream-keep out of range (0-10000)");
				YYERROR;
			}
			conf->http.upstream_keep = $3;
		}
		| TIMEOUT HTTPHEADER seconds {
			conf->http.timeout_header = $3;
		}
		| TIMEOUT HTTPIDLE seconds {
			conf->http.timeout_idle = $3;
		}
		| TIMEOUT HTTPRESPONSE seconds {
			conf->http.timeout_response = $3;
		}
		| TIMEOUT UPSTREAMIDLE seconds {
			conf->http.upstream_idle = $3;
		}
		| LIMIT HTTPHEADER NUMBER {
			if ($3 < 1024 || $3 > HTTP_HEAD_MAX) {
				yyerror("http-header limit out of range "
				    "(1024-%d)", HTTP_HEAD_MAX);
				YYERROR;
			}
			conf->http.max_head = $3;
		}
		| LIMIT HTTPTARGET NUMBER {
			if ($3 < 256 || $3 > HTTP_HEAD_MAX - 64) {
				yyerror("http-target limit out of range "
				    "(256-%d)", HTTP_HEAD_MAX - 64);
				YYERROR;
			}
			conf->http.max_target = $3;
		}
		| LIMIT HTTPREQUESTS NUMBER PER window {
			if (set_limit(&conf->policy.requests, $3, $5) == -1)
				YYERROR;
		}
		| LIMIT HTTPBODY NUMBER {
			if ($3 < 0 || $3 > (1LL << 42)) {
				yyerror("http-body limit out of range "
				    "(0-%lld)", 1LL << 42);
				YYERROR;
			}
			conf->http.max_body = $3;
		}
		;

main		: USER string {
			if (strlen($2) >= sizeof(conf->user)) {
				yyerror("user name too long");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(conf->user, sizeof(conf->user), "%s", $2);
			free($2);
			$2 = NULL;
		}
		| CHROOT string {
			if ($2[0] != '/' ||
			    strlen($2) >= sizeof(conf->sandbox.chroot)) {
				yyerror("chroot must be an absolute path");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(conf->sandbox.chroot,
			    sizeof(conf->sandbox.chroot), "%s", $2);
			free($2);
			$2 = NULL;
		}
		| TIMEOUT CONNECT seconds {
			conf->global.timeout_connect = $3;
		}
		| TIMEOUT LOGIN seconds {
			conf->global.timeout_login = $3;
		}
		| TIMEOUT PREAUTH seconds {
			conf->global.timeout_preauth = $3;
		}
		| TIMEOUT LINGER seconds {
			conf->global.timeout_linger = $3;
		}
		| TIMEOUT STALL seconds {
			conf->global.timeout_stall = $3;
		}
		| LIMIT LINE count {
			if ($3 < 512 || $3 > 8192) {
				yyerror("line limit out of range (512-8192)");
				YYERROR;
			}
			conf->global.max_line = $3;
		}
		| LIMIT LITERAL count {
			if ($3 > PASS_MAX_LEN) {
				yyerror("literal limit above %d", PASS_MAX_LEN);
				YYERROR;
			}
			conf->global.max_literal = $3;
		}
		| LIMIT BADCOMMANDS count {
			conf->global.max_bad_commands = $3;
		}
		| LIMIT SESSIONS count {
			conf->global.max_sessions = $3;
		}
		| GREETING string {
			size_t	i;

			for (i = 0; $2[i] != '\0'; i++)
				if (!isprint((unsigned char)$2[i]))
					break;
			if ($2[i] != '\0' ||
			    strlen($2) >= sizeof(conf->global.greeting)) {
				yyerror("greeting must be short printable text");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(conf->global.greeting,
			    sizeof(conf->global.greeting), "%s", $2);
			free($2);
			$2 = NULL;
		}
		| LISTEN ON string PORT NUMBER proto {
			int	r = add_listener($3, $5, $6);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		} listenopts {
			if (finish_listener() == -1)
				YYERROR;
		}
		| THROTTLE IP NUMBER PER window {
			if (set_limit(&conf->policy.ip, $3, $5) == -1)
				YYERROR;
		} throttlemsg {
			set_message(&conf->policy.ip);
		}
		| THROTTLE USER NUMBER PER window {
			if (set_limit(&conf->policy.user, $3, $5) == -1)
				YYERROR;
		} throttlemsg {
			set_message(&conf->policy.user);
		}
		| THROTTLE FAILURES IP NUMBER PER window {
			if (set_limit(&conf->policy.ip_fail, $4, $6) == -1)
				YYERROR;
		} throttlemsg {
			set_message(&conf->policy.ip_fail);
		}
		| THROTTLE FAILURES IPUSER NUMBER PER window {
			if (set_limit(&conf->policy.ipuser_fail, $4, $6) == -1)
				YYERROR;
		} throttlemsg {
			set_message(&conf->policy.ipuser_fail);
		}
		| THROTTLE ALLOW string {
			struct cidr	c;

			if (cidr_parse($3, &c) == -1) {
				yyerror("invalid address prefix %s", $3);
				free($3);
				$3 = NULL;
				YYERROR;
			}
			free($3);
			$3 = NULL;
			if (conf->policy.nallow >= POLICY_MAX_ALLOW) {
				yyerror("too many allow entries (max %d)",
				    POLICY_MAX_ALLOW);
				YYERROR;
			}
			conf->policy.allow[conf->policy.nallow++] = c;
		}
		| PROXYPROTOCOL TRUSTED string {
			struct cidr	c;

			if (cidr_parse($3, &c) == -1) {
				yyerror("invalid address prefix %s", $3);
				free($3);
				$3 = NULL;
				YYERROR;
			}
			free($3);
			$3 = NULL;
			if (conf->policy.nproxy >= POLICY_MAX_ALLOW) {
				yyerror("too many trusted proxies (max %d)",
				    POLICY_MAX_ALLOW);
				YYERROR;
			}
			conf->policy.proxy[conf->policy.nproxy++] = c;
		}
		| MEMCACHE SERVER string mcport {
			struct conf_memcache	*m = &conf->memcache;

			if (m->nservers >= MCACHE_MAX_SERVERS) {
				yyerror("too many memcache servers (max %d)",
				    MCACHE_MAX_SERVERS);
				free($3);
				$3 = NULL;
				YYERROR;
			}
			if (resolve($3, $4, &m->servers[m->nservers], 0) ==
			    -1) {
				free($3);
				$3 = NULL;
				YYERROR;
			}
			free($3);
			$3 = NULL;
			m->nservers++;
		}
		| MEMCACHE TIMEOUT NUMBER {
			if ($3 < 10 || $3 > 10000) {
				yyerror("memcache timeout out of range "
				    "(10-10000 ms)");
				YYERROR;
			}
			conf->memcache.timeout_ms = $3;
		}
		| MEMCACHE BACKOFF seconds {
			if ($3 < 2) {
				yyerror("memcache backoff below 2 s");
				YYERROR;
			}
			conf->memcache.backoff_s = $3;
		}
		| RELAY PROCESSES NUMBER {
			if ($3 < 1 || $3 > MAX_RELAYS) {
				yyerror("relay processes out of range (1-%d)",
				    MAX_RELAYS);
				YYERROR;
			}
			conf->global.relays = $3;
		}
		| TLS PROCESSES NUMBER {
			/* a second one is a mistake, not an override */
			if (tlsprocs_given++) {
				yyerror("tls processes given twice");
				YYERROR;
			}
			if ($3 < 1 || $3 > MAX_TLSPROCS) {
				yyerror("tls processes out of range (1-%d)",
				    MAX_TLSPROCS);
				YYERROR;
			}
			conf->global.tlsprocs = $3;
		}
		| LOOKUP HANDLER string {
			int	r = add_handler($3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		} handleropts {
			if (finish_handler() == -1)
				YYERROR;
		}
		| LOOKUP TIMEOUT NUMBER {
			if ($3 < 10 || $3 > 60000) {
				yyerror("lookup timeout out of range "
				    "(10-60000 ms)");
				YYERROR;
			}
			conf->lookup.timeout_ms = $3;
		}
		| LOOKUP RETRY seconds {
			conf->lookup.retry_s = $3;
		}
		| LOOKUP PASSPASSWORD {
			conf->lookup.pass_password = 1;
		}
		| LOOKUP CACHE NUMBER {
			if ($3 < 0 || $3 > 86400) {
				yyerror("cache time out of range (0-86400 s)");
				YYERROR;
			}
			conf->lookup.cache_ttl = $3;
		}
		| UPSTREAM NETWORK string netport {
			int	r = add_network($3, $4);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| THROTTLE STORE LOCAL {
			conf->policy.shared = 0;
		}
		| THROTTLE HTTP SEPARATE {
			conf->policy.http_separate = 1;
		}
		| THROTTLE STORE MEMCACHE {
			conf->policy.shared = 1;
		}
		| THROTTLE DELAY NUMBER MAX NUMBER {
			if ($3 < 0 || $3 > 60000 || $5 < $3 || $5 > 600000) {
				yyerror("delay out of range (0-60000 ms, max "
				    "not below it)");
				YYERROR;
			}
			conf->policy.delay_ms = $3;
			conf->policy.delay_max_ms = $5;
		}
		| LIMIT CONNECTIONSPERIP NUMBER {
			if ($3 < 0 || $3 > 1000000) {
				yyerror("limit out of range (0-1000000)");
				YYERROR;
			}
			conf->policy.max_conn_per_ip = $3;
		}
		| LIMIT ATTEMPTS NUMBER {
			if ($3 < 0 || $3 > 1000) {
				yyerror("limit out of range (0-1000)");
				YYERROR;
			}
			conf->policy.max_attempts = $3;
		}
		| TIMEOUT PREAUTHTOTAL seconds {
			conf->global.timeout_preauth_total = $3;
		}
		| AUDIT FILENAME string {
			int r = set_path(conf->audit_path,
			    sizeof(conf->audit_path), $3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| AUDIT SYSLOG {
			conf->audit_syslog = 1;
		}
		| CONTROL SOCKET string {
			int r = set_path(conf->control_path,
			    sizeof(conf->control_path), $3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| CONTROL SOCKET NONE {
			conf->control_path[0] = '\0';
		}
		| CONTROL GROUP string {
			if (strlen($3) >= sizeof(conf->control_group)) {
				yyerror("group name too long");
				free($3);
				$3 = NULL;
				YYERROR;
			}
			snprintf(conf->control_group,
			    sizeof(conf->control_group), "%s", $3);
			free($3);
			$3 = NULL;
		}
		| METRICS LISTEN ON string PORT NUMBER {
			int	r = -1;

			if ($6 <= 0 || $6 > 65535)
				yyerror("port out of range");
			else
				r = resolve($4, $6, &conf->metrics_addr, 1);
			free($4);
			$4 = NULL;
			if (r == -1)
				YYERROR;
			conf->metrics = 1;
		}
		| NODE string {
			if (strlen($2) >= sizeof(conf->node) || $2[0] == '\0') {
				yyerror("node name must be 1-63 characters");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(conf->node, sizeof(conf->node), "%s", $2);
			free($2);
			$2 = NULL;
		}
		| TIMEOUT HANDSHAKE seconds {
			conf->tls.timeout_handshake = $3;
		}
		| TLS PROTOCOLS string {
			uint32_t	protos;

			if (tls_config_parse_protocols(&protos, $3) == -1) {
				yyerror("invalid TLS protocols \"%s\"", $3);
				free($3);
				$3 = NULL;
				YYERROR;
			}
			conf->tls.protocols = protos;
			free($3);
			$3 = NULL;
		}
		| TLS CIPHERS string {
			if (strlen($3) >= sizeof(conf->tls.ciphers)) {
				yyerror("cipher list too long");
				free($3);
				$3 = NULL;
				YYERROR;
			}
			snprintf(conf->tls.ciphers, sizeof(conf->tls.ciphers),
			    "%s", $3);
			free($3);
			$3 = NULL;
		}
		| TLS SESSIONLIFETIME NUMBER {
			if ($3 < 0 || $3 > 86400) {
				yyerror("session lifetime out of range (0-86400)");
				YYERROR;
			}
			conf->tls.session_lifetime = $3;
		}
		| TLS KEYPAIR string {
			if (find_keypair($3) != NULL) {
				yyerror("keypair %s defined twice", $3);
				free($3);
				$3 = NULL;
				YYERROR;
			}
			if (strlen($3) >= sizeof(((struct conf_keypair *)0)->name)) {
				yyerror("keypair name too long");
				free($3);
				$3 = NULL;
				YYERROR;
			}
			free(cur_keypair);
			if ((cur_keypair = calloc(1, sizeof(*cur_keypair)))
			    == NULL)
				fatal("calloc");
			snprintf(cur_keypair->conf.name,
			    sizeof(cur_keypair->conf.name), "%s", $3);
			cur_keypair->conf.id = ++conf->next_id;
			free($3);
			$3 = NULL;
		} '{' optnl keypairopts '}' {
			if (cur_keypair->cert[0] == '\0' ||
			    cur_keypair->key[0] == '\0') {
				yyerror("keypair %s needs a certificate and a key",
				    cur_keypair->conf.name);
				free(cur_keypair);
				cur_keypair = NULL;
				YYERROR;
			}
			TAILQ_INSERT_TAIL(&conf->keypairs, cur_keypair, entry);
			cur_keypair = NULL;
		}
		| ROUTE USER string TO string {
			int	r = add_route(ROUTE_USER, $3, $5);

			free($3);
			$3 = NULL;
			free($5);
			$5 = NULL;
			if (r == -1)
				YYERROR;
		}
		| ROUTE DOMAIN string TO string {
			int	r = add_route(ROUTE_DOMAIN, $3, $5);

			free($3);
			$3 = NULL;
			free($5);
			$5 = NULL;
			if (r == -1)
				YYERROR;
		}
		| ROUTE DEFAULT TO string {
			int	r = add_route(ROUTE_DEFAULT, "", $4);

			free($4);
			$4 = NULL;
			if (r == -1)
				YYERROR;
		}
		;

upstream	: UPSTREAM string {
			/*
			 * $2 stays on the stack until the block ends: an
			 * error in the block makes the parser pop it through
			 * the %destructor, so clear it once it is freed here.
			 */
			if (find_upstream($2) != NULL || find_pool($2) != NULL) {
				yyerror("upstream %s defined twice", $2);
				free($2);
				$2 = NULL;
				YYERROR;
			}
			if (strlen($2) > NAME_MAX_LEN) {
				yyerror("upstream name too long");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			/* a block abandoned on an error left this behind */
			free(cur_upstream);
			if ((cur_upstream = calloc(1, sizeof(*cur_upstream)))
			    == NULL)
				fatal("calloc");
			snprintf(cur_upstream->conf.name,
			    sizeof(cur_upstream->conf.name), "%s", $2);
			cur_upstream->conf.id = ++conf->next_id;
			free($2);
			$2 = NULL;
		} '{' optnl upstreamopts '}' {
			if (cur_upstream->host[0] == '\0') {
				yyerror("upstream %s: no host",
				    cur_upstream->conf.name);
				free(cur_upstream);
				cur_upstream = NULL;
				YYERROR;
			}
			if (!cur_upstream->imap_port &&
			    !cur_upstream->pop3_port &&
			    !cur_upstream->http_port) {
				yyerror("upstream %s: no imap, pop3 or http port",
				    cur_upstream->conf.name);
				free(cur_upstream);
				cur_upstream = NULL;
				YYERROR;
			}
			if (resolve(cur_upstream->host,
			    cur_upstream->imap_port,
			    &cur_upstream->conf.imap, 0) == -1 ||
			    resolve(cur_upstream->host,
			    cur_upstream->pop3_port,
			    &cur_upstream->conf.pop3, 0) == -1 ||
			    resolve(cur_upstream->host,
			    cur_upstream->http_port,
			    &cur_upstream->conf.http, 0) == -1) {
				free(cur_upstream);
				cur_upstream = NULL;
				YYERROR;
			}
			/*
			 * tls options alone mean TLS on every port, as
			 * before "https port"; beside it, they are its own
			 */
			if (cur_upstream->tls_opts && !cur_upstream->conf.https)
				cur_upstream->conf.tls = 1;
			/* verify the upstream's certificate against its host */
			if ((cur_upstream->conf.tls || cur_upstream->conf.https) &&
			    cur_upstream->conf.servername[0] == '\0')
				snprintf(cur_upstream->conf.servername,
				    sizeof(cur_upstream->conf.servername), "%s",
				    cur_upstream->host);
			if (!host_is_address(cur_upstream->host))
				snprintf(cur_upstream->conf.hostname,
				    sizeof(cur_upstream->conf.hostname), "%s",
				    cur_upstream->host);
			cur_upstream->conf.has_imap = cur_upstream->imap_port
			    != 0;
			cur_upstream->conf.has_http = cur_upstream->http_port
			    != 0;
			cur_upstream->conf.has_pop3 = cur_upstream->pop3_port
			    != 0;
			TAILQ_INSERT_TAIL(&conf->upstreams, cur_upstream,
			    entry);
			cur_upstream = NULL;
		}
		;

window		: NUMBER {
			if ($1 <= 0 || $1 > 86400) {
				yyerror("window out of range (1-86400 s)");
				YYERROR;
			}
			$$ = $1;
		}
		;

netport		: /* empty */		{ $$ = 0; }
		| PORT NUMBER {
			if ($2 <= 0 || $2 > 65535) {
				yyerror("invalid port %lld", $2);
				YYERROR;
			}
			$$ = $2;
		}
		;

pool		: POOL string {
			if (find_upstream($2) != NULL || find_pool($2) != NULL) {
				yyerror("%s defined twice", $2);
				free($2);
				$2 = NULL;
				YYERROR;
			}
			if (strlen($2) > NAME_MAX_LEN) {
				yyerror("pool name too long");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			free(cur_pool);
			if ((cur_pool = calloc(1, sizeof(*cur_pool))) == NULL)
				fatal("calloc");
			snprintf(cur_pool->conf.name,
			    sizeof(cur_pool->conf.name), "%s", $2);
			cur_pool->conf.id = ++conf->next_id;
			cur_pool->conf.balance = POOL_ROUND_ROBIN;
			cur_pool->conf.max_fails = 1;
			cur_pool->conf.fail_timeout = 30;
			free($2);
			$2 = NULL;
		} '{' optnl poolopts '}' {
			if (cur_pool->conf.nmembers == 0) {
				yyerror("pool %s: no upstream",
				    cur_pool->conf.name);
				free(cur_pool);
				cur_pool = NULL;
				YYERROR;
			}
			TAILQ_INSERT_TAIL(&conf->pools, cur_pool, entry);
			cur_pool = NULL;
		}
		;

poolopts	: /* empty */
		| poolopts poolopt nl
		;

poolopt		: UPSTREAM string {
			struct upstream	*u = find_upstream($2);
			uint32_t	 i;

			free($2);
			$2 = NULL;
			if (u == NULL) {
				yyerror("pool member is not a defined upstream");
				YYERROR;
			}
			for (i = 0; i < cur_pool->conf.nmembers; i++)
				if (cur_pool->conf.members[i] == u->conf.id) {
					yyerror("pool member listed twice");
					YYERROR;
				}
			if (cur_pool->conf.nmembers >= POOL_MAX_MEMBERS) {
				yyerror("too many pool members (max %d)",
				    POOL_MAX_MEMBERS);
				YYERROR;
			}
			cur_pool->conf.members[cur_pool->conf.nmembers++] =
			    u->conf.id;
		}
		| BALANCE ROUNDROBIN {
			cur_pool->conf.balance = POOL_ROUND_ROBIN;
		}
		| BALANCE CLIENTIP {
			cur_pool->conf.balance = POOL_CLIENT_IP;
		}
		| MAXFAILS NUMBER {
			if ($2 < 0 || $2 > 1000) {
				yyerror("max-fails out of range (0-1000)");
				YYERROR;
			}
			cur_pool->conf.max_fails = $2;
		}
		| FAILTIMEOUT seconds {
			cur_pool->conf.fail_timeout = $2;
		}
		| PROXYPROTOCOL {
			cur_pool->conf.proxy_v2 = 1;
		}
		;

mcport		: /* empty */		{ $$ = 11211; }
		| PORT NUMBER {
			if ($2 <= 0 || $2 > 65535) {
				yyerror("invalid port %lld", $2);
				YYERROR;
			}
			$$ = $2;
		}
		;

throttlemsg	: /* empty */		{ cur_message[0] = '\0'; }
		| MESSAGE string {
			size_t	i;

			for (i = 0; $2[i] != '\0'; i++)
				if (!isprint((unsigned char)$2[i]))
					break;
			if ($2[i] != '\0' || strlen($2) >= POLICY_MSG_MAX) {
				yyerror("message must be short printable text");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(cur_message, sizeof(cur_message), "%s", $2);
			free($2);
			$2 = NULL;
		}
		;

listenopts	: /* empty */
		| listenopts listenopt
		;

listenopt	: TLS {
			cur_listener->conf.flags |= LISTEN_TLS;
		}
		| PROXYPROTOCOL {
			cur_listener->conf.flags |= LISTEN_PROXY;
		}
		| TLS REQUIRED {
			cur_listener->conf.flags |= LISTEN_TLS_REQUIRED;
		}
		| MODE httpmode {
			cur_listener->conf.http_mode = $2;
		}
		| MODE REDIRECT PORT NUMBER {
			if ($4 <= 0 || $4 > 65535) {
				yyerror("port out of range");
				YYERROR;
			}
			cur_listener->conf.http_mode = HTTP_MODE_REDIRECT;
			cur_listener->conf.redirect_port = $4;
		}
		| HSTS {
			cur_listener->conf.flags |= LISTEN_HSTS;
		}
		| KEYPAIR string {
			struct keypair	*k;

			if ((k = find_keypair($2)) == NULL) {
				yyerror("keypair %s not defined", $2);
				free($2);
				$2 = NULL;
				YYERROR;
			}
			free($2);
			$2 = NULL;
			if (cur_listener->conf.nkeypairs >= LISTEN_MAX_KEYPAIRS) {
				yyerror("too many keypairs on one listener");
				YYERROR;
			}
			cur_listener->conf.keypairs[
			    cur_listener->conf.nkeypairs++] = k->conf.id;
		}
		;

keypairopts	: /* empty */
		| keypairopts keypairopt nl
		;

keypairopt	: CERTIFICATE string {
			int r = set_path(cur_keypair->cert,
			    sizeof(cur_keypair->cert), $2);
			free($2);
			$2 = NULL;
			if (r == -1)
				YYERROR;
		}
		| KEY string {
			int r = set_path(cur_keypair->key,
			    sizeof(cur_keypair->key), $2);
			free($2);
			$2 = NULL;
			if (r == -1)
				YYERROR;
		}
		| OCSP string {
			int r = set_path(cur_keypair->ocsp,
			    sizeof(cur_keypair->ocsp), $2);
			free($2);
			$2 = NULL;
			if (r == -1)
				YYERROR;
		}
		;

handleropts	: /* empty */
		| handleropts handleropt
		;

handleropt	: TLS CA string {
			int r = handler_tls_opt(cur_handler->ca,
			    sizeof(cur_handler->ca), "ca", $3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| TLS NAME string {
			int r = handler_tls_opt(cur_handler->servername,
			    sizeof(cur_handler->servername), "name", $3);

			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		;

upstreamopts	: /* empty */
		| upstreamopts upstreamopt nl
		;

upstreamopt	: HOST string {
			if (strlen($2) >= sizeof(cur_upstream->host)) {
				yyerror("host name too long");
				free($2);
				$2 = NULL;
				YYERROR;
			}
			snprintf(cur_upstream->host,
			    sizeof(cur_upstream->host), "%s", $2);
			free($2);
			$2 = NULL;
		}
		| TLS {
			cur_upstream->conf.tls = 1;
		}
		| TLS CA string {
			int r;

			cur_upstream->tls_opts = 1;
			r = set_path(cur_upstream->ca, sizeof(cur_upstream->ca), $3);
			free($3);
			$3 = NULL;
			if (r == -1)
				YYERROR;
		}
		| TLS NAME string {
			cur_upstream->tls_opts = 1;
			if (strlen($3) >= sizeof(cur_upstream->conf.servername)) {
				yyerror("server name too long");
				free($3);
				$3 = NULL;
				YYERROR;
			}
			snprintf(cur_upstream->conf.servername,
			    sizeof(cur_upstream->conf.servername), "%s", $3);
			free($3);
			$3 = NULL;
		}
		| TLS NOVERIFY {
			cur_upstream->tls_opts = 1;
			cur_upstream->conf.noverify = 1;
		}
		| HTTPS PORT NUMBER {
			if ($3 <= 0 || $3 > 65535) {
				yyerror("port out of range");
				YYERROR;
			}
			cur_upstream->http_port = $3;
			cur_upstream->conf.https = 1;
		}
		| proto PORT NUMBER {
			if ($3 <= 0 || $3 > 65535) {
				yyerror("port out of range");
				YYERROR;
			}
			if ($1 == PROTO_IMAP)
				cur_upstream->imap_port = $3;
			else if ($1 == PROTO_POP3)
				cur_upstream->pop3_port = $3;
			else
				cur_upstream->http_port = $3;
		}
		;

optnl		: /* empty */
		| optnl '\n'
		;

nl		: '\n' optnl
		;

%%

struct keywords {
	const char	*k_name;
	int		 k_val;
};

static int
yyerror(const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[512];

	file.errors++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s:%d: %s", file.name, yylval.lineno, msg);
	return 0;
}

static int
kw_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct keywords *)e)->k_name);
}

static int
lookup(const char *s)
{
	/* sorted, for bsearch */
	static const struct keywords keywords[] = {
		{ "access",		ACCESS },
		{ "allow",		ALLOW },
		{ "attempts",		ATTEMPTS },
		{ "audit",		AUDIT },
		{ "auth-cookie",	AUTHCOOKIE },
		{ "backoff",		BACKOFF },
		{ "bad-commands",	BADCOMMANDS },
		{ "balance",		BALANCE },
		{ "basic",		BASIC },
		{ "both",		BOTH },
		{ "ca",			CA },
		{ "cache",		CACHE },
		{ "certificate",	CERTIFICATE },
		{ "chroot",		CHROOT },
		{ "ciphers",		CIPHERS },
		{ "client-ip",		CLIENTIP },
		{ "connect",		CONNECT },
		{ "connections-per-ip",	CONNECTIONSPERIP },
		{ "control",		CONTROL },
		{ "cookie",		COOKIE },
		{ "default",		DEFAULT },
		{ "delay",		DELAY },
		{ "domain",		DOMAIN },
		{ "error",		ERROR },
		{ "fail-timeout",	FAILTIMEOUT },
		{ "failures",		FAILURES },
		{ "fallback",		FALLBACK },
		{ "field",		FIELD },
		{ "file",		FILENAME },
		{ "form-login",		FORMLOGIN },
		{ "greeting",		GREETING },
		{ "group",		GROUP },
		{ "handler",		HANDLER },
		{ "handshake",		HANDSHAKE },
		{ "host",		HOST },
		{ "hsts",		HSTS },
		{ "hsts-max-age",	HSTSMAXAGE },
		{ "http",		HTTP },
		{ "http-body",		HTTPBODY },
		{ "http-header",	HTTPHEADER },
		{ "http-idle",		HTTPIDLE },
		{ "http-requests",	HTTPREQUESTS },
		{ "http-response",	HTTPRESPONSE },
		{ "http-target",	HTTPTARGET },
		{ "https",		HTTPS },
		{ "imap",		IMAP },
		{ "ip",			IP },
		{ "ip-user",		IPUSER },
		{ "key",		KEY },
		{ "keypair",		KEYPAIR },
		{ "limit",		LIMIT },
		{ "line",		LINE },
		{ "linger",		LINGER },
		{ "listen",		LISTEN },
		{ "literal",		LITERAL },
		{ "local",		LOCAL },
		{ "log",		LOG },
		{ "login",		LOGIN },
		{ "lookup",		LOOKUP },
		{ "lookup-failure",	LOOKUPFAILURE },
		{ "marker",		MARKER },
		{ "max",		MAX },
		{ "max-fails",		MAXFAILS },
		{ "memcache",		MEMCACHE },
		{ "message",		MESSAGE },
		{ "metrics",		METRICS },
		{ "mode",		MODE },
		{ "name",		NAME },
		{ "network",		NETWORK },
		{ "no-verify",		NOVERIFY },
		{ "node",		NODE },
		{ "none",		NONE },
		{ "ocsp",		OCSP },
		{ "on",			ON },
		{ "oversize",		OVERSIZE },
		{ "pass",		PASS },
		{ "pass-password",	PASSPASSWORD },
		{ "path",		PATH },
		{ "path-prefix",	PATHPREFIX },
		{ "per",		PER },
		{ "pool",		POOL },
		{ "pop3",		POP3 },
		{ "port",		PORT },
		{ "pre-auth",		PREAUTH },
		{ "pre-auth-total",	PREAUTHTOTAL },
		{ "processes",		PROCESSES },
		{ "protocols",		PROTOCOLS },
		{ "proxy-protocol",	PROXYPROTOCOL },
		{ "query",		QUERY },
		{ "redirect",		REDIRECT },
		{ "refuse",		REFUSE },
		{ "relay",		RELAY },
		{ "required",		REQUIRED },
		{ "retry",		RETRY },
		{ "round-robin",	ROUNDROBIN },
		{ "route",		ROUTE },
		{ "route-by",		ROUTEBY },
		{ "scan",		SCAN },
		{ "separate",		SEPARATE },
		{ "server",		SERVER },
		{ "session-lifetime",	SESSIONLIFETIME },
		{ "sessions",		SESSIONS },
		{ "socket",		SOCKET },
		{ "stall",		STALL },
		{ "store",		STORE },
		{ "syslog",		SYSLOG },
		{ "throttle",		THROTTLE },
		{ "timeout",		TIMEOUT },
		{ "tls",		TLS },
		{ "to",			TO },
		{ "trusted",		TRUSTED },
		{ "upstream",		UPSTREAM },
		{ "upstream-idle",	UPSTREAMIDLE },
		{ "upstream-keep",	UPSTREAMKEEP },
		{ "user",		USER },
	};
	const struct keywords	*p;

	p = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return p != NULL ? p->k_val : STRING;
}

static int	pushback = EOF;
static int	lastc = '\n';	/* the last character read from the file */

static int
lgetc(void)
{
	int	c;

	if (pushback != EOF) {
		c = pushback;
		pushback = EOF;
		return c;
	}
	c = getc(file.stream);
	/* a backslash at the end of a line continues it */
	while (c == '\\') {
		c = getc(file.stream);
		if (c != '\n') {
			if (c != EOF)
				ungetc(c, file.stream);
			return '\\';
		}
		file.lineno++;
		c = getc(file.stream);
	}
	/* end an unterminated last line, or its statement is an error */
	if (c == EOF && lastc != '\n' && lastc != EOF)
		c = '\n';
	lastc = c;
	return c;
}

static void
lungetc(int c)
{
	pushback = c;
}

static int
allowed_in_string(int c)
{
	return isalnum(c) || (c != '{' && c != '}' && c != '#' &&
	    c != '"' && c != '\'' && c != ',' && isgraph(c));
}

int
yylex(void)
{
	char		 buf[1024], *p;
	int		 c, quote, token;
	const char	*errstr = NULL;
	long long	 n;
	char		*end;

top:
	while ((c = lgetc()) == ' ' || c == '\t')
		;
	yylval.lineno = file.lineno;
	if (c == '#') {
		while ((c = lgetc()) != '\n' && c != EOF)
			;
	}
	switch (c) {
	case '\'':
	case '"':
		quote = c;
		p = buf;
		for (;;) {
			if ((c = lgetc()) == EOF)
				return 0;
			if (c == '\n') {
				yyerror("unterminated quoted string");
				/* leave the newline to end the bad statement */
				lungetc(c);
				return ERROR;
			}
			if (c == quote)
				break;
			if (c == '\\') {
				if ((c = lgetc()) == EOF)
					return 0;
				if (c != quote && c != '\\') {
					yyerror("bad escape in string");
					return ERROR;
				}
			}
			if (c == '\0' || p + 1 >= buf + sizeof(buf)) {
				yyerror("string too long or contains NUL");
				return ERROR;
			}
			*p++ = c;
		}
		*p = '\0';
		if ((yylval.v.string = strdup(buf)) == NULL)
			fatal("strdup");
		return STRING;
	case EOF:
		return 0;
	case '\n':
		file.lineno++;
		return '\n';
	}

	if (allowed_in_string(c)) {
		p = buf;
		do {
			if (p + 1 >= buf + sizeof(buf)) {
				yyerror("word too long");
				return ERROR;
			}
			*p++ = c;
		} while ((c = lgetc()) != EOF && allowed_in_string(c));
		lungetc(c);
		*p = '\0';
		if (isdigit((unsigned char)buf[0])) {
			errno = 0;
			n = strtoll(buf, &end, 10);
			if (*end == '\0') {
				if (errno == ERANGE)
					errstr = "number too large";
				if (errstr != NULL) {
					yyerror("%s", errstr);
					return ERROR;
				}
				yylval.v.number = n;
				return NUMBER;
			}
		}
		if ((token = lookup(buf)) == STRING &&
		    (yylval.v.string = strdup(buf)) == NULL)
			fatal("strdup");
		return token;
	}
	if (c == '{' || c == '}')
		return c;
	yyerror("unexpected character 0x%02x", c);
	goto top;
}

/* An IPv4 or IPv6 literal, as opposed to a name to look up. */
static int
host_is_address(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

static int
resolve(const char *host, int port, struct sockaddr_storage *ss,
    int passive)
{
	struct addrinfo	 hints, *res;
	char		 portstr[16];
	int		 error;

	if (port == 0)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_NUMERICHOST | AI_PASSIVE : 0;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((error = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		yyerror("cannot resolve %s: %s", host, gai_strerror(error));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int
add_listener(const char *addr, long long port, int proto)
{
	struct listener	*l, *o;

	if (port <= 0 || port > 65535) {
		yyerror("port out of range");
		return -1;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("calloc");
	l->fd = -1;
	if (resolve(addr, port, &l->conf.addr, 1) == -1) {
		free(l);
		return -1;
	}
	TAILQ_FOREACH(o, &conf->listeners, entry) {
		if (sockaddr_len(&o->conf.addr) ==
		    sockaddr_len(&l->conf.addr) &&
		    memcmp(&o->conf.addr, &l->conf.addr,
		    sockaddr_len(&l->conf.addr)) == 0) {
			yyerror("duplicate listener %s port %lld", addr, port);
			free(l);
			return -1;
		}
	}
	l->conf.id = ++conf->next_id;
	l->conf.proto = proto;
	cur_listener = l;
	snprintf(l->conf.name, sizeof(l->conf.name), "%s:%lld",
	    mail_proto_name(proto), port);
	TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
	return 0;
}

static int
form_name_ok(const char *name, size_t max)
{
	size_t	 i;

	for (i = 0; name[i] != '\0'; i++)
		if (!isalnum((unsigned char)name[i]) &&
		    strchr("_-.", name[i]) == NULL)
			return 0;
	return i > 0 && i < max;
}

/*
 * The first form login given replaces the Zimbra defaults.  The path is
 * kept normalised, as requests' paths are compared; a path ending in a
 * slash and a star covers itself and everything under it.
 */
static int
add_form_login(const char *method, const char *path, const char *marker,
    const char *field)
{
	struct http_form_login	*f;
	char			 norm[HTTP_PREFIX_MAX], raw[HTTP_PREFIX_MAX];
	size_t			 i, len = strlen(path);
	int			 prefix = 0;

	for (i = 0; method[i] != '\0'; i++)
		if (!http_is_tchar(method[i]))
			break;
	if (method[i] != '\0' || i == 0 ||
	    i >= sizeof(conf->http.forms[0].method)) {
		yyerror("invalid form login method");
		return -1;
	}
	if (len >= 2 && strcmp(path + len - 2, "/*") == 0) {
		prefix = 1;
		len -= 2;
	}
	if (path[0] != '/' || len >= sizeof(raw) ||
	    strpbrk(path, " \t?#") != NULL ||
	    memchr(path, '*', len) != NULL) {
		yyerror("a form login path starts with '/', without a query"
		    " or a '*' but at the end");
		return -1;
	}
	snprintf(raw, sizeof(raw), "%.*s", (int)len, path);
	if (len == 0 || http_path_normalize(raw, len, norm, sizeof(norm)) < 0) {
		yyerror("form login path %s cannot be normalised", path);
		return -1;
	}
	if (!form_name_ok(field, sizeof(f->field))) {
		yyerror("invalid form login field");
		return -1;
	}
	if (marker != NULL && !form_name_ok(marker, sizeof(f->marker))) {
		yyerror("invalid form login marker");
		return -1;
	}
	if (!forms_given++)
		conf->http.nforms = 0;
	if (conf->http.nforms >= HTTP_MAX_FORMS) {
		yyerror("too many form logins (max %d)", HTTP_MAX_FORMS);
		return -1;
	}
	f = &conf->http.forms[conf->http.nforms++];
	snprintf(f->method, sizeof(f->method), "%s", method);
	snprintf(f->path, sizeof(f->path), "%s", norm);
	snprintf(f->field, sizeof(f->field), "%s", field);
	snprintf(f->marker, sizeof(f->marker), "%s", marker ? marker : "");
	f->prefix = prefix;
	return 0;
}

/* The first prefix given replaces the defaults. */
static int
add_path_prefix(const char *prefix)
{
	struct http_route_conf	*r = &conf->http.route;

	if (prefix[0] != '/' || prefix[strlen(prefix) - 1] != '/' ||
	    strlen(prefix) >= sizeof(r->prefixes[0]) ||
	    strpbrk(prefix, " \t?#%") != NULL) {
		yyerror("a path prefix starts and ends with '/'");
		return -1;
	}
	if (!prefixes_given++)
		r->nprefixes = 0;
	if (r->nprefixes >= HTTP_MAX_PREFIXES) {
		yyerror("too many path prefixes (max %d)", HTTP_MAX_PREFIXES);
		return -1;
	}
	snprintf(r->prefixes[r->nprefixes++], sizeof(r->prefixes[0]), "%s",
	    prefix);
	return 0;
}

/* The web side refers to names defined anywhere in the file. */
static void
check_http(const char *path, struct postern_conf *c)
{
	struct upstream	*u;
	struct pool	*p;

	if (c->http_fallback[0] == '\0')
		return;
	TAILQ_FOREACH(u, &c->upstreams, entry)
		if (strcmp(u->conf.name, c->http_fallback) == 0) {
			c->http.fallback_id = u->conf.id;
			return;
		}
	TAILQ_FOREACH(p, &c->pools, entry)
		if (strcmp(p->conf.name, c->http_fallback) == 0) {
			c->http.fallback_id = p->conf.id;
			return;
		}
	log_warnx("%s: http fallback %s is not a defined upstream or pool",
	    path, c->http_fallback);
	file.errors++;
}

static int
set_limit(struct policy_limit *lim, long long max, long long window)
{
	if (max < 0 || max > 10000000) {
		yyerror("limit out of range (0-10000000)");
		return -1;
	}
	lim->max = max;
	lim->window = window;
	return 0;
}

/* A configured message replaces the default; none keeps it. */
static void
set_message(struct policy_limit *lim)
{
	if (cur_message[0] != '\0')
		snprintf(lim->message, sizeof(lim->message), "%s",
		    cur_message);
}

static struct keypair *
find_keypair(const char *name)
{
	struct keypair	*k;

	TAILQ_FOREACH(k, &conf->keypairs, entry)
		if (strcmp(k->conf.name, name) == 0)
			return k;
	return NULL;
}

static int
set_path(char *dst, size_t dstsz, const char *path)
{
	if (path[0] != '/' || strlen(path) >= dstsz) {
		yyerror("%s: need an absolute path", path);
		return -1;
	}
	snprintf(dst, dstsz, "%s", path);
	return 0;
}

/* TLS options of a listener must make sense together. */
static int
finish_listener(void)
{
	struct conf_listener	*lc = &cur_listener->conf;

	cur_listener = NULL;
	if (lc->proto != PROTO_HTTP &&
	    (lc->http_mode != HTTP_MODE_HTTP || (lc->flags & LISTEN_HSTS))) {
		yyerror("mode and hsts are for http listeners");
		return -1;
	}
	if (lc->proto == PROTO_HTTP && !(lc->flags & LISTEN_TLS) &&
	    (lc->nkeypairs > 0 || (lc->flags & LISTEN_TLS_REQUIRED))) {
		yyerror("a plain http listener takes no keypair: use tls");
		return -1;
	}
	if (lc->proto == PROTO_HTTP && (lc->flags & LISTEN_TLS) &&
	    lc->http_mode != HTTP_MODE_HTTP) {
		yyerror("mode is for plain http listeners");
		return -1;
	}
	if ((lc->flags & LISTEN_TLS) && lc->nkeypairs == 0) {
		yyerror("tls listener needs a keypair");
		return -1;
	}
	if ((lc->flags & LISTEN_TLS_REQUIRED) && lc->nkeypairs == 0) {
		yyerror("tls required needs a keypair for STARTTLS");
		return -1;
	}
	if (lc->nkeypairs > 0 && !(lc->flags & LISTEN_TLS))
		lc->flags |= LISTEN_STARTTLS;
	if (lc->flags & LISTEN_TLS)
		snprintf(lc->name, sizeof(lc->name), "%ss:%u",
		    mail_proto_name(lc->proto), sockaddr_port(&lc->addr));
	return 0;
}

static struct upstream *
find_upstream(const char *name)
{
	struct upstream	*u;

	TAILQ_FOREACH(u, &conf->upstreams, entry)
		if (strcmp(u->conf.name, name) == 0)
			return u;
	return NULL;
}

static struct pool *
find_pool(const char *name)
{
	struct pool	*p;

	TAILQ_FOREACH(p, &conf->pools, entry)
		if (strcmp(p->conf.name, name) == 0)
			return p;
	return NULL;
}

/*
 * "http://host[:port][/path]" or "https://...": the handler's address is
 * fixed now; an https:// handler's certificate must carry the host as
 * written unless "tls name" follows.
 */
static int
add_handler(const char *url)
{
	struct conf_lookup_handler	*h;
	char				 host[100];
	const char			*p, *end, *path;
	long				 port, defport;
	char				*ep;
	int				 tls;

	if (conf->lookup.nhandlers >= LOOKUP_MAX_HANDLERS) {
		yyerror("too many lookup handlers (max %d)",
		    LOOKUP_MAX_HANDLERS);
		return -1;
	}
	h = &conf->lookup.handlers[conf->lookup.nhandlers];
	if (strncmp(url, "http://", 7) == 0) {
		tls = 0;
		defport = 80;
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		tls = 1;
		defport = 443;
		p = url + 8;
	} else {
		yyerror("lookup handler must be an http:// or https:// URL");
		return -1;
	}
	port = defport;
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL)
			goto bad;
		p++;
		path = end + 1;
	} else {
		end = p + strcspn(p, ":/");
		path = end;
	}
	if (end == p || (size_t)(end - p) >= sizeof(host))
		goto bad;
	memcpy(host, p, end - p);
	host[end - p] = '\0';
	if (strcspn(host, " \t\r\n@?#") != strlen(host))
		goto bad;
	if (*path == ':') {
		if (!isdigit((unsigned char)path[1]))
			goto bad;
		port = strtol(path + 1, &ep, 10);
		if (port <= 0 || port > 65535)
			goto bad;
		path = ep;
	}
	if (*path == '\0')
		path = "/";
	if (*path != '/' || strlen(path) >= sizeof(h->path) ||
	    strcspn(path, " \t\r\n") != strlen(path))
		goto bad;
	memset(h, 0, sizeof(*h));
	if (resolve(host, port, &h->addr, 0) == -1)
		return -1;
	snprintf(h->path, sizeof(h->path), "%s", path);
	{
		int	 v6 = strchr(host, ':') != NULL;
		int	 n;

		if (port == defport)
			n = snprintf(h->host, sizeof(h->host), "%s%s%s",
			    v6 ? "[" : "", host, v6 ? "]" : "");
		else
			n = snprintf(h->host, sizeof(h->host), "%s%s%s:%ld",
			    v6 ? "[" : "", host, v6 ? "]" : "", port);
		if (n < 0 || (size_t)n >= sizeof(h->host))
			goto bad;
	}
	h->tls = tls;
	if (tls)
		snprintf(h->servername, sizeof(h->servername), "%s", host);
	cur_handler = h;
	conf->lookup.nhandlers++;
	return 0;
 bad:
	yyerror("invalid lookup handler URL");
	return -1;
}

/* "tls ca FILE" and "tls name NAME" after an https:// handler's URL. */
static int
handler_tls_opt(char *dst, size_t dstsz, const char *what, const char *value)
{
	if (!cur_handler->tls) {
		yyerror("tls %s is for https:// lookup handlers", what);
		return -1;
	}
	if (strcmp(what, "ca") == 0)
		return set_path(dst, dstsz, value);
	if (value[0] == '\0' || strlen(value) >= dstsz ||
	    strcspn(value, " \t\r\n") != strlen(value)) {
		yyerror("invalid tls name for a lookup handler");
		return -1;
	}
	snprintf(dst, dstsz, "%s", value);
	return 0;
}

/*
 * The handler's line is complete: an https:// handler's CA file (its own
 * or the system's) must be readable now, as the parent reads it again
 * for each relay it starts.
 */
static int
finish_handler(void)
{
	const char	*ca;

	if (cur_handler == NULL || !cur_handler->tls) {
		cur_handler = NULL;
		return 0;
	}
	ca = cur_handler->ca[0] ? cur_handler->ca : tls_default_ca_cert_file();
	cur_handler = NULL;
	if (access(ca, R_OK) == -1) {
		yyerror("lookup handler CA file %s: %s", ca, strerror(errno));
		return -1;
	}
	return 0;
}

static int
add_network(const char *prefix, long long port)
{
	struct conf_upstream_network	*n;
	struct cidr			 c;

	if (conf->lookup.nnetworks >= LOOKUP_MAX_NETWORKS) {
		yyerror("too many upstream networks (max %d)",
		    LOOKUP_MAX_NETWORKS);
		return -1;
	}
	if (cidr_parse(prefix, &c) == -1) {
		yyerror("invalid address prefix %s", prefix);
		return -1;
	}
	n = &conf->lookup.networks[conf->lookup.nnetworks++];
	n->family = c.family;
	n->prefix = c.prefix;
	memcpy(n->addr, c.addr, sizeof(n->addr));
	n->port = port;
	return 0;
}

static int
add_route(int kind, const char *match, const char *to)
{
	struct upstream	*u;
	struct pool	*p = NULL;
	struct route	*r;
	size_t		 i;

	if ((u = find_upstream(to)) == NULL && (p = find_pool(to)) == NULL) {
		yyerror("route to undefined upstream or pool %s", to);
		return -1;
	}
	if (strlen(match) > USER_MAX_LEN) {
		yyerror("route match too long");
		return -1;
	}
	TAILQ_FOREACH(r, &conf->routes, entry) {
		if ((int)r->conf.kind == kind &&
		    strcasecmp(r->conf.match, match) == 0) {
			yyerror("duplicate route");
			return -1;
		}
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("calloc");
	r->conf.kind = kind;
	r->conf.upstream_id = u != NULL ? u->conf.id : p->conf.id;
	for (i = 0; match[i] != '\0'; i++)
		r->conf.match[i] = tolower((unsigned char)match[i]);
	TAILQ_INSERT_TAIL(&conf->routes, r, entry);
	return 0;
}

/*
 * Defaults a person trying the service never meets, while a password
 * guesser does: 60 attempts a minute per address, 30 per user, 20
 * failures per address and 5 per address+user in five minutes.
 */
static void
policy_defaults(struct conf_policy *p)
{
	static const char	*msg = "Too many login attempts, try again later";

	memset(p, 0, sizeof(*p));
	p->ip.max = 60;
	p->ip.window = 60;
	p->user.max = 30;
	p->user.window = 60;
	p->ip_fail.max = 20;
	p->ip_fail.window = 300;
	p->ipuser_fail.max = 5;
	p->ipuser_fail.window = 300;
	snprintf(p->ip.message, sizeof(p->ip.message), "%s", msg);
	snprintf(p->user.message, sizeof(p->user.message), "%s", msg);
	snprintf(p->ip_fail.message, sizeof(p->ip_fail.message), "%s", msg);
	snprintf(p->ipuser_fail.message, sizeof(p->ipuser_fail.message), "%s",
	    msg);
	p->max_conn_per_ip = 50;
	p->max_attempts = 5;
	p->delay_ms = 0;
	p->delay_max_ms = 0;
}

static void
conf_defaults(struct postern_conf *c)
{
	TAILQ_INIT(&c->listeners);
	TAILQ_INIT(&c->upstreams);
	TAILQ_INIT(&c->routes);
	TAILQ_INIT(&c->keypairs);
	c->tls.protocols = TLS_PROTOCOLS_DEFAULT;
	/* off: Debian 12's libtls issues no tickets or session ids anyway */
	c->tls.session_lifetime = 0;
	c->tls.timeout_handshake = 10;
	snprintf(c->tls.ciphers, sizeof(c->tls.ciphers), "secure");
	snprintf(c->user, sizeof(c->user), "%s", POSTERN_USER);
	snprintf(c->control_path, sizeof(c->control_path), "%s",
	    POSTERN_CONTROL);
	if (gethostname(c->node, sizeof(c->node)) == -1 || c->node[0] == '\0')
		snprintf(c->node, sizeof(c->node), "postern");
	c->node[sizeof(c->node) - 1] = '\0';
	snprintf(c->sandbox.chroot, sizeof(c->sandbox.chroot), "%s",
	    POSTERN_CHROOT);
	c->global.timeout_connect = 10;
	c->global.timeout_login = 30;
	c->global.timeout_preauth = 60;
	c->global.timeout_linger = 60;
	c->global.timeout_stall = 300;
	c->global.max_line = 8192;
	c->global.max_literal = PASS_MAX_LEN;
	c->global.max_bad_commands = 10;
	c->global.max_sessions = 10000;
	c->global.timeout_preauth_total = 300;
	c->global.relays = 1;
	c->global.tlsprocs = 1;
	policy_defaults(&c->policy);
	TAILQ_INIT(&c->pools);
	c->lookup.timeout_ms = 5000;
	c->lookup.retry_s = 30;
	c->lookup.cache_ttl = 3600;
	c->memcache.timeout_ms = 250;
	c->http.max_head = 8192;
	c->http.max_target = 4096;
	c->http.max_body = 0;
	c->http.timeout_header = 30;
	c->http.timeout_idle = 60;
	/* ActiveSync Ping and long polls: Zimbra's polling time-out */
	c->http.timeout_response = 3600;
	c->http.hsts_max_age = 31536000;
	c->http.upstream_idle = 30;
	c->http.upstream_keep = 64;
	http_route_conf_default(&c->http.route);
	memcpy(c->http.forms, zimbra_forms, sizeof(zimbra_forms));
	c->http.nforms = sizeof(zimbra_forms) / sizeof(zimbra_forms[0]);
	/* a login padded past what is looked through must not pass uncounted */
	c->http.soap_scan_max = HTTP_SCAN_DEFAULT;
	c->http.soap_oversize_refuse = 1;
	c->memcache.backoff_s = 30;
	snprintf(c->global.greeting, sizeof(c->global.greeting),
	    "postern ready");
}

struct postern_conf *
parse_config(const char *path)
{
	struct postern_conf	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	conf_defaults(c);
	conf = c;
	memset(&file, 0, sizeof(file));
	file.name = path;
	file.lineno = 1;
	pushback = EOF;
	lastc = '\n';
	cur_upstream = NULL;
	cur_handler = NULL;
	tlsprocs_given = 0;
	prefixes_given = 0;
	forms_given = 0;
	if ((file.stream = fopen(path, "r")) == NULL) {
		log_warn("%s", path);
		free_config(c);
		return NULL;
	}
	yyparse();
	fclose(file.stream);
	/* an upstream or pool block cut short by an error */
	free(cur_upstream);
	cur_upstream = NULL;
	free(cur_pool);
	cur_pool = NULL;
	if (file.errors == 0 && c->policy.nproxy == 0) {
		struct listener	*l;

		TAILQ_FOREACH(l, &c->listeners, entry)
			if (l->conf.flags & LISTEN_PROXY) {
				log_warnx("%s: proxy-protocol listener %s but no "
				    "\"proxy-protocol trusted\" network", path,
				    l->conf.name);
				file.errors++;
				break;
			}
	}
	if (file.errors == 0 && c->policy.shared &&
	    c->memcache.nservers == 0) {
		log_warnx("%s: \"throttle store memcache\" needs a "
		    "\"memcache server\"", path);
		file.errors++;
	}
	if (file.errors == 0 && c->lookup.nhandlers > 0 &&
	    c->lookup.nnetworks == 0) {
		log_warnx("%s: lookup handlers need at least one \"upstream "
		    "network\": routes they give are checked against it", path);
		file.errors++;
	}
	if (file.errors == 0)
		check_http(path, c);
	if (file.errors == 0 && TAILQ_EMPTY(&c->listeners)) {
		log_warnx("%s: no listeners defined", path);
		file.errors++;
	}
	if (file.errors) {
		free_config(c);
		return NULL;
	}
	return c;
}

void
free_config(struct postern_conf *c)
{
	struct listener	*l;
	struct upstream	*u;
	struct route	*r;
	struct keypair	*k;
	struct pool	*p;

	if (c == NULL)
		return;
	while ((k = TAILQ_FIRST(&c->keypairs)) != NULL) {
		TAILQ_REMOVE(&c->keypairs, k, entry);
		free(k);
	}
	while ((l = TAILQ_FIRST(&c->listeners)) != NULL) {
		TAILQ_REMOVE(&c->listeners, l, entry);
		free(l);
	}
	while ((u = TAILQ_FIRST(&c->upstreams)) != NULL) {
		TAILQ_REMOVE(&c->upstreams, u, entry);
		free(u);
	}
	while ((r = TAILQ_FIRST(&c->routes)) != NULL) {
		TAILQ_REMOVE(&c->routes, r, entry);
		free(r);
	}
	while ((p = TAILQ_FIRST(&c->pools)) != NULL) {
		TAILQ_REMOVE(&c->pools, p, entry);
		free(p);
	}
	free(c);
}
