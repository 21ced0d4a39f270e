/*
 * HTTP/1.1 message parsing (RFC 9110, RFC 9112), pure functions with no
 * process state: authproc parses request heads and builds the canonical
 * head that is forwarded; relay de-frames chunked bodies and parses the
 * response heads of upstreams.  Nothing here allocates: parsed fields
 * point into the caller's buffer and output goes to the caller's buffer.
 * Every parser is unit tested with hostile input and fuzzed.
 */
#ifndef POSTERN_HTTP_H
#define POSTERN_HTTP_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_FIELDS	    100
#define HTTP_USER_MAX	    255 /* as USER_MAX_LEN */
#define HTTP_MAX_PREFIXES   16
#define HTTP_PREFIX_MAX	    64
#define HTTP_COOKIE_MAX	    64
#define HTTP_CHUNK_LINE_MAX 4096 /* chunk-size line with extensions */
#define HTTP_TRAILER_MAX    8192 /* trailer section, all fields */

struct http_field {
	const char *name;
	size_t namelen;
	const char *value; /* leading and trailing OWS trimmed */
	size_t valuelen;
};

enum http_framing {
	HTTP_BODY_NONE,	   /* no body */
	HTTP_BODY_LENGTH,  /* content_length bytes */
	HTTP_BODY_CHUNKED, /* chunked transfer coding */
	HTTP_BODY_CLOSE	   /* responses only: until the upstream closes */
};

enum http_parse_status {
	HTTP_PARSE_OK,	       /* a whole head */
	HTTP_PARSE_INCOMPLETE, /* need more input (and under the limits) */
	HTTP_PARSE_ERROR       /* refuse: status and reason say why */
};

struct http_limits {
	size_t max_head;   /* whole head: 431 beyond (request line: 414) */
	size_t max_target; /* request-target: 414 beyond */
	uint64_t max_body; /* Content-Length over it: 413; 0: no limit */
};

#define HTTP_REQ_HEAD	    0x01 /* method HEAD: the response has no body */
#define HTTP_REQ_CLOSE	    0x02 /* no further request on the connection */
#define HTTP_REQ_EXPECT_100 0x04 /* Expect: 100-continue */
#define HTTP_REQ_WEBSOCKET  0x08 /* GET with Upgrade: websocket */
#define HTTP_REQ_HTTP10	    0x10 /* the client speaks HTTP/1.0 */
#define HTTP_REQ_ABSOLUTE   0x20 /* the target came in absolute-form */
#define HTTP_REQ_HSTS	    0x40 /* postern's: the listener adds HSTS */
#define HTTP_REQ_CONTINUED  0x80 /* postern's: authproc sent the 100 */

struct http_request {
	const char *method;
	size_t methodlen;
	const char *target; /* origin-form (absolute-form reduced), or "*" */
	size_t targetlen;
	const char *host; /* the Host field's value */
	size_t hostlen;
	size_t nfields;
	struct http_field fields[HTTP_MAX_FIELDS];
	size_t headlen; /* bytes up to and including the empty line */
	enum http_framing framing;
	uint64_t content_length;
	unsigned int flags; /* HTTP_REQ_* */
	int status;	    /* on HTTP_PARSE_ERROR: 400, 413, 414, 417, 431,
			     * 501, 505 */
	const char *reason; /* on HTTP_PARSE_ERROR: a constant, for logs */
};

/*
 * One request head, strictly: anything two parsers could read two ways
 * (CL with TE, differing CLs, obs-fold, bare LF, space before a colon,
 * CR/LF/NUL in a field, a TE other than chunked last, absolute-form for
 * another host, an HTTP/2 preface, no Host) is an error.
 */
enum http_parse_status http_request_parse(const char *, size_t,
    const struct http_limits *, struct http_request *);

/* Character classes of RFC 9110: token characters, optional space. */
int http_is_tchar(unsigned char);
int http_is_ws(unsigned char);

/* Field helpers: names compare case-insensitively. */
int http_field_is(const struct http_field *, const char *name);
const struct http_field *http_request_field(const struct http_request *,
    const char *name);
/* Does a comma-separated list value hold this token (case-insensitive)? */
int http_list_has(const char *value, size_t len, const char *token);

/*
 * The head postern forwards: its own serialisation of what it parsed.
 * Hop-by-hop fields go (Connection and what it names, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Content-Length, Upgrade unless WebSocket,
 * Proxy-Connection, Proxy-Authorization), as do the client's
 * X-Forwarded-For (unless trusted), X-Real-IP, X-Forwarded-Proto and
 * X-Forwarded-Host; the framing fields and the X-Forwarded-* set are
 * written afresh.  Returns the length, or -1 if outsz is too small.
 */
struct http_forward {
	const char *client_addr; /* the client's address, text */
	const char *scheme;	 /* "http" or "https", as the client used */
	int trust_forwarded;	 /* keep the client's X-Forwarded-For */
};

ssize_t http_request_serialize(const struct http_request *,
    const struct http_forward *, char *out, size_t outsz);

/* ---- routing keys (authproc) ---- */

enum http_key_kind {
	HTTP_KEY_NONE = 0,	/* route by client-IP hash */
	HTTP_KEY_USER = 1,	/* an account name */
	HTTP_KEY_ACCOUNT_ID = 2 /* a Zimbra account id from the token */
};

enum http_key_source {
	HTTP_SRC_NONE = 0,
	HTTP_SRC_PATH,
	HTTP_SRC_QUERY, /* ActiveSync User= */
	HTTP_SRC_BASIC,
	HTTP_SRC_COOKIE,
	HTTP_SRC_TOKEN_ARG /* zauthtoken= */
};

struct http_route_conf {
	uint32_t use_path;   /* path prefixes and ActiveSync User= */
	uint32_t use_basic;  /* the user of Basic credentials */
	uint32_t use_cookie; /* the auth token cookie / zauthtoken */
	uint32_t nprefixes;
	char prefixes[HTTP_MAX_PREFIXES][HTTP_PREFIX_MAX]; /* "/home/" */
	char cookie[HTTP_COOKIE_MAX];			   /* ZM_AUTH_TOKEN */
};

/*
 * A webmail form login: method and path (query ignored), the user's
 * field.  A path ending in a slash and a star covers everything under
 * it, and a marker makes a request there a login only when its body
 * holds an element or key of that name (a SOAP AuthRequest, wherever it
 * is posted).
 */
#define HTTP_MAX_FORMS	   8
#define HTTP_FORM_BODY_MAX 4096 /* a login body read whole, at most */
/*
 * A body under a marker's path is looked through whole before anything
 * is forwarded: up to "http form-login scan" bytes each (at most
 * HTTP_SCAN_LIMIT_MAX), and authproc holds at most HTTP_SCAN_HELD_MAX
 * bytes of such bodies beyond its usual read buffer at once.
 */
#define HTTP_SCAN_DEFAULT    (1024 * 1024)
#define HTTP_SCAN_LIMIT_MAX  (16 * 1024 * 1024)
#define HTTP_SCAN_HELD_MAX   (64 * 1024 * 1024)
#define HTTP_TARGET_NORM_MAX 8192

struct http_form_login {
	char method[16];
	char path[HTTP_PREFIX_MAX]; /* normalised, without its star */
	char field[32];
	char marker[32];
	uint32_t prefix; /* path and everything under it */
};

int http_form_user(const char *ctype, size_t ctlen, const char *body,
    size_t len, const char *field, char *user, size_t usersz);
int http_soap_login(const char *body, size_t len, const char *marker,
    const char *field, char *user, size_t usersz);
ssize_t http_path_normalize(const char *path, size_t len, char *out,
    size_t outsz);
ssize_t http_path_loose(const char *path, size_t len, char *out, size_t outsz);

/* The Zimbra-compatible defaults. */
void http_route_conf_default(struct http_route_conf *);

struct http_route_key {
	enum http_key_kind kind;
	enum http_key_source source;
	char key[HTTP_USER_MAX + 1]; /* user or account id */
	int has_basic;		     /* Basic credentials present */
	char basic_user[HTTP_USER_MAX + 1];
};

/*
 * Path user first, then the Basic user, then the token; '~' in the path
 * stands for the user the later steps find.  Names are percent-decoded
 * once; a name with controls, spaces or over HTTP_USER_MAX is ignored.
 * Returns 0, or -1 if the request must be refused (a malformed Basic
 * header or percent-encoding).
 */
int http_route_key(const struct http_request *, const struct http_route_conf *,
    struct http_route_key *);

/* Pieces, exported for tests and fuzzing. */
ssize_t http_pct_decode(const char *, size_t, char *out, size_t outsz,
    int plus_is_space);
int http_usable_name(const char *, size_t);
int http_hex_digit(unsigned char); /* its value, or -1 */
int http_basic_user(const char *value, size_t len, char *user, size_t usersz);
int http_zm_token_id(const char *token, size_t len, char *id, size_t idsz);
int http_cookie_value(const char *header, size_t len, const char *name,
    const char **value, size_t *valuelen);
int http_query_arg(const char *target, size_t len, const char *name, char *out,
    size_t outsz);

/* ---- chunked de-framing (relay) ---- */

enum http_chunk_status {
	HTTP_CHUNK_DATA, /* in[0, *used) is body data */
	HTTP_CHUNK_MORE, /* in[0, *used) was framing; call again or read */
	HTTP_CHUNK_DONE, /* in[0, *used) ended the body (last chunk,
			  * trailers and the final CRLF) */
	HTTP_CHUNK_ERROR /* malformed: end the exchange */
};

struct http_chunked {
	int state;
	uint64_t remaining; /* of the current chunk's data */
	size_t linelen;	    /* of the chunk-size line or a trailer so far */
	size_t trailer;	    /* trailer bytes so far */
	int seen_digit;
	int cr;
	const char *reason; /* on error, for logs */
};

void http_chunked_init(struct http_chunked *);
enum http_chunk_status http_chunked_step(struct http_chunked *, const char *in,
    size_t len, size_t *used);
/* A chunk header for len data bytes ("1f4\r\n"); returns its length. */
size_t http_chunk_header(char *out, size_t outsz, size_t len);

/* ---- response heads (relay) ---- */

struct http_response {
	int version_minor; /* HTTP/1.x */
	int status;
	const char *reason_phrase;
	size_t reason_phraselen;
	size_t nfields;
	struct http_field fields[HTTP_MAX_FIELDS];
	size_t headlen;
	enum http_framing framing;
	uint64_t content_length;
	int close;	    /* the upstream will not keep the connection */
	const char *reason; /* on HTTP_PARSE_ERROR, for logs */
};

/*
 * An upstream's response head, bounded by max_head.  head_request: the
 * request was HEAD (no body whatever the fields say).  CL with TE, or
 * differing CLs, are errors (502), as is anything malformed.
 */
enum http_parse_status http_response_parse(const char *, size_t,
    size_t max_head, int head_request, struct http_response *);

/*
 * The response head postern sends the client.  Hop-by-hop fields go;
 * framing is written as out_framing says (the body is re-framed);
 * Location, Content-Location and Refresh that name one of the internal
 * authorities ("host:port" or "host", case-insensitive) are rewritten to
 * public_scheme://public_host.  Returns the length or -1.
 */
struct http_rewrite {
	const char *public_scheme; /* "http" or "https" */
	const char *public_host;   /* the Host the client used */
	const char *const *internal;
	size_t ninternal;
	int close; /* add Connection: close */
	enum http_framing out_framing;
	uint64_t out_length; /* when out_framing is HTTP_BODY_LENGTH */
	const char *hsts;    /* Strict-Transport-Security value, or NULL */
	int websocket;	     /* a 101: keep Connection and Upgrade */
};

ssize_t http_response_serialize(const struct http_response *,
    const struct http_rewrite *, char *out, size_t outsz);

/* Rewrite one URI value if it names an internal authority; -1: no. */
ssize_t http_rewrite_uri(const char *value, size_t len,
    const struct http_rewrite *, char *out, size_t outsz);

/* A short HTML error page with its head (Connection: close if close). */
int http_error_page(char *out, size_t outsz, int status, int close,
    const char *extra_fields);
const char *http_status_text(int status);

#endif
