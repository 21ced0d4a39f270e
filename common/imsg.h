/*
 * imsg-style framed messages over a socketpair, with file descriptor
 * passing.  Modelled on OpenBSD's imsg(3) but written for postern: the
 * receive side is strict, because a peer that sends a malformed frame is
 * assumed to be compromised and its channel is dropped.
 */
#ifndef POSTERN_IMSG_H
#define POSTERN_IMSG_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <event.h>

#define IMSG_MAX_SIZE 16384 /* header included */
#define IMSG_MAX_FDS  16    /* fds queued but not yet claimed */
#define IMSGF_HASFD   0x0001

struct imsg_hdr {
	uint32_t type;
	uint16_t len; /* header + payload */
	uint16_t flags;
	uint32_t peerid;
	uint32_t pid;
};

struct imsg {
	struct imsg_hdr hdr;
	int fd; /* -1 if none; imsg_free() closes it */
	size_t datalen;
	void *data;
};

struct imsg_out {
	TAILQ_ENTRY(imsg_out) entry;
	size_t len;
	size_t off;
	int fd; /* sent with the first byte */
	unsigned char buf[];
};

struct imsgbuf {
	int fd;
	pid_t pid;     /* our pid, stamped on output */
	pid_t peerpid; /* expected sender, 0: any */
	unsigned char rbuf[IMSG_MAX_SIZE * 2];
	size_t rlen;
	int rfds[IMSG_MAX_FDS];
	size_t nrfds;
	TAILQ_HEAD(, imsg_out) wq;
	size_t wqlen;
};

enum imsg_fdrule { IMSG_FD_NONE, IMSG_FD_REQUIRED, IMSG_FD_OPTIONAL };

/* One allowed message type on a channel, with its payload bounds. */
struct imsg_rule {
	uint32_t type;
	size_t minlen;
	size_t maxlen;
	enum imsg_fdrule fd;
};

void imsgbuf_init(struct imsgbuf *, int fd);
void imsgbuf_clear(struct imsgbuf *);
int imsg_compose(struct imsgbuf *, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len);
ssize_t imsg_read(struct imsgbuf *);
int imsg_write(struct imsgbuf *);
ssize_t imsg_get(struct imsgbuf *, struct imsg *);
void imsg_free(struct imsg *);
int imsg_take_fd(struct imsg *);

int imsg_check(const struct imsg_rule *, size_t nrules, const struct imsg *,
    char *err, size_t errlen);
int imsg_string_ok(const char *, size_t size);

/* A channel driven by libevent. */
struct imsgev {
	struct imsgbuf ibuf;
	struct event ev;
	short events;
	struct event flush_ev; /* writes the queue at the loop's turn */
	int flush_queued;
	void (*handler)(int, short, void *);
	void *data;
	const char *name;
};

void imsgev_init(struct imsgev *, int fd, const char *name,
    void (*)(int, short, void *), void *);
void imsgev_update(struct imsgev *);
int imsgev_compose(struct imsgev *, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len);
void imsgev_clear(struct imsgev *);
int imsgev_dispatch_io(struct imsgev *, short event);

#endif
