/*
 * imsg framing over a real socketpair, file descriptor passing, and the
 * receive-side checks a process applies to what its peers send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "proto.h"

#define HDRSZ sizeof(struct imsg_hdr)

/* large: keep them off the stack */
static struct imsgbuf tx, rx;
static int sv[2];

static int
count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	d = opendir("/proc/self/fd");
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	(void)state;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -1;
	imsgbuf_init(&tx, sv[0]);
	imsgbuf_init(&rx, sv[1]);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	imsgbuf_clear(&tx);
	imsgbuf_clear(&rx);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

/* A raw frame, for what a well-behaved sender would never produce. */
static size_t
frame(unsigned char *out, uint32_t type, uint16_t len, uint16_t flags,
    uint32_t pid, const void *data, size_t datalen)
{
	struct imsg_hdr hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = len;
	hdr.flags = flags;
	hdr.peerid = 7;
	hdr.pid = pid;
	memcpy(out, &hdr, sizeof(hdr));
	if (datalen)
		memcpy(out + sizeof(hdr), data, datalen);
	return sizeof(hdr) + datalen;
}

/* Send bytes, with up to nfds descriptors attached to the first one. */
static void
send_raw(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cmsg;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 32)];
	} cmsgbuf;

	assert_true(nfds <= 32);
	memset(&msg, 0, sizeof(msg));
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(fd, &msg, 0), (ssize_t)len);
}

static void
assert_same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_int_equal(sa.st_dev, sb.st_dev);
	assert_int_equal(sa.st_ino, sb.st_ino);
}

static void
assert_closed(int fd)
{
	errno = 0;
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

static void
flush(struct imsgbuf *ibuf)
{
	assert_int_equal(imsg_write(ibuf), 0);
	assert_int_equal(ibuf->wqlen, 0);
	assert_true(TAILQ_EMPTY(&ibuf->wq));
}

/* Read until one message is complete; fails on a framing error. */
static ssize_t
get_one(struct imsgbuf *ibuf, struct imsg *m)
{
	ssize_t n;
	int tries;

	for (tries = 0; tries < 16; tries++) {
		if ((n = imsg_get(ibuf, m)) != 0)
			return n;
		assert_true(imsg_read(ibuf) > 0);
	}
	fail_msg("no message");
	return -1;
}

/* ---- round trips ---- */

static void
test_roundtrip(void **state)
{
	struct imsg m;
	const char payload[] = "hello, relay";

	(void)state;
	assert_int_equal(imsg_compose(&tx, IMSG_LOGIN_RESULT, 42, -1, payload,
			     sizeof(payload)),
	    0);
	assert_int_equal(tx.wqlen, 1);
	flush(&tx);
	assert_int_equal(imsg_read(&rx), HDRSZ + sizeof(payload));
	assert_int_equal(imsg_get(&rx, &m), HDRSZ + sizeof(payload));
	assert_int_equal(m.hdr.type, IMSG_LOGIN_RESULT);
	assert_int_equal(m.hdr.peerid, 42);
	assert_int_equal(m.hdr.pid, getpid());
	assert_int_equal(m.hdr.len, HDRSZ + sizeof(payload));
	assert_int_equal(m.hdr.flags, 0);
	assert_int_equal(m.fd, -1);
	assert_int_equal(m.datalen, sizeof(payload));
	assert_memory_equal(m.data, payload, sizeof(payload));
	/* a spare NUL follows every payload */
	assert_int_equal(((char *)m.data)[m.datalen], '\0');
	imsg_free(&m);
	assert_null(m.data);
	/* nothing more buffered */
	assert_int_equal(imsg_get(&rx, &m), 0);
	assert_int_equal(rx.rlen, 0);
}

static void
test_roundtrip_empty(void **state)
{
	struct imsg m;

	(void)state;
	assert_int_equal(imsg_compose(&tx, IMSG_CONF_END, 0, -1, NULL, 0), 0);
	flush(&tx);
	assert_int_equal(get_one(&rx, &m), HDRSZ);
	assert_int_equal(m.hdr.type, IMSG_CONF_END);
	assert_int_equal(m.datalen, 0);
	assert_non_null(m.data);
	assert_int_equal(((char *)m.data)[0], '\0');
	imsg_free(&m);
}

static void
test_roundtrip_fd(void **state)
{
	struct imsg m;
	int p[2], sent, got, nfds;
	char buf[8];
	uint32_t v = 0xdeadbeef;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	assert_true((sent = dup(p[0])) != -1);
	assert_int_equal(imsg_compose(&tx, IMSG_PEER_CHANNEL, 1, sent, &v,
			     sizeof(v)),
	    0);
	flush(&tx);
	/* the queue owned the fd and closed it once it was sent */
	assert_closed(sent);

	assert_int_equal(get_one(&rx, &m), HDRSZ + sizeof(v));
	assert_int_equal(m.hdr.flags, IMSGF_HASFD);
	assert_true(m.fd != -1);
	assert_int_equal(rx.nrfds, 0);
	assert_same_file(m.fd, p[0]);
	/* received fds must not leak into programs we execute */
	assert_true(fcntl(m.fd, F_GETFD) & FD_CLOEXEC);
	/* and it is really the pipe: bytes written show up on it */
	assert_int_equal(write(p[1], "ping", 4), 4);
	assert_int_equal(read(m.fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_memory_equal(m.data, &v, sizeof(v));

	/* take_fd hands ownership over: imsg_free leaves it open */
	got = imsg_take_fd(&m);
	assert_int_equal(m.fd, -1);
	imsg_free(&m);
	assert_int_not_equal(fcntl(got, F_GETFD), -1);
	close(got);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

static void
test_imsg_free_closes_fd(void **state)
{
	struct imsg m;
	int p[2], fd, nfds;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_CONF_LISTENER, 0, p[0], NULL,
			     0),
	    0);
	flush(&tx);
	assert_int_equal(get_one(&rx, &m), HDRSZ);
	fd = m.fd;
	assert_true(fd != -1);
	imsg_free(&m);
	assert_int_equal(m.fd, -1);
	assert_closed(fd);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

static void
test_fds_in_order(void **state)
{
	struct imsg m1, m2;
	int p[2], q[2], nfds;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_PEER_CHANNEL, 1, dup(p[0]), "a",
			     1),
	    0);
	assert_int_equal(imsg_compose(&tx, IMSG_CONF_GLOBAL, 2, -1, "b", 1), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_PEER_CHANNEL, 3, dup(q[0]), "c",
			     1),
	    0);
	assert_int_equal(tx.wqlen, 3);
	flush(&tx);
	assert_int_equal(get_one(&rx, &m1), HDRSZ + 1);
	assert_int_equal(m1.hdr.peerid, 1);
	assert_same_file(m1.fd, p[0]);
	imsg_free(&m1);
	assert_int_equal(get_one(&rx, &m1), HDRSZ + 1);
	assert_int_equal(m1.hdr.peerid, 2);
	assert_int_equal(m1.fd, -1);
	assert_int_equal(get_one(&rx, &m2), HDRSZ + 1);
	assert_int_equal(m2.hdr.peerid, 3);
	assert_same_file(m2.fd, q[0]);
	imsg_free(&m1);
	imsg_free(&m2);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	assert_int_equal(count_fds(), nfds);
}

/*
 * A descriptor queued behind plain messages rides with the batch's first
 * byte, yet belongs to the message flagged for it.
 */
static void
test_batch_fd_behind_plain(void **state)
{
	struct imsg m;
	int p[2], nfds, i;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_CONF_GLOBAL, 1, -1, "a", 1), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_CONF_GLOBAL, 2, -1, "b", 1), 0);
	assert_int_equal(imsg_compose(&tx, IMSG_PEER_CHANNEL, 3, dup(p[0]), "c",
			     1),
	    0);
	flush(&tx);
	for (i = 1; i <= 2; i++) {
		assert_int_equal(get_one(&rx, &m), HDRSZ + 1);
		assert_int_equal(m.hdr.peerid, i);
		assert_int_equal(m.fd, -1);
		imsg_free(&m);
	}
	assert_int_equal(get_one(&rx, &m), HDRSZ + 1);
	assert_int_equal(m.hdr.peerid, 3);
	assert_same_file(m.fd, p[0]);
	imsg_free(&m);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

/*
 * More messages than one sendmsg(2) carries, into a socket that takes
 * only part of them at a time: all arrive, whole and in order.
 */
static void
test_batch_many_partial(void **state)
{
	struct imsg m;
	char payload[3000];
	int sz = 4096, i, got = 0, flags;
	ssize_t n;

	(void)state;
	assert_int_equal(setsockopt(tx.fd, SOL_SOCKET, SO_SNDBUF, &sz,
			     sizeof(sz)),
	    0);
	flags = fcntl(tx.fd, F_GETFL);
	assert_int_equal(fcntl(tx.fd, F_SETFL, flags | O_NONBLOCK), 0);
	for (i = 0; i < 100; i++) {
		memset(payload, 'a' + i % 26, sizeof(payload));
		assert_int_equal(imsg_compose(&tx, IMSG_CONF_GLOBAL, i, -1,
				     payload, sizeof(payload)),
		    0);
	}
	while (got < 100) {
		assert_int_equal(imsg_write(&tx), 0);
		if ((n = imsg_read(&rx)) == -1)
			assert_int_equal(errno, EAGAIN);
		while ((n = imsg_get(&rx, &m)) > 0) {
			assert_int_equal(m.hdr.peerid, got);
			assert_int_equal(m.datalen, sizeof(payload));
			assert_int_equal(((char *)m.data)[0], 'a' + got % 26);
			assert_int_equal(((char *)m.data)[sizeof(payload) - 1],
			    'a' + got % 26);
			imsg_free(&m);
			got++;
		}
		assert_int_equal(n, 0);
	}
	assert_int_equal(tx.wqlen, 0);
}

static void
test_several_in_one_read(void **state)
{
	unsigned char buf[256];
	struct imsg m;
	size_t o = 0;
	uint32_t pid = getpid(), i;

	(void)state;
	o += frame(buf + o, IMSG_CONF_END, HDRSZ, 0, pid, NULL, 0);
	o += frame(buf + o, IMSG_CONF_GLOBAL, HDRSZ + 5, 0, pid, "abcde", 5);
	o += frame(buf + o, IMSG_CONF_ROUTE, HDRSZ + 3, 0, pid, "xyz", 3);
	/* one write, so one read sees all three */
	assert_int_equal(write(sv[0], buf, o), (ssize_t)o);
	assert_int_equal(imsg_read(&rx), (ssize_t)o);
	for (i = 0; i < 3; i++) {
		assert_true(imsg_get(&rx, &m) > 0);
		assert_int_equal(m.hdr.type,
		    i == 0	 ? IMSG_CONF_END
			: i == 1 ? IMSG_CONF_GLOBAL
				 : IMSG_CONF_ROUTE);
		assert_int_equal(m.datalen, i == 0 ? 0 : i == 1 ? 5 : 3);
		if (i == 2)
			assert_memory_equal(m.data, "xyz", 3);
		imsg_free(&m);
	}
	assert_int_equal(imsg_get(&rx, &m), 0);
}

static void
test_split_across_reads(void **state)
{
	unsigned char buf[HDRSZ + 100];
	struct imsg m;
	size_t len, k;
	char payload[100];

	(void)state;
	memset(payload, 'p', sizeof(payload));
	len = frame(buf, IMSG_CONF_ROUTE, HDRSZ + sizeof(payload), 0, getpid(),
	    payload, sizeof(payload));
	/* one byte at a time: nothing until the last byte */
	for (k = 0; k < len; k++) {
		assert_int_equal(write(sv[0], buf + k, 1), 1);
		assert_int_equal(imsg_read(&rx), 1);
		if (k + 1 < len)
			assert_int_equal(imsg_get(&rx, &m), 0);
	}
	assert_int_equal(imsg_get(&rx, &m), len);
	assert_memory_equal(m.data, payload, sizeof(payload));
	imsg_free(&m);
	assert_int_equal(rx.rlen, 0);
}

static void
test_split_with_fd(void **state)
{
	unsigned char buf[HDRSZ + 4];
	struct imsg m;
	size_t len;
	int p[2], nfds;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	len = frame(buf, IMSG_PEER_CHANNEL, HDRSZ + 4, IMSGF_HASFD, getpid(),
	    "abcd", 4);
	/* the fd comes with the first bytes, the frame completes later */
	send_raw(sv[0], buf, 5, &p[0], 1);
	assert_int_equal(imsg_read(&rx), 5);
	assert_int_equal(rx.nrfds, 1);
	assert_int_equal(imsg_get(&rx, &m), 0);
	assert_int_equal(rx.nrfds, 1);
	send_raw(sv[0], buf + 5, len - 5, NULL, 0);
	assert_int_equal(imsg_read(&rx), len - 5);
	assert_int_equal(imsg_get(&rx, &m), len);
	assert_same_file(m.fd, p[0]);
	assert_int_equal(rx.nrfds, 0);
	imsg_free(&m);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

static void
test_truncated_frames(void **state)
{
	unsigned char buf[HDRSZ + 64];
	struct imsg m;
	size_t len;

	(void)state;
	len = frame(buf, IMSG_CONF_ROUTE, HDRSZ + 64, 0, getpid(), buf, 0);
	memset(buf + HDRSZ, 'x', 64);
	len += 64;
	/* part of a header */
	assert_int_equal(write(sv[0], buf, HDRSZ - 1), HDRSZ - 1);
	assert_int_equal(imsg_read(&rx), HDRSZ - 1);
	assert_int_equal(imsg_get(&rx, &m), 0);
	assert_int_equal(m.fd, -1);
	assert_null(m.data);
	/* a whole header, no payload */
	assert_int_equal(write(sv[0], buf + HDRSZ - 1, 1), 1);
	assert_int_equal(imsg_read(&rx), 1);
	assert_int_equal(imsg_get(&rx, &m), 0);
	/* all but the last payload byte */
	assert_int_equal(write(sv[0], buf + HDRSZ, 63), 63);
	assert_int_equal(imsg_read(&rx), 63);
	assert_int_equal(imsg_get(&rx, &m), 0);
	assert_int_equal(rx.rlen, len - 1);
	assert_int_equal(write(sv[0], buf + len - 1, 1), 1);
	assert_int_equal(imsg_read(&rx), 1);
	assert_int_equal(imsg_get(&rx, &m), len);
	imsg_free(&m);
}

static void
test_eof(void **state)
{
	(void)state;
	close(sv[0]);
	sv[0] = -1;
	assert_int_equal(imsg_read(&rx), 0);
}

static void
test_large_message(void **state)
{
	static char big[IMSG_MAX_SIZE];
	struct imsg m;
	size_t max = IMSG_MAX_SIZE - HDRSZ;
	int p[2];

	(void)state;
	memset(big, 'B', sizeof(big));
	assert_int_equal(imsg_compose(&tx, IMSG_LOGIN_REQUEST, 0, -1, big, max),
	    0);
	flush(&tx);
	assert_int_equal(get_one(&rx, &m), IMSG_MAX_SIZE);
	assert_int_equal(m.datalen, max);
	imsg_free(&m);
	/* one byte more is refused, and the fd still closed */
	assert_int_equal(pipe(p), 0);
	errno = 0;
	assert_int_equal(imsg_compose(&tx, IMSG_LOGIN_REQUEST, 0, p[0], big,
			     max + 1),
	    -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(tx.wqlen, 0);
	assert_closed(p[0]);
	close(p[1]);
}

static void
test_read_buffer_full(void **state)
{
	static char big[IMSG_MAX_SIZE];
	int i;
	ssize_t n;

	(void)state;
	/* two largest frames fill the read buffer exactly */
	assert_int_equal(sizeof(rx.rbuf), 2 * IMSG_MAX_SIZE);
	for (i = 0; i < 2; i++)
		assert_int_equal(imsg_compose(&tx, IMSG_CONF_ROUTE, 0, -1, big,
				     IMSG_MAX_SIZE - HDRSZ),
		    0);
	flush(&tx);
	/* a receiver that never takes messages off runs out of room */
	while (rx.rlen < sizeof(rx.rbuf))
		assert_true(imsg_read(&rx) > 0);
	errno = 0;
	n = imsg_read(&rx);
	assert_int_equal(n, -1);
	assert_int_equal(errno, ENOBUFS);
}

/* ---- malformed frames ---- */

static void
expect_bad_frame(const unsigned char *buf, size_t len)
{
	struct imsg m;

	assert_int_equal(write(sv[0], buf, len), (ssize_t)len);
	assert_int_equal(imsg_read(&rx), (ssize_t)len);
	errno = 0;
	assert_int_equal(imsg_get(&rx, &m), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(m.fd, -1);
	assert_null(m.data);
}

static void
test_oversized_length(void **state)
{
	unsigned char buf[HDRSZ];

	(void)state;
	/* refused from the header alone, before any payload arrives */
	frame(buf, IMSG_CONF_ROUTE, IMSG_MAX_SIZE + 1, 0, getpid(), NULL, 0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_oversized_length_max(void **state)
{
	unsigned char buf[HDRSZ];

	(void)state;
	frame(buf, IMSG_CONF_ROUTE, 0xffff, 0, getpid(), NULL, 0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_undersized_length(void **state)
{
	unsigned char buf[HDRSZ + 8];

	(void)state;
	frame(buf, IMSG_CONF_ROUTE, HDRSZ - 1, 0, getpid(), NULL, 0);
	memset(buf + HDRSZ, 0, 8);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_zero_length(void **state)
{
	unsigned char buf[HDRSZ];

	(void)state;
	frame(buf, IMSG_CONF_ROUTE, 0, 0, getpid(), NULL, 0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_unknown_flags(void **state)
{
	unsigned char buf[HDRSZ];

	(void)state;
	frame(buf, IMSG_CONF_END, HDRSZ, 0x0002, getpid(), NULL, 0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_unknown_flags_high(void **state)
{
	unsigned char buf[HDRSZ];

	(void)state;
	frame(buf, IMSG_CONF_END, HDRSZ, 0x8000 | IMSGF_HASFD, getpid(), NULL,
	    0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_forged_pid(void **state)
{
	unsigned char buf[HDRSZ];
	struct imsg m;

	(void)state;
	rx.peerpid = 4242;
	/* the expected sender's pid passes */
	frame(buf, IMSG_CONF_END, HDRSZ, 0, 4242, NULL, 0);
	assert_int_equal(write(sv[0], buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(get_one(&rx, &m), HDRSZ);
	imsg_free(&m);
	/* any other is a forgery, refused from the header alone */
	frame(buf, IMSG_CONF_END, HDRSZ, 0, 4243, NULL, 0);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_pid_any_when_unset(void **state)
{
	unsigned char buf[HDRSZ];
	struct imsg m;

	(void)state;
	assert_int_equal(rx.peerpid, 0);
	frame(buf, IMSG_CONF_END, HDRSZ, 0, 1, NULL, 0);
	assert_int_equal(write(sv[0], buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(get_one(&rx, &m), HDRSZ);
	assert_int_equal(m.hdr.pid, 1);
	imsg_free(&m);
}

static void
test_hasfd_without_fd(void **state)
{
	unsigned char buf[HDRSZ + 4];

	(void)state;
	frame(buf, IMSG_PEER_CHANNEL, HDRSZ + 4, IMSGF_HASFD, getpid(), "abcd",
	    4);
	expect_bad_frame(buf, sizeof(buf));
}

static void
test_too_many_fds(void **state)
{
	unsigned char buf[HDRSZ];
	int fds[IMSG_MAX_FDS + 1], p[2], i, nfds;
	ssize_t n;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	for (i = 0; i <= IMSG_MAX_FDS; i++)
		fds[i] = p[0];
	frame(buf, IMSG_CONF_END, HDRSZ, 0, getpid(), NULL, 0);
	/* more fds in one message than a read accepts */
	send_raw(sv[0], buf, sizeof(buf), fds, 5);
	errno = 0;
	assert_int_equal(imsg_read(&rx), -1);
	assert_int_equal(errno, EBADMSG);
	/* more unclaimed fds than the queue holds */
	imsgbuf_clear(&rx);
	for (i = 0; i <= IMSG_MAX_FDS; i++)
		send_raw(sv[0], buf, sizeof(buf), fds, 1);
	for (;;) {
		errno = 0;
		if ((n = imsg_read(&rx)) == -1)
			break;
		assert_true(n > 0);
	}
	assert_int_equal(errno, EBADMSG);
	/* whatever was queued goes with the channel */
	imsgbuf_clear(&rx);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

static void
test_clear_closes_fds(void **state)
{
	unsigned char buf[HDRSZ];
	int p[2], nfds;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	/* an fd queued for sending, never sent */
	assert_int_equal(imsg_compose(&tx, IMSG_PEER_CHANNEL, 0, dup(p[0]),
			     NULL, 0),
	    0);
	/* an fd received but never claimed by a message */
	frame(buf, IMSG_CONF_END, HDRSZ, 0, getpid(), NULL, 0);
	send_raw(sv[0], buf, sizeof(buf), &p[1], 1);
	assert_int_equal(imsg_read(&rx), HDRSZ);
	assert_int_equal(rx.nrfds, 1);
	imsgbuf_clear(&tx);
	imsgbuf_clear(&rx);
	assert_int_equal(tx.wqlen, 0);
	assert_int_equal(rx.nrfds, 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

/* ---- imsg_check against the real channel rules ---- */

static int
check(const struct imsg_rule *rules, size_t n, uint32_t type, size_t datalen,
    int fd, char *err, size_t errlen)
{
	struct imsg m;

	memset(&m, 0, sizeof(m));
	m.hdr.type = type;
	m.hdr.len = HDRSZ + datalen;
	m.datalen = datalen;
	m.fd = fd;
	err[0] = '\0';
	return imsg_check(rules, n, &m, err, errlen);
}

#define P2C parent_to_child_rules, parent_to_child_nrules
#define A2R authproc_to_relay_rules, authproc_to_relay_nrules
#define R2A relay_to_authproc_rules, relay_to_authproc_nrules

static void
test_check_unknown_type(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(check(P2C, IMSG_LOGIN_REQUEST,
			     sizeof(struct login_request), 3, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "not allowed"));
	assert_int_equal(check(P2C, IMSG_NONE, 0, -1, err, sizeof(err)), -1);
	assert_int_equal(check(P2C, IMSG_TYPE_MAX, 0, -1, err, sizeof(err)),
	    -1);
	assert_int_equal(check(P2C, 0xffffffff, 0, -1, err, sizeof(err)), -1);
	assert_int_equal(check(A2R, IMSG_LOGIN_RESULT,
			     sizeof(struct login_result), -1, err, sizeof(err)),
	    -1);
	assert_int_equal(check(R2A, IMSG_LOGIN_REQUEST,
			     sizeof(struct login_request), 3, err, sizeof(err)),
	    -1);
	assert_int_equal(check(R2A, IMSG_CONF_END, 0, -1, err, sizeof(err)),
	    -1);
}

static void
test_check_fixed_lengths(void **state)
{
	static const struct {
		uint32_t type;
		size_t size;
		int fd;
	} fixed[] = {
	    {IMSG_CONF_SANDBOX, sizeof(struct conf_sandbox), -1},
	    {IMSG_CONF_GLOBAL, sizeof(struct conf_global), -1},
	    {IMSG_CONF_LISTENER, sizeof(struct conf_listener), 3},
	    {IMSG_CONF_UPSTREAM, sizeof(struct conf_upstream), -1},
	    {IMSG_CONF_ROUTE, sizeof(struct conf_route), -1},
	    {IMSG_CONF_END, 0, -1},
	    {IMSG_PEER_CHANNEL, sizeof(struct peer_channel), 3},
	};
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		assert_int_equal(check(P2C, fixed[i].type, fixed[i].size,
				     fixed[i].fd, err, sizeof(err)),
		    0);
		assert_int_equal(check(P2C, fixed[i].type, fixed[i].size + 1,
				     fixed[i].fd, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, "bad length"));
		if (fixed[i].size > 0)
			assert_int_equal(check(P2C, fixed[i].type,
					     fixed[i].size - 1, fixed[i].fd,
					     err, sizeof(err)),
			    -1);
	}
	assert_int_equal(check(R2A, IMSG_LOGIN_RESULT,
			     sizeof(struct login_result), -1, err, sizeof(err)),
	    0);
	assert_int_equal(check(R2A, IMSG_LOGIN_RESULT,
			     sizeof(struct login_result) - 1, -1, err,
			     sizeof(err)),
	    -1);
}

static void
test_check_login_request_bounds(void **state)
{
	char err[128];
	size_t base = sizeof(struct login_request);

	(void)state;
	assert_int_equal(check(A2R, IMSG_LOGIN_REQUEST, base, 3, err,
			     sizeof(err)),
	    0);
	assert_int_equal(check(A2R, IMSG_LOGIN_REQUEST, base + PIPELINE_MAX, 3,
			     err, sizeof(err)),
	    0);
	assert_int_equal(check(A2R, IMSG_LOGIN_REQUEST, base + PIPELINE_MAX + 1,
			     3, err, sizeof(err)),
	    -1);
	assert_int_equal(check(A2R, IMSG_LOGIN_REQUEST, base - 1, 3, err,
			     sizeof(err)),
	    -1);
	/* the largest login request fits in one frame */
	assert_true(HDRSZ + base + PIPELINE_MAX <= IMSG_MAX_SIZE);
}

static void
test_check_fds(void **state)
{
	char err[128];

	(void)state;
	/* unexpected fd */
	assert_int_equal(check(P2C, IMSG_CONF_GLOBAL,
			     sizeof(struct conf_global), 5, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "unexpected fd"));
	assert_int_equal(check(R2A, IMSG_LOGIN_RESULT,
			     sizeof(struct login_result), 5, err, sizeof(err)),
	    -1);
	/* missing fd */
	assert_int_equal(check(P2C, IMSG_PEER_CHANNEL,
			     sizeof(struct peer_channel), -1, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "missing fd"));
	assert_int_equal(check(A2R, IMSG_LOGIN_REQUEST,
			     sizeof(struct login_request), -1, err,
			     sizeof(err)),
	    -1);
}

/* The rule semantics themselves, on a table of our own. */
static void
test_check_rule_semantics(void **state)
{
	static const struct imsg_rule rules[] = {
	    {100, 4, 8, IMSG_FD_NONE},
	    {101, 0, 0, IMSG_FD_REQUIRED},
	    {102, 1, 1, IMSG_FD_OPTIONAL},
	};
	const size_t n = sizeof(rules) / sizeof(rules[0]);
	char err[128];

	(void)state;
	assert_int_equal(check(rules, n, 100, 3, -1, err, sizeof(err)), -1);
	assert_int_equal(check(rules, n, 100, 4, -1, err, sizeof(err)), 0);
	assert_int_equal(check(rules, n, 100, 8, -1, err, sizeof(err)), 0);
	assert_int_equal(check(rules, n, 100, 9, -1, err, sizeof(err)), -1);
	assert_int_equal(check(rules, n, 100, 4, 0, err, sizeof(err)), -1);
	assert_int_equal(check(rules, n, 101, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(check(rules, n, 101, 0, -1, err, sizeof(err)), -1);
	assert_int_equal(check(rules, n, 102, 1, -1, err, sizeof(err)), 0);
	assert_int_equal(check(rules, n, 102, 1, 0, err, sizeof(err)), 0);
	assert_int_equal(check(rules, n, 102, 2, 0, err, sizeof(err)), -1);
	assert_int_equal(check(rules, n, 103, 0, -1, err, sizeof(err)), -1);
	/* an empty table allows nothing */
	assert_int_equal(check(rules, 0, 100, 4, -1, err, sizeof(err)), -1);
}

static void
test_check_small_err(void **state)
{
	char err[8];

	(void)state;
	memset(err, 'Z', sizeof(err));
	assert_int_equal(check(P2C, IMSG_LOGIN_RESULT, 0, -1, err, 4), -1);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(err[4], 'Z');
}

static void
test_string_ok(void **state)
{
	(void)state;
	assert_true(imsg_string_ok("abc", 4));
	assert_true(imsg_string_ok("", 1));
	assert_true(imsg_string_ok("ab\0\xff", 4));
	assert_false(imsg_string_ok("abcd", 4));
	assert_false(imsg_string_ok("abcd", 0));
	/* the NUL must lie within the field */
	assert_false(imsg_string_ok("abc", 3));
}

/* ---- login records ---- */

static struct imsg lm;

static struct login_request *
make_request(size_t pipelen)
{
	struct login_request *req;
	struct sockaddr_in *sin;

	memset(&lm, 0, sizeof(lm));
	lm.datalen = sizeof(*req) + pipelen;
	lm.data = calloc(1, lm.datalen + 1);
	assert_non_null(lm.data);
	lm.fd = -1;
	lm.hdr.type = IMSG_LOGIN_REQUEST;
	req = lm.data;
	req->listener_id = 1;
	req->proto = PROTO_IMAP;
	req->mech = MECH_LOGIN;
	req->pipelen = pipelen;
	sin = (struct sockaddr_in *)&req->client;
	sin->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&req->local;
	sin->sin_family = AF_INET;
	strcpy(req->tag, "a1");
	strcpy(req->user, "bob@example.com");
	strcpy(req->pass, "secret");
	memset((char *)lm.data + sizeof(*req), 'P', pipelen);
	return req;
}

static void
free_request(void)
{
	imsg_free(&lm);
}

static void
expect_request(int want)
{
	char err[128];

	err[0] = '\0';
	assert_int_equal(login_request_valid(&lm, err, sizeof(err)), want);
	if (want == -1)
		assert_non_null(strstr(err, "login request"));
	free_request();
}

static void
test_login_request_good(void **state)
{
	struct login_request *req;

	(void)state;
	make_request(0);
	expect_request(0);
	req = make_request(PIPELINE_MAX);
	req->proto = PROTO_POP3;
	req->mech = MECH_USERPASS;
	expect_request(0);
	req = make_request(17);
	req->mech = MECH_PLAIN;
	strcpy(req->authzid, "admin");
	memcpy(req->idfields, "name\0mutt\0version\0002\0", 20);
	req->idlen = 20;
	req->client.ss_family = AF_INET6;
	expect_request(0);
	/* a full ID block is fine if it ends in NUL */
	req = make_request(0);
	memset(req->idfields, 'i', sizeof(req->idfields));
	req->idfields[sizeof(req->idfields) - 1] = '\0';
	req->idlen = sizeof(req->idfields);
	expect_request(0);
}

static void
test_login_request_strings(void **state)
{
	struct login_request *req;

	(void)state;
	req = make_request(0);
	memset(req->tag, 'T', sizeof(req->tag));
	expect_request(-1);
	req = make_request(0);
	memset(req->user, 'U', sizeof(req->user));
	expect_request(-1);
	req = make_request(0);
	memset(req->authzid, 'Z', sizeof(req->authzid));
	expect_request(-1);
	req = make_request(0);
	memset(req->pass, 'P', sizeof(req->pass));
	expect_request(-1);
	/* a NUL at the very last byte is still terminated */
	req = make_request(0);
	memset(req->pass, 'P', sizeof(req->pass) - 1);
	req->pass[sizeof(req->pass) - 1] = '\0';
	expect_request(0);
}

static void
test_login_request_pipelen(void **state)
{
	struct login_request *req;

	(void)state;
	/* claims more bytes than came */
	req = make_request(10);
	req->pipelen = 11;
	expect_request(-1);
	/* claims fewer */
	req = make_request(10);
	req->pipelen = 9;
	expect_request(-1);
	/* absurd values must not wrap around the length check */
	req = make_request(0);
	req->pipelen = 0xffffffff;
	expect_request(-1);
	req = make_request(0);
	req->pipelen = PIPELINE_MAX + 1;
	expect_request(-1);
	/* shorter than the record */
	make_request(0);
	lm.datalen = sizeof(struct login_request) - 1;
	expect_request(-1);
	make_request(0);
	lm.datalen = 0;
	expect_request(-1);
}

static void
test_login_request_enums(void **state)
{
	struct login_request *req;

	(void)state;
	req = make_request(0);
	req->proto = 0;
	expect_request(-1);
	req = make_request(0);
	req->proto = 3;
	expect_request(-1);
	req = make_request(0);
	req->mech = 0;
	expect_request(-1);
	req = make_request(0);
	req->mech = MECH_USERPASS + 1;
	expect_request(-1);
	req = make_request(0);
	req->mech = 0x80000001;
	expect_request(-1);
}

static void
test_login_request_idfields(void **state)
{
	struct login_request *req;

	(void)state;
	req = make_request(0);
	req->idlen = sizeof(req->idfields) + 1;
	expect_request(-1);
	req = make_request(0);
	memcpy(req->idfields, "name\0mutt", 9);
	req->idlen = 9;
	expect_request(-1);
	req = make_request(0);
	req->idlen = 0xffffffff;
	expect_request(-1);
}

static void
test_login_request_addresses(void **state)
{
	struct login_request *req;

	(void)state;
	req = make_request(0);
	req->client.ss_family = AF_UNIX;
	expect_request(-1);
	req = make_request(0);
	req->local.ss_family = AF_UNSPEC;
	expect_request(-1);
}

static struct login_result *
make_result(uint32_t status, const char *text)
{
	struct login_result *res;

	memset(&lm, 0, sizeof(lm));
	lm.datalen = sizeof(*res);
	lm.data = calloc(1, lm.datalen + 1);
	assert_non_null(lm.data);
	lm.fd = -1;
	res = lm.data;
	res->status = status;
	strcpy(res->text, text);
	return res;
}

static void
expect_result(int want)
{
	char err[128];

	err[0] = '\0';
	assert_int_equal(login_result_valid(&lm, err, sizeof(err)), want);
	if (want == -1)
		assert_non_null(strstr(err, "login result"));
	imsg_free(&lm);
}

static void
test_login_result(void **state)
{
	struct login_result *res;

	(void)state;
	make_result(LOGIN_OK, "");
	expect_result(0);
	make_result(LOGIN_FAILED, "[AUTHENTICATIONFAILED] Invalid ~ creds");
	expect_result(0);
	make_result(LOGIN_TEMPFAIL, "caf\xc3\xa9 8-bit is fine");
	expect_result(0);
	make_result(LOGIN_CLIENT_GONE, "");
	expect_result(0);
	/* what follows the NUL is never sent, so it is not checked */
	res = make_result(LOGIN_FAILED, "no");
	memcpy(res->text + 3, "\r\n", 2);
	expect_result(0);

	make_result(0, "");
	expect_result(-1);
	make_result(LOGIN_CLIENT_GONE + 1, "");
	expect_result(-1);
	res = make_result(LOGIN_FAILED, "");
	memset(res->text, 'x', sizeof(res->text));
	expect_result(-1);
	make_result(LOGIN_FAILED, "bad\r\n* OK injected");
	expect_result(-1);
	make_result(LOGIN_FAILED, "bad\nline");
	expect_result(-1);
	make_result(LOGIN_FAILED, "tab\there");
	expect_result(-1);
	make_result(LOGIN_FAILED, "del\x7f");
	expect_result(-1);
	make_result(LOGIN_FAILED, "\x1b[31m");
	expect_result(-1);
	make_result(LOGIN_OK, "");
	lm.datalen--;
	expect_result(-1);
}

/* A login request travels with its client socket and passes the checks. */
static void
test_login_request_roundtrip(void **state)
{
	struct login_request *req;
	struct imsg m;
	char err[128];
	int p[2], nfds;

	(void)state;
	nfds = count_fds();
	assert_int_equal(pipe(p), 0);
	req = make_request(100);
	assert_int_equal(imsg_compose(&tx, IMSG_LOGIN_REQUEST, 9, dup(p[0]),
			     lm.data, lm.datalen),
	    0);
	free_request();
	flush(&tx);
	assert_true(get_one(&rx, &m) > 0);
	assert_int_equal(imsg_check(A2R, &m, err, sizeof(err)), 0);
	assert_int_equal(login_request_valid(&m, err, sizeof(err)), 0);
	req = m.data;
	assert_string_equal(req->user, "bob@example.com");
	assert_int_equal(req->pipelen, 100);
	assert_same_file(m.fd, p[0]);
	imsg_free(&m);
	close(p[0]);
	close(p[1]);
	assert_int_equal(count_fds(), nfds);
}

/*
 * An HTTP request record: a body read whole may announce more bytes to
 * follow in IMSG_HTTP_BODY messages, bounded, and only with a length.
 */
static void
test_http_request_record(void **state)
{
	static unsigned char buf[IMSG_MAX_SIZE];
	struct http_request_rec *r = (struct http_request_rec *)buf;
	struct sockaddr_in *sin;
	const char *head = "POST /service/soap HTTP/1.1\r\nHost: h\r\n"
			   "Content-Length: 100000\r\n\r\n";
	struct imsg m;
	char err[128];

	(void)state;
	memset(buf, 0, sizeof(buf));
	sin = (struct sockaddr_in *)&r->client;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin = (struct sockaddr_in *)&r->local;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->framing = HTTP_BODY_LENGTH;
	r->content_length = 100000;
	r->headlen = strlen(head);
	memcpy(r + 1, head, r->headlen);
	r->bodylen = 10;
	snprintf(r->method, sizeof(r->method), "POST");
	memset(&m, 0, sizeof(m));
	m.hdr.type = IMSG_HTTP_REQUEST;
	m.data = buf;
	m.datalen = sizeof(*r) + r->headlen + r->bodylen;
	m.fd = -1;
	assert_int_equal(http_request_rec_valid(&m, err, sizeof(err)), 0);
	r->bodymore = 100000 - 10;
	assert_int_equal(http_request_rec_valid(&m, err, sizeof(err)), 0);
	r->bodymore = HTTP_SCAN_LIMIT_MAX + PIPELINE_MAX + 1;
	assert_int_equal(http_request_rec_valid(&m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad length"));
	/* a chunked body is never read whole */
	r->bodymore = 5;
	r->framing = HTTP_BODY_CHUNKED;
	r->content_length = 0;
	assert_int_equal(http_request_rec_valid(&m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad length"));
	/* the pieces: some bytes, no socket */
	assert_int_equal(check(A2R, IMSG_HTTP_BODY,
			     IMSG_MAX_SIZE - sizeof(struct imsg_hdr), -1, err,
			     sizeof(err)),
	    0);
	assert_int_equal(check(A2R, IMSG_HTTP_BODY, 0, -1, err, sizeof(err)),
	    -1);
	assert_int_equal(check(A2R, IMSG_HTTP_BODY, 10, 3, err, sizeof(err)),
	    -1);
}

/* What the parent accepts as an audit record, from relay and authproc. */
static void
test_audit_records(void **state)
{
	struct audit_record a;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.client;
	struct imsg m;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&m, 0, sizeof(m));
	m.data = &a;
	m.datalen = sizeof(a);
	sin->sin_family = AF_INET;
	a.proto = PROTO_IMAP;
	a.result = AUDIT_THROTTLED_IP;
	snprintf(a.user, sizeof(a.user), "bob@example.com");
	assert_true(audit_record_valid(&m));
	assert_true(audit_record_valid_from_authproc(&m));
	/* authproc never sees a login go through, nor an upstream */
	a.result = AUDIT_OK;
	assert_true(audit_record_valid(&m));
	assert_false(audit_record_valid_from_authproc(&m));
	a.result = AUDIT_BAD_CREDENTIALS;
	assert_false(audit_record_valid_from_authproc(&m));
	a.result = AUDIT_TIMEOUT;
	assert_true(audit_record_valid_from_authproc(&m));
	snprintf(a.upstream, sizeof(a.upstream), "mailbox1");
	assert_true(audit_record_valid(&m));
	assert_false(audit_record_valid_from_authproc(&m));
	a.upstream[0] = '\0';
	/* and neither takes what is malformed */
	a.result = AUDIT_RESULT_MAX;
	assert_false(audit_record_valid(&m));
	assert_false(audit_record_valid_from_authproc(&m));
	a.result = AUDIT_ABORTED;
	memset(a.user, 'x', sizeof(a.user));
	assert_false(audit_record_valid(&m));
	assert_false(audit_record_valid_from_authproc(&m));
	a.user[0] = '\0';
	m.datalen = sizeof(a) - 1;
	assert_false(audit_record_valid(&m));
	m.datalen = sizeof(a);
	assert_true(audit_record_valid_from_authproc(&m));
}

/* Limits per client: an IPv4 address, or an IPv6 /64. */
static void
test_same_client(void **state)
{
	struct sockaddr_storage a, b;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
	struct sockaddr_in *b4 = (struct sockaddr_in *)&b;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
	struct sockaddr_in6 *b6 = (struct sockaddr_in6 *)&b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a4->sin_family = b4->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &a4->sin_addr), 1);
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &b4->sin_addr), 1);
	b4->sin_port = htons(4000); /* ports do not matter */
	assert_true(sockaddr_same_client(&a, &b));
	assert_int_equal(inet_pton(AF_INET, "192.0.2.2", &b4->sin_addr), 1);
	assert_false(sockaddr_same_client(&a, &b));

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a6->sin6_family = b6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2::1", &a6->sin6_addr),
	    1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:ffff::9",
			     &b6->sin6_addr),
	    1);
	assert_true(sockaddr_same_client(&a, &b));
	assert_false(sockaddr_same_host(&a, &b));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:3::1", &b6->sin6_addr),
	    1);
	assert_false(sockaddr_same_client(&a, &b));
	/* another family is another client */
	b4->sin_family = AF_INET;
	assert_false(sockaddr_same_client(&a, &b));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_roundtrip),
	    T(test_roundtrip_empty),
	    T(test_roundtrip_fd),
	    T(test_imsg_free_closes_fd),
	    T(test_fds_in_order),
	    T(test_batch_fd_behind_plain),
	    T(test_batch_many_partial),
	    T(test_several_in_one_read),
	    T(test_split_across_reads),
	    T(test_split_with_fd),
	    T(test_truncated_frames),
	    T(test_eof),
	    T(test_large_message),
	    T(test_read_buffer_full),
	    T(test_oversized_length),
	    T(test_oversized_length_max),
	    T(test_undersized_length),
	    T(test_zero_length),
	    T(test_unknown_flags),
	    T(test_unknown_flags_high),
	    T(test_forged_pid),
	    T(test_pid_any_when_unset),
	    T(test_hasfd_without_fd),
	    T(test_too_many_fds),
	    T(test_clear_closes_fds),
	    cmocka_unit_test(test_check_unknown_type),
	    cmocka_unit_test(test_check_fixed_lengths),
	    cmocka_unit_test(test_check_login_request_bounds),
	    cmocka_unit_test(test_check_fds),
	    cmocka_unit_test(test_check_rule_semantics),
	    cmocka_unit_test(test_check_small_err),
	    cmocka_unit_test(test_string_ok),
	    cmocka_unit_test(test_login_request_good),
	    cmocka_unit_test(test_login_request_strings),
	    cmocka_unit_test(test_login_request_pipelen),
	    cmocka_unit_test(test_login_request_enums),
	    cmocka_unit_test(test_login_request_idfields),
	    cmocka_unit_test(test_login_request_addresses),
	    cmocka_unit_test(test_login_result),
	    cmocka_unit_test(test_audit_records),
	    cmocka_unit_test(test_http_request_record),
	    cmocka_unit_test(test_same_client),
	    T(test_login_request_roundtrip),
	};

	return cmocka_run_group_tests_name("imsg", tests, NULL, NULL);
}
