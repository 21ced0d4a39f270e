/*
 * The nginx mail auth_http protocol, as pure functions: the request
 * headers relay sends a lookup handler and the reading of its answer.
 * A handler written for stock nginx's mail proxy works unchanged.
 */
#ifndef POSTERN_AUTHHTTP_H
#define POSTERN_AUTHHTTP_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#define AUTHHTTP_USER_MAX  255
#define AUTHHTTP_TEXT_MAX  200
#define AUTHHTTP_WAIT_MAX  60 /* s: a longer Auth-Wait is cut to this */
#define AUTHHTTP_VALUE_MAX 1024
#define AUTHHTTP_NAME_MAX  63 /* an upstream's or pool's, as NAME_MAX_LEN */
#define AUTHHTTP_CHECK_LEN 16 /* a cached route's key check, hex digits */

enum authhttp_status {
	AUTHHTTP_INVALID, /* the handler's answer makes no sense */
	AUTHHTTP_OK,	  /* route: server and port, or a name */
	AUTHHTTP_REFUSED  /* the login is refused, with a message */
};

struct authhttp_reply {
	enum authhttp_status status;
	/*
	 * Set by the caller after authhttp_reply_init(): does Auth-Server
	 * name a configured upstream or pool?  NULL: names are never taken.
	 */
	int (*name_known)(const char *);
	int named;			  /* AUTHHTTP_OK: server_text is one */
	struct sockaddr_storage server;	  /* AUTHHTTP_OK, not named */
	char user[AUTHHTTP_USER_MAX + 1]; /* Auth-User: the account, or "" */
	char text[AUTHHTTP_TEXT_MAX + 1]; /* AUTHHTTP_REFUSED: Auth-Status */
	char error_code[16];		  /* Auth-Error-Code */
	uint32_t wait;			  /* Auth-Wait, s */
	/* while reading */
	int seen_status;
	int seen_server;
	int seen_port;
	int bad;
	char server_text[64];
	uint32_t port;
};

void authhttp_reply_init(struct authhttp_reply *);
void authhttp_reply_header(struct authhttp_reply *, const char *name,
    const char *value);
/* The same for a field that is not NUL-terminated (a parsed head). */
void authhttp_reply_field(struct authhttp_reply *, const char *name,
    size_t namelen, const char *value, size_t valuelen);
enum authhttp_status authhttp_reply_finish(struct authhttp_reply *);
size_t authhttp_escape(char *, size_t, const char *);

/*
 * A route as the route cache keeps it in memcached, one line:
 *   "1 <check> <address> <port> <account>"   one server, plain
 *   "2 <check> <name> <account>"               a configured upstream or pool
 * check is the first AUTHHTTP_CHECK_LEN hex digits of the key's hash,
 * which ties the value to its key.  A reader that knows only version 1
 * takes a version 2 value for a miss.
 */
/*
 * One route per user serves every protocol: a name (a pool or upstream,
 * whose members have a port for each) does; an address is one port, of
 * the protocol it was found for, and only that protocol may use it.
 */
struct authhttp_route {
	int named;
	uint32_t proto;			     /* !named: enum mail_proto */
	struct sockaddr_storage addr;	     /* !named: address and port */
	char name[AUTHHTTP_NAME_MAX + 1];    /* named */
	char account[AUTHHTTP_USER_MAX + 1]; /* the name to log in with */
};

/* Returns the length written, or -1 (a field unfit, or no room). */
int authhttp_cache_format(char *, size_t, const char *check,
    const struct authhttp_route *);
/* 0, or -1 for anything but one well-formed value for this check. */
int authhttp_cache_parse(const char *value, size_t len, const char *check,
    struct authhttp_route *);

#endif
