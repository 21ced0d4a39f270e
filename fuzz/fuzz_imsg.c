/*
 * Fuzz the imsg receive path with a hostile peer: the input is written
 * into one end of a socketpair, in chunks and with descriptors attached
 * as its first two bytes say, and the other end reads and takes messages
 * off until the channel is exhausted or broken.  Every message is run
 * through the real channel rules and the login record checks.  Nothing
 * may leak: not memory (LeakSanitizer) and not descriptors (counted).
 *
 * Input: byte 0: bit 0 expect the sender pid FUZZ_PEERPID, bits 1-3
 * number of fds sent with the first chunk, bit 4 send them with every
 * chunk; byte 1: chunk size (0: all at once, 1-63: that many bytes,
 * else (n - 63) * 64 bytes); the rest: the byte stream.
 */
#include <sys/socket.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_PEERPID 4242
#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

/* large: keep it off the stack */
static struct imsgbuf ibuf;
static int devnull = -1;

static int
count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	CHECK((d = opendir("/proc/self/fd")) != NULL);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static ssize_t
send_chunk(int fd, const uint8_t *p, size_t len, size_t nfds)
{
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cmsg;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} cmsgbuf;
	int fds[8];
	size_t i;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)p;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		for (i = 0; i < nfds; i++)
			fds[i] = devnull;
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	CHECK(n != -1 || errno == EAGAIN);
	return n;
}

static void
check_rules(const struct imsg_rule *rules, size_t nrules, const struct imsg *m)
{
	char err[128];

	if (imsg_check(rules, nrules, m, err, sizeof(err)) == -1)
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
}

static void
check_request(const struct imsg *m)
{
	const struct login_request *req = m->data;
	char err[128];

	if (login_request_valid(m, err, sizeof(err)) == -1)
		return;
	/* what relay relies on once the request is accepted */
	CHECK(m->datalen == sizeof(*req) + req->pipelen);
	CHECK(strlen(req->tag) < sizeof(req->tag));
	CHECK(strlen(req->user) < sizeof(req->user));
	CHECK(strlen(req->authzid) < sizeof(req->authzid));
	CHECK(strlen(req->pass) < sizeof(req->pass));
	CHECK(req->idlen <= sizeof(req->idfields));
	CHECK(sockaddr_valid(&req->client) && sockaddr_valid(&req->local));
}

static void
check_result(const struct imsg *m)
{
	const struct login_result *res = m->data;
	char err[128];
	size_t i;

	if (login_result_valid(m, err, sizeof(err)) == -1)
		return;
	for (i = 0; res->text[i] != '\0'; i++)
		CHECK(res->text[i] != '\r' && res->text[i] != '\n');
}

static void
check_audit(const struct imsg *m)
{
	const struct audit_record *a = m->data;

	if (!audit_record_valid(m)) {
		CHECK(!audit_record_valid_from_authproc(m));
		return;
	}
	/* what the parent relies on before writing the record out */
	CHECK(strlen(a->user) < sizeof(a->user));
	CHECK(strlen(a->reason) < sizeof(a->reason));
	CHECK(strlen(a->upstream) < sizeof(a->upstream));
	if (audit_record_valid_from_authproc(m))
		CHECK(a->result != AUDIT_OK && a->upstream[0] == '\0');
}

static void
check_message(struct imsg *m, ssize_t n)
{
	int fd;

	CHECK((size_t)n == m->hdr.len);
	CHECK(m->hdr.len >= sizeof(m->hdr) && m->hdr.len <= IMSG_MAX_SIZE);
	CHECK(m->datalen == m->hdr.len - sizeof(m->hdr));
	CHECK(m->data != NULL);
	CHECK(((char *)m->data)[m->datalen] == '\0');
	CHECK((m->fd != -1) == ((m->hdr.flags & IMSGF_HASFD) != 0));
	if (ibuf.peerpid != 0)
		CHECK(m->hdr.pid == FUZZ_PEERPID);

	check_rules(parent_to_child_rules, parent_to_child_nrules, m);
	check_rules(child_to_parent_rules, child_to_parent_nrules, m);
	check_rules(authproc_to_relay_rules, authproc_to_relay_nrules, m);
	check_rules(relay_to_authproc_rules, relay_to_authproc_nrules, m);
	check_request(m);
	check_result(m);
	check_audit(m);

	/* half the time the receiver keeps the fd, as relay does */
	if (m->fd != -1 && (m->hdr.peerid & 1)) {
		fd = imsg_take_fd(m);
		CHECK(m->fd == -1);
		close(fd);
	}
}

/* Take every complete message; -1 once the channel is broken. */
static int
drain(void)
{
	struct imsg m;
	ssize_t n;

	while ((n = imsg_get(&ibuf, &m)) > 0) {
		check_message(&m, n);
		imsg_free(&m);
	}
	if (n == -1) {
		CHECK(errno == EBADMSG);
		CHECK(m.fd == -1 && m.data == NULL);
		return -1;
	}
	return 0;
}

static size_t
chunk_size(uint8_t b, size_t total)
{
	if (b == 0)
		return total ? total : 1;
	if (b < 64)
		return b;
	return (size_t)(b - 63) * 64;
}

static void
run(const uint8_t *data, size_t size, uint8_t ctl, uint8_t chunkb)
{
	size_t off = 0, chunk, nfds = (ctl >> 1) & 7;
	ssize_t n;
	int sv[2], shut = 0;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
	imsgbuf_init(&ibuf, sv[1]);
	if (ctl & 1)
		ibuf.peerpid = FUZZ_PEERPID;
	chunk = chunk_size(chunkb, size);

	for (;;) {
		if (off < size) {
			n = send_chunk(sv[0], data + off,
			    size - off < chunk ? size - off : chunk, nfds);
			if (n > 0) {
				off += n;
				if (!(ctl & 0x10))
					nfds = 0;
			}
		} else if (!shut) {
			CHECK(shutdown(sv[0], SHUT_WR) == 0);
			shut = 1;
		}
		n = imsg_read(&ibuf);
		if (n == -1 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break; /* EOF, or a broken channel */
		if (drain() == -1)
			break;
	}
	imsgbuf_clear(&ibuf);
	CHECK(ibuf.nrfds == 0 && ibuf.rlen == 0);
	close(sv[0]);
	close(sv[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int before;

	if (devnull == -1)
		CHECK((devnull = open("/dev/null", O_RDONLY)) != -1);
	if (size < 2)
		return 0;
	before = count_fds();
	run(data + 2, size - 2, data[0], data[1]);
	/* every received fd was closed: by imsg_free or imsgbuf_clear */
	CHECK(count_fds() == before);
	return 0;
}
