#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "log.h"

void
imsgbuf_init(struct imsgbuf *ibuf, int fd)
{
	memset(ibuf, 0, sizeof(*ibuf));
	ibuf->fd = fd;
	ibuf->pid = getpid();
	TAILQ_INIT(&ibuf->wq);
}

void
imsgbuf_clear(struct imsgbuf *ibuf)
{
	struct imsg_out *m;
	size_t i;

	while ((m = TAILQ_FIRST(&ibuf->wq)) != NULL) {
		TAILQ_REMOVE(&ibuf->wq, m, entry);
		if (m->fd != -1)
			close(m->fd);
		explicit_bzero(m->buf, m->len);
		free(m);
	}
	ibuf->wqlen = 0;
	explicit_bzero(ibuf->rbuf, sizeof(ibuf->rbuf));
	for (i = 0; i < ibuf->nrfds; i++)
		close(ibuf->rfds[i]);
	ibuf->nrfds = 0;
	ibuf->rlen = 0;
}

/*
 * Queue a message.  The fd, if any, now belongs to the queue: it is
 * closed once sent (or when the channel is cleared), as with imsg(3).
 */
int
imsg_compose(struct imsgbuf *ibuf, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct imsg_out *m;
	struct imsg_hdr hdr;

	if (len > IMSG_MAX_SIZE - sizeof(hdr)) {
		errno = ERANGE;
		goto fail;
	}
	if ((m = malloc(sizeof(*m) + sizeof(hdr) + len)) == NULL)
		goto fail;
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = sizeof(hdr) + len;
	hdr.flags = fd != -1 ? IMSGF_HASFD : 0;
	hdr.peerid = peerid;
	hdr.pid = ibuf->pid;
	memcpy(m->buf, &hdr, sizeof(hdr));
	if (len)
		memcpy(m->buf + sizeof(hdr), data, len);
	m->len = sizeof(hdr) + len;
	m->off = 0;
	m->fd = fd;
	TAILQ_INSERT_TAIL(&ibuf->wq, m, entry);
	ibuf->wqlen++;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/* Returns bytes read, 0 on EOF, -1 on error (errno EAGAIN: try later). */
ssize_t
imsg_read(struct imsgbuf *ibuf)
{
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cmsg;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cmsgbuf;
	ssize_t n;
	size_t i, nfds;
	int *fds, bad = 0;

	if (ibuf->rlen >= sizeof(ibuf->rbuf)) {
		errno = ENOBUFS;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ibuf->rbuf + ibuf->rlen;
	iov.iov_len = sizeof(ibuf->rbuf) - ibuf->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);

	do {
		n = recvmsg(ibuf->fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;

	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	     cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cmsg);
		for (i = 0; i < nfds; i++) {
			if (ibuf->nrfds < IMSG_MAX_FDS)
				ibuf->rfds[ibuf->nrfds++] = fds[i];
			else {
				close(fds[i]);
				bad = 1;
			}
		}
	}
	if (bad || (msg.msg_flags & MSG_CTRUNC)) {
		errno = EBADMSG;
		return -1;
	}
	ibuf->rlen += n;
	return n;
}

/*
 * Write as much as the socket takes.  0 on success or EAGAIN, -1 on error.
 * Queued messages go out together, one sendmsg(2) for up to
 * IMSG_WRITE_BATCH of them, with at most one descriptor, which rides
 * with the batch's first byte: the reader keeps received descriptors in
 * order and gives each to the message that is flagged for one.
 */
#define IMSG_WRITE_BATCH 32

int
imsg_write(struct imsgbuf *ibuf)
{
	struct imsg_out *m, *fdm;
	struct msghdr msg;
	struct iovec iov[IMSG_WRITE_BATCH];
	struct cmsghdr *cmsg;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	ssize_t n;
	size_t take;
	int niov;

	while (!TAILQ_EMPTY(&ibuf->wq)) {
		memset(&msg, 0, sizeof(msg));
		niov = 0;
		fdm = NULL;
		TAILQ_FOREACH(m, &ibuf->wq, entry)
		{
			if (niov == IMSG_WRITE_BATCH)
				break;
			if (m->off == 0 && m->fd != -1) {
				if (fdm != NULL)
					break;
				fdm = m;
			}
			iov[niov].iov_base = m->buf + m->off;
			iov[niov].iov_len = m->len - m->off;
			niov++;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = niov;
		if (fdm != NULL) {
			memset(&cmsgbuf, 0, sizeof(cmsgbuf));
			msg.msg_control = &cmsgbuf.buf;
			msg.msg_controllen = sizeof(cmsgbuf.buf);
			cmsg = CMSG_FIRSTHDR(&msg);
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			memcpy(CMSG_DATA(cmsg), &fdm->fd, sizeof(int));
		}
		do {
			n = sendmsg(ibuf->fd, &msg, MSG_NOSIGNAL);
		} while (n == -1 && errno == EINTR);
		if (n == -1) {
			if (errno == EAGAIN || errno == ENOBUFS)
				return 0;
			return -1;
		}
		if (fdm != NULL) {
			/* it went with the first byte */
			close(fdm->fd);
			fdm->fd = -1;
		}
		while (n > 0 && (m = TAILQ_FIRST(&ibuf->wq)) != NULL) {
			take = m->len - m->off;
			if ((size_t)n < take)
				take = n;
			m->off += take;
			n -= take;
			if (m->off < m->len)
				return 0;
			TAILQ_REMOVE(&ibuf->wq, m, entry);
			ibuf->wqlen--;
			/* messages carry credentials and key material */
			explicit_bzero(m->buf, m->len);
			free(m);
		}
	}
	return 0;
}

/*
 * Take one complete message off the read buffer.  Returns its total size,
 * 0 if no complete message is buffered, -1 (errno EBADMSG) if the frame
 * is malformed: bad length, forged pid, or a claimed fd that never came.
 */
ssize_t
imsg_get(struct imsgbuf *ibuf, struct imsg *imsg)
{
	struct imsg_hdr hdr;
	size_t total;

	memset(imsg, 0, sizeof(*imsg));
	imsg->fd = -1;
	if (ibuf->rlen < sizeof(hdr))
		return 0;
	memcpy(&hdr, ibuf->rbuf, sizeof(hdr));
	if (hdr.len < sizeof(hdr) || hdr.len > IMSG_MAX_SIZE ||
	    (hdr.flags & ~IMSGF_HASFD) != 0) {
		errno = EBADMSG;
		return -1;
	}
	if (ibuf->peerpid != 0 && hdr.pid != (uint32_t)ibuf->peerpid) {
		errno = EBADMSG;
		return -1;
	}
	if (ibuf->rlen < hdr.len)
		return 0;
	total = hdr.len;
	if (hdr.flags & IMSGF_HASFD) {
		if (ibuf->nrfds == 0) {
			errno = EBADMSG;
			return -1;
		}
		imsg->fd = ibuf->rfds[0];
		memmove(ibuf->rfds, ibuf->rfds + 1,
		    (ibuf->nrfds - 1) * sizeof(int));
		ibuf->nrfds--;
	}
	imsg->hdr = hdr;
	imsg->datalen = total - sizeof(hdr);
	/* one spare NUL byte so string payloads can be inspected safely */
	if ((imsg->data = malloc(imsg->datalen + 1)) == NULL) {
		if (imsg->fd != -1)
			close(imsg->fd);
		imsg->fd = -1;
		return -1;
	}
	memcpy(imsg->data, ibuf->rbuf + sizeof(hdr), imsg->datalen);
	((char *)imsg->data)[imsg->datalen] = '\0';
	ibuf->rlen -= total;
	memmove(ibuf->rbuf, ibuf->rbuf + total, ibuf->rlen);
	explicit_bzero(ibuf->rbuf + ibuf->rlen, total);
	return total;
}

void
imsg_free(struct imsg *imsg)
{
	if (imsg->data != NULL) {
		/* payloads may carry credentials */
		explicit_bzero(imsg->data, imsg->datalen);
		free(imsg->data);
	}
	imsg->data = NULL;
	if (imsg->fd != -1)
		close(imsg->fd);
	imsg->fd = -1;
}

int
imsg_take_fd(struct imsg *imsg)
{
	int fd = imsg->fd;

	imsg->fd = -1;
	return fd;
}

int
imsg_check(const struct imsg_rule *rules, size_t nrules,
    const struct imsg *imsg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < nrules; i++) {
		if (rules[i].type != imsg->hdr.type)
			continue;
		if (imsg->datalen < rules[i].minlen ||
		    imsg->datalen > rules[i].maxlen) {
			snprintf(err, errlen, "type %u: bad length %zu",
			    imsg->hdr.type, imsg->datalen);
			return -1;
		}
		if (rules[i].fd == IMSG_FD_NONE && imsg->fd != -1) {
			snprintf(err, errlen, "type %u: unexpected fd",
			    imsg->hdr.type);
			return -1;
		}
		if (rules[i].fd == IMSG_FD_REQUIRED && imsg->fd == -1) {
			snprintf(err, errlen, "type %u: missing fd",
			    imsg->hdr.type);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "type %u not allowed on this channel",
	    imsg->hdr.type);
	return -1;
}

/* A fixed-size string field is valid only if it is NUL-terminated. */
int
imsg_string_ok(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void imsgev_flush(int, short, void *);

void
imsgev_init(struct imsgev *iev, int fd, const char *name,
    void (*handler)(int, short, void *), void *data)
{
	imsgbuf_init(&iev->ibuf, fd);
	iev->handler = handler;
	iev->data = data;
	iev->name = name;
	iev->events = EV_READ;
	/* persistent: firing does not cost an epoll_ctl to re-arm */
	event_set(&iev->ev, fd, iev->events | EV_PERSIST, handler, iev);
	event_add(&iev->ev, NULL);
	event_set(&iev->flush_ev, -1, 0, imsgev_flush, iev);
	iev->flush_queued = 0;
}

void
imsgev_update(struct imsgev *iev)
{
	short events = EV_READ;

	/*
	 * A queued flush writes before the loop waits again: starting to
	 * watch for writability meanwhile would cost four epoll_ctl calls
	 * for nothing (a channel already watching keeps on).
	 */
	if (iev->ibuf.wqlen > 0 &&
	    (!iev->flush_queued || (iev->events & EV_WRITE)))
		events |= EV_WRITE;
	if (events == iev->events && event_initialized(&iev->ev) &&
	    event_pending(&iev->ev, EV_READ | EV_WRITE, NULL))
		return;
	event_del(&iev->ev);
	iev->events = events;
	event_set(&iev->ev, iev->ibuf.fd, events | EV_PERSIST, iev->handler,
	    iev);
	event_add(&iev->ev, NULL);
}

/*
 * Write what was composed while the loop ran its other ready events.  The
 * channel almost always takes it at once; watching for writability only
 * for what is left spares epoll_ctl calls.  An error here shows again,
 * and is handled, in the event handler.
 */
static void
imsgev_flush(int fd, short event, void *arg)
{
	struct imsgev *iev = arg;

	(void)fd;
	(void)event;
	iev->flush_queued = 0;
	if (iev->ibuf.fd != -1)
		(void)imsg_write(&iev->ibuf);
	imsgev_update(iev);
}

/*
 * Queue a message.  It is written once the events ready now have run, in
 * the same turn of the loop, so the messages of many sessions share one
 * sendmsg(2) and wake the peer once.
 */
int
imsgev_compose(struct imsgev *iev, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (imsg_compose(&iev->ibuf, type, peerid, fd, data, len) == -1)
		return -1;
	if (!iev->flush_queued) {
		iev->flush_queued = 1;
		event_active(&iev->flush_ev, EV_WRITE, 1);
	}
	return 0;
}

void
imsgev_clear(struct imsgev *iev)
{
	/* a last word (say, why the channel goes) is not lost */
	if (iev->ibuf.fd != -1)
		(void)imsg_write(&iev->ibuf);
	if (iev->flush_queued)
		event_del(&iev->flush_ev);
	iev->flush_queued = 0;
	event_del(&iev->ev);
	imsgbuf_clear(&iev->ibuf);
	close(iev->ibuf.fd);
	iev->ibuf.fd = -1;
}

/*
 * Do the I/O for a channel event.  Returns 0 if the channel is usable,
 * -1 if it is closed or broken (the caller tears it down).
 */
int
imsgev_dispatch_io(struct imsgev *iev, short event)
{
	ssize_t n;

	if (event & EV_WRITE) {
		if (imsg_write(&iev->ibuf) == -1) {
			log_warn("%s: write", iev->name);
			return -1;
		}
	}
	if (event & EV_READ) {
		n = imsg_read(&iev->ibuf);
		if (n == -1 && errno != EAGAIN) {
			log_warn("%s: read", iev->name);
			return -1;
		}
		if (n == 0)
			return -1;
	}
	imsgev_update(iev);
	return 0;
}
