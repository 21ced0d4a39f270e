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

enum authhttp_status {
	AUTHHTTP_INVALID, /* the handler's answer makes no sense */
	AUTHHTTP_OK,	  /* route: server and port */
	AUTHHTTP_REFUSED  /* the login is refused, with a message */
};

struct authhttp_reply {
	enum authhttp_status status;
	struct sockaddr_storage server;	  /* AUTHHTTP_OK */
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
enum authhttp_status authhttp_reply_finish(struct authhttp_reply *);
size_t authhttp_escape(char *, size_t, const char *);

#endif
