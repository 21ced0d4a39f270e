/*
 * Writes the seed corpus of fuzz_imsg to fuzz/corpus/imsg/.  The seeds
 * are raw frames laid out from the real headers, so rerun this whenever
 * a record or the message type numbering changes:
 *
 *	cc -D_GNU_SOURCE -Icommon $(pkg-config --cflags libevent) \
 *	    -o /tmp/gen_imsg_corpus fuzz/gen_imsg_corpus.c && \
 *	    /tmp/gen_imsg_corpus
 *
 * Each seed starts with fuzz_imsg's two control bytes (see there).
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imsg.h"
#include "proto.h"

#define PEERPID	      4242 /* FUZZ_PEERPID in fuzz_imsg.c */
#define CTL_PEERPID   0x01
#define CTL_FDS(n)    ((n) << 1)
#define CTL_FDS_EVERY 0x10

static unsigned char out[IMSG_MAX_SIZE * 4];
static size_t olen;

static void
begin(unsigned char ctl, unsigned char chunk)
{
	olen = 0;
	out[olen++] = ctl;
	out[olen++] = chunk;
}

/* Append a frame; hdrlen 0 means the honest length. */
static void
frame(uint32_t type, uint16_t flags, uint32_t peerid, uint32_t pid,
    const void *data, size_t len, size_t hdrlen)
{
	struct imsg_hdr hdr;

	if (olen + sizeof(hdr) + len > sizeof(out))
		errx(1, "seed too large");
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = hdrlen ? hdrlen : sizeof(hdr) + len;
	hdr.flags = flags;
	hdr.peerid = peerid;
	hdr.pid = pid;
	memcpy(out + olen, &hdr, sizeof(hdr));
	olen += sizeof(hdr);
	if (len)
		memcpy(out + olen, data, len);
	olen += len;
}

static void
save(const char *name)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "fuzz/corpus/imsg/%s", name);
	if ((f = fopen(path, "wb")) == NULL)
		err(1, "%s", path);
	if (fwrite(out, 1, olen, f) != olen || fclose(f) == EOF)
		err(1, "%s", path);
}

static void
login_request(struct login_request *r)
{
	memset(r, 0, sizeof(*r));
	r->listener_id = 1;
	r->proto = PROTO_IMAP;
	r->mech = MECH_LOGIN;
	r->client.ss_family = AF_INET;
	r->local.ss_family = AF_INET6;
	strcpy(r->tag, "a1");
	strcpy(r->user, "bob@example.com");
	strcpy(r->pass, "secret");
	memcpy(r->idfields, "name\0mutt\0", 10);
	r->idlen = 10;
}

static void
login_seeds(void)
{
	static unsigned char buf[sizeof(struct login_request) + PIPELINE_MAX];
	struct login_request r;
	struct login_result res;

	memset(&res, 0, sizeof(res));
	res.status = LOGIN_OK;
	strcpy(res.text, "[CAPABILITY IMAP4rev1] Logged in");
	begin(CTL_PEERPID, 0);
	frame(IMSG_LOGIN_RESULT, 0, 3, PEERPID, &res, sizeof(res), 0);
	save("login-result");

	res.status = LOGIN_FAILED;
	strcpy(res.text, "bad\r\n* OK injected");
	begin(0, 7);
	frame(IMSG_LOGIN_RESULT, 0, 4, PEERPID, &res, sizeof(res), 0);
	save("login-result-crlf");

	/* truncated in the middle, delivered two bytes at a time */
	begin(CTL_PEERPID | CTL_FDS(1) | CTL_FDS_EVERY, 2);
	frame(IMSG_LOGIN_RESULT, 0, 3, PEERPID, &res, sizeof(res), 0);
	olen -= sizeof(res) / 2;
	save("truncated");

	login_request(&r);
	r.pipelen = 32;
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), "a2 SELECT INBOX\r\na3 FETCH 1 ALL\r\n", 32);
	begin(CTL_PEERPID | CTL_FDS(1), 0);
	frame(IMSG_LOGIN_REQUEST, IMSGF_HASFD, 5, PEERPID, buf, sizeof(r) + 32,
	    0);
	save("login-request-fd");

	login_request(&r);
	r.pipelen = PIPELINE_MAX;
	memcpy(buf, &r, sizeof(r));
	memset(buf + sizeof(r), 'P', PIPELINE_MAX);
	begin(CTL_PEERPID | CTL_FDS(1), 64 + 40);
	frame(IMSG_LOGIN_REQUEST, IMSGF_HASFD, 8, PEERPID, buf,
	    sizeof(r) + PIPELINE_MAX, 0);
	save("login-request-max");

	login_request(&r);
	memset(r.user, 'U', sizeof(r.user));
	begin(CTL_FDS(1), 100);
	frame(IMSG_LOGIN_REQUEST, IMSGF_HASFD, 6, PEERPID, &r, sizeof(r), 0);
	save("login-request-unterminated");

	login_request(&r);
	r.pipelen = 5;
	begin(CTL_FDS(1), 0);
	frame(IMSG_LOGIN_REQUEST, IMSGF_HASFD, 7, PEERPID, &r, sizeof(r), 0);
	save("login-request-pipelen");
}

static void
config_seeds(void)
{
	struct conf_sandbox sb;
	struct conf_global g;
	struct conf_listener l;
	struct conf_upstream u;
	struct conf_route rt;
	struct peer_channel pc;

	memset(&sb, 0, sizeof(sb));
	strcpy(sb.chroot, "/var/empty");
	memset(&g, 0, sizeof(g));
	g.max_line = 8192;
	g.max_literal = 1023;
	strcpy(g.greeting, "postern ready");
	memset(&l, 0, sizeof(l));
	l.id = 1;
	l.proto = PROTO_IMAP;
	l.addr.ss_family = AF_INET;
	strcpy(l.name, "imap:143");
	memset(&u, 0, sizeof(u));
	u.id = 2;
	u.has_imap = 1;
	u.imap.ss_family = AF_INET;
	strcpy(u.name, "store1");
	memset(&rt, 0, sizeof(rt));
	rt.kind = ROUTE_DEFAULT;
	rt.upstream_id = 2;
	memset(&pc, 0, sizeof(pc));
	pc.role = PROC_RELAY;
	pc.pid = 99;

	begin(CTL_PEERPID | CTL_FDS(2), 64 + 3);
	frame(IMSG_CONF_SANDBOX, 0, 0, PEERPID, &sb, sizeof(sb), 0);
	frame(IMSG_CONF_GLOBAL, 0, 0, PEERPID, &g, sizeof(g), 0);
	frame(IMSG_CONF_LISTENER, IMSGF_HASFD, 0, PEERPID, &l, sizeof(l), 0);
	frame(IMSG_CONF_UPSTREAM, 0, 0, PEERPID, &u, sizeof(u), 0);
	frame(IMSG_CONF_ROUTE, 0, 0, PEERPID, &rt, sizeof(rt), 0);
	frame(IMSG_CONF_END, 0, 0, PEERPID, NULL, 0, 0);
	frame(IMSG_PEER_CHANNEL, IMSGF_HASFD, 1, PEERPID, &pc, sizeof(pc), 0);
	save("config-sequence");

	begin(0, 0);
	frame(IMSG_PEER_MISBEHAVED, 0, 0, PEERPID, &pc, sizeof(pc), 0);
	save("peer-misbehaved");

	begin(0, 0);
	frame(IMSG_PEER_CHANNEL, IMSGF_HASFD, 0, PEERPID, &pc, sizeof(pc), 0);
	save("hasfd-no-fd");
}

static void
framing_seeds(void)
{
	begin(0, 0);
	frame(IMSG_CONF_END, 0, 0, PEERPID, NULL, 0, IMSG_MAX_SIZE + 1);
	save("oversized");

	begin(CTL_PEERPID, 0);
	frame(IMSG_CONF_END, 0, 0, PEERPID, NULL, 0, 0);
	frame(IMSG_CONF_END, 0, 0, PEERPID + 1, NULL, 0, 0);
	save("forged-pid");

	begin(0, 1);
	frame(IMSG_CONF_END, 0, 0, PEERPID, NULL, 0, 0);
	frame(IMSG_CONF_END, 0x0002, 0, PEERPID, NULL, 0, 0);
	save("bytewise-bad-flags");

	begin(CTL_FDS(6), 0);
	frame(IMSG_CONF_END, 0, 0, PEERPID, NULL, 0, 0);
	save("too-many-fds");
}

/* A record authproc may send, and one only a forger would. */
static void
audit_seeds(void)
{
	struct audit_record a;

	memset(&a, 0, sizeof(a));
	a.proto = PROTO_IMAP;
	a.result = AUDIT_THROTTLED_IP;
	a.client.ss_family = AF_INET;
	strcpy(a.user, "bob@example.com");
	strcpy(a.mech, "LOGIN");
	strcpy(a.reason, "address over its limit");
	begin(CTL_PEERPID, 0);
	frame(IMSG_AUDIT, 0, 0, PEERPID, &a, sizeof(a), 0);
	save("audit-authproc");

	a.result = AUDIT_OK;
	strcpy(a.upstream, "mailbox1");
	begin(CTL_PEERPID, 3);
	frame(IMSG_AUDIT, 0, 0, PEERPID, &a, sizeof(a), 0);
	save("audit-forged-ok");
}

int
main(void)
{
	login_seeds();
	audit_seeds();
	config_seeds();
	framing_seeds();
	return 0;
}
