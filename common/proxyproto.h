/*
 * The PROXY protocol (HAProxy, versions 1 and 2), as sent by a load
 * balancer in front of postern: the first bytes of a connection name the
 * real client.  Parsed only from configured trusted networks.
 */
#ifndef POSTERN_PROXYPROTO_H
#define POSTERN_PROXYPROTO_H

#include <sys/socket.h>
#include <sys/types.h>

#define PROXY_V1_MAX 107	 /* the longest v1 line, CRLF included */
#define PROXY_V2_MAX (16 + 4096) /* header and what we accept after */

enum proxy_status {
	PROXY_INCOMPLETE, /* need more bytes */
	PROXY_OK,	  /* addresses filled in (or LOCAL/UNKNOWN) */
	PROXY_BAD	  /* not a valid header: drop the connection */
};

struct proxy_result {
	int has_addr; /* 0 for LOCAL / UNKNOWN */
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	size_t consumed; /* header bytes */
};

enum proxy_status proxy_parse(const unsigned char *, size_t,
    struct proxy_result *);
size_t proxy_v2_build(unsigned char *, size_t, const struct sockaddr_storage *,
    const struct sockaddr_storage *);

#endif
