/*
 * Moving bytes between a TLS connection (libtls) and a plain socket,
 * non-blocking under libevent.  tlsproc uses it to serve clients (TLS
 * on the network side, a socketpair to authproc/relay on the plain side);
 * relay uses it towards upstreams that want TLS.
 */
#ifndef POSTERN_TLSBRIDGE_H
#define POSTERN_TLSBRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <event.h>
#include <tls.h>

#define TLSBRIDGE_BUFSZ	      16384
#define TLSBRIDGE_STALL_SEC   300 /* a side that takes nothing for so long */
#define TLSBRIDGE_LINGER_SEC  60  /* default for linger_sec */
#define TLSBRIDGE_DRAIN_SEC   60  /* our side closed: the peer's FIN */
#define TLSBRIDGE_DRAIN_READS 16  /* reads per wake-up while draining */
#define TLSBRIDGE_RUN_ROUNDS  64  /* passes per wake-up, then others' turn */

/* How a bridge ended, when it was not both sides closing. */
enum tlsbridge_end {
	TLSBRIDGE_END_CLOSED,	   /* both sides done, or an error */
	TLSBRIDGE_END_PLAIN_STALL, /* the plain side took nothing */
	TLSBRIDGE_END_NET_STALL,   /* the network side took nothing */
	TLSBRIDGE_END_LINGER,	   /* relay: the client stayed open */
};

/* One direction's wait for room, for the stall limit (ms, monotonic). */
struct tlsbridge_wait {
	uint64_t mark;	       /* its byte count when last seen */
	int64_t moved_at;      /* when that count last changed */
	int64_t blocked_since; /* 0: not waiting */
};

struct tlsbridge;
typedef void (*tlsbridge_done_cb)(struct tlsbridge *, void *);

struct tlsbridge {
	struct tls *tls;
	int netfd;
	int plainfd;
	unsigned char n2p[TLSBRIDGE_BUFSZ]; /* decrypted */
	size_t n2p_off, n2p_len;
	unsigned char p2n[TLSBRIDGE_BUFSZ]; /* to encrypt */
	size_t p2n_off, p2n_len;
	int net_eof;
	int plain_eof;
	int plain_shut;
	struct event netev;
	struct event plainev;
	const char *error;
	int plain_half_close; /* see tlsbridge_start */
	uint32_t linger_sec;  /* relay: the client's close, or idle after it */
	uint32_t stall_sec;   /* 0: TLSBRIDGE_STALL_SEC */
	int linger_final;     /* the upstream is done: the timer is not reset */
	int draining;	      /* 1: sending close_notify, 2: reading to EOF */
	int plain_wr_gone;    /* tlsproc: postern closed; drop client bytes */
	int net_wr_gone; /* relay: the upstream closed; drop client bytes */
	struct event linger_ev;
	int upstream_net;      /* relay: the network side is the upstream */
	char net_lost[128];    /* relay: why the upstream's stream broke */
	struct event stall_ev; /* armed while a write waits for room */
	struct tlsbridge_wait wait_plain; /* net -> plain (bytes_in) */
	struct tlsbridge_wait wait_net;	  /* plain -> net (bytes_out) */
	int wants;			  /* what the last run waits for */
	enum tlsbridge_end ended;	  /* why, for the done callback */
	tlsbridge_done_cb done;
	void *arg;
	uint64_t bytes_in;  /* net -> plain */
	uint64_t bytes_out; /* plain -> net */
};

/* Takes over tls, netfd and plainfd; calls done once, after closing. */
int tlsbridge_start(struct tlsbridge *, struct tls *, int netfd, int plainfd,
    const void *to_net, size_t to_netlen, const void *to_plain,
    size_t to_plainlen, tlsbridge_done_cb, void *);
void tlsbridge_stop(struct tlsbridge *);

/* Drive a non-blocking handshake; 1 done, 0 call again on events, -1. */
int tlsbridge_handshake_events(struct tls *, int fd, short *events);

#endif
