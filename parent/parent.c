/*
 * The parent process: the only one that stays root.  It reads the
 * configuration, binds the listeners, then forks and re-executes one
 * process per role so that each child starts with a fresh address space
 * and receives only the slice of configuration it needs.  It supervises
 * the children, restarting a dead one with back-off, and relays their log
 * lines to syslog.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event.h>

#include <tls.h>

#include "authproc.h"
#include "log.h"
#include "parent.h"
#include "relay.h"
#include "proc.h"
#include "tlsproc.h"

#define CHILD_FD	   3 /* the parent channel in a child */
#define RESTART_MIN_MS	   200
#define RESTART_MAX_MS	   30000
#define RESTART_STABLE_SEC 30
#define LOGBUF_SIZE	   4096
#define SHUTDOWN_WAIT_MS   3000
#define CHILD_DRAIN_READS  256	  /* reads of a dead child's pipe or channel */
#define POSTERN_NOFILE	   262144 /* descriptors we ask for */
#define POLICY_STATE_MAX   (64u << 20) /* 262144 keys of 256 bytes */

struct child {
	enum proc_role role;
	uint32_t instance; /* among the children of its role */
	pid_t pid;
	struct imsgev iev;
	int logfd;
	struct event logev;
	char logbuf[LOGBUF_SIZE];
	size_t loglen;
	struct event restart_ev;
	int backoff_ms;
	time_t started;
	uint32_t gen;		   /* the configuration generation */
	size_t state_bytes;	   /* throttle counts it handed over */
	int draining;		   /* an older generation's: not restarted */
	struct postern_conf *conf; /* the configuration it was started with */
};

static struct postern_conf *env_conf;
#define MAX_CHILDREN (1 + MAX_RELAYS + MAX_TLSPROCS)
static struct child children[CTL_MAX_SLOTS];
static int nchildren; /* slots ever used */
static uint32_t cur_gen;
static const enum proc_role child_roles[] = {PROC_AUTHPROC, PROC_RELAY,
    PROC_TLSPROC};
static char self_path[PATH_MAX];
static int opt_debug;
static int opt_verbose;
static int quitting;
static uint64_t restarts[PROC_MAX];
static const char *env_conffile;

static void usage(void) __attribute__((noreturn));
static unsigned char *read_file(const char *, size_t *);
static void child_spawn(struct child *);
static void child_gone(struct child *, int status);
static void child_connect_peers(struct child *);
static void slot_release(struct child *);
static int conf_in_use(const struct postern_conf *);
static int generation_start(struct postern_conf *, uint32_t);

static void
usage(void)
{
	fprintf(stderr, "usage: postern [-dnv] [-f file]\n");
	exit(1);
}

static int
role_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(child_roles) / sizeof(child_roles[0]); i++)
		if (strcmp(name, proc_role_name(child_roles[i])) == 0)
			return child_roles[i];
	return -1;
}

/* What the parent decides for the children once the file is read. */
static void
conf_finish(struct postern_conf *conf)
{
	conf->http.access_log = conf->access_path[0] != '\0';
	/* with nowhere to write them, children need not send records */
	conf->global.audit = conf->audit_path[0] != '\0' || conf->audit_syslog;
}

/* How many processes of a role run: relays and tlsprocs may be several. */
static uint32_t
role_count(const struct postern_conf *conf, enum proc_role role)
{
	switch (role) {
	case PROC_RELAY:
		return conf->global.relays;
	case PROC_TLSPROC:
		return conf->global.tlsprocs;
	default:
		return 1;
	}
}

/* One listening socket; -1 (logged) if it cannot be had. */
static int
listener_bind(struct listener *l)
{
	char addr[128];
	int on = 1;

	sockaddr_str(&l->conf.addr, addr, sizeof(addr));
	l->fd = socket(l->conf.addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		log_warn("socket for %s", addr);
		return -1;
	}
	/*
	 * Accepted sockets inherit TCP_NODELAY and SO_KEEPALIVE (Linux
	 * copies the listener's options), which spares authproc, tlsproc
	 * and relay a setsockopt(2) each per connection.  Replies are
	 * small, so no Nagle; keepalive finds clients that vanished
	 * without a FIN.
	 */
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) ==
		-1 ||
	    (l->conf.addr.ss_family == AF_INET6 &&
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) ==
		    -1) ||
	    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) ==
		-1 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) ==
		-1) {
		log_warn("setsockopt on %s", addr);
		goto fail;
	}
	if (bind(l->fd, (struct sockaddr *)&l->conf.addr,
		sockaddr_len(&l->conf.addr)) == -1) {
		log_warn("cannot listen on %s", addr);
		goto fail;
	}
	if (listen(l->fd, 1024) == -1) {
		log_warn("listen %s", addr);
		goto fail;
	}
	log_info("listening on %s (%s)", addr, mail_proto_name(l->conf.proto));
	return 0;
fail:
	close(l->fd);
	l->fd = -1;
	return -1;
}

static void
listeners_bind(struct postern_conf *conf)
{
	struct listener *l;

	TAILQ_FOREACH(l, &conf->listeners, entry)
	if (listener_bind(l) == -1)
		exit(1);
}

/* The chroot must exist, belong to root and be writable by no one else. */
static void
chroot_prepare(const char *path)
{
	struct stat sb;

	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", path);
	if (stat(path, &sb) == -1)
		fatal("stat %s", path);
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != 0 ||
	    (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		fatalx("chroot %s must be a directory owned by root and "
		       "writable only by root",
		    path);
}

/* Load one keypair the way tlsproc will, to report mistakes early. */
static int
keypair_check(const struct keypair *k, const struct conf_tls_global *tls)
{
	struct tls_config *cfg;
	struct tls *ctx;
	unsigned char *cert, *key, *ocsp = NULL;
	size_t certlen, keylen, ocsplen = 0;
	int rv = -1;

	cert = read_file(k->cert, &certlen);
	key = read_file(k->key, &keylen);
	if (k->ocsp[0])
		ocsp = read_file(k->ocsp, &ocsplen);
	if (cert == NULL || key == NULL || (k->ocsp[0] && ocsp == NULL))
		goto done;
	if ((cfg = tls_config_new()) == NULL || (ctx = tls_server()) == NULL)
		fatalx("tls_config_new/tls_server failed");
	if (tls_config_set_protocols(cfg, tls->protocols) == -1 ||
	    tls_config_set_ciphers(cfg, tls->ciphers) == -1)
		log_warnx("tls ciphers \"%s\": %s", tls->ciphers,
		    tls_config_error(cfg));
	else if (tls_config_set_keypair_ocsp_mem(cfg, cert, certlen, key,
		     keylen, ocsp, ocsplen) == -1)
		log_warnx("keypair %s: %s", k->conf.name,
		    tls_config_error(cfg));
	else if (tls_configure(ctx, cfg) == -1)
		log_warnx("keypair %s: %s", k->conf.name, tls_error(ctx));
	else
		rv = 0;
	tls_free(ctx);
	tls_config_free(cfg);
done:
	if (cert)
		free(cert);
	if (key) {
		explicit_bzero(key, keylen);
		free(key);
	}
	free(ocsp);
	return rv;
}

/*
 * Check every keypair (readable, certificate matches key) in a throwaway
 * child, so that parsed key material never lives in the parent.
 */
static int
keypairs_check(struct postern_conf *conf)
{
	struct keypair *k;
	struct upstream *u;
	int status, errors = 0;
	pid_t pid;
	size_t len;
	unsigned char *ca;

	TAILQ_FOREACH(u, &conf->upstreams, entry)
	{
		if ((!u->conf.tls && !u->conf.https) || u->conf.noverify)
			continue;
		if ((ca = read_file(u->ca[0] ? u->ca
					     : tls_default_ca_cert_file(),
			 &len)) == NULL) {
			log_warnx("upstream %s: cannot read its CA file",
			    u->conf.name);
			errors++;
		}
		free(ca);
	}
	if (TAILQ_EMPTY(&conf->keypairs))
		return errors ? -1 : 0;
	switch (pid = fork()) {
	case -1:
		/* at a reload, the running postern must survive this */
		log_warn("fork to check keypairs");
		return -1;
	case 0:
		TAILQ_FOREACH(k, &conf->keypairs, entry)
		if (keypair_check(k, &conf->tls) == -1)
			errors++;
		_exit(errors ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			log_warn("waitpid");
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* the child's own words went to the log */
		log_warnx("a keypair could not be loaded");
		errors++;
	}
	return errors ? -1 : 0;
}

static int
config_check_user(struct postern_conf *conf)
{
	struct passwd *pw;

	if ((pw = getpwnam(conf->user)) == NULL) {
		log_warnx("user %s does not exist (\"make install\" creates "
			  "_postern)",
		    conf->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("user %s is root; children must run unprivileged",
		    conf->user);
		return -1;
	}
	conf->sandbox.uid = pw->pw_uid;
	conf->sandbox.gid = pw->pw_gid;
	return 0;
}

/*
 * Read a whole file for a child (certificate, key, CA).  The parent reads
 * it again for every child start rather than keeping key material.
 */
static unsigned char *
read_file(const char *path, size_t *lenp)
{
	struct stat sb;
	unsigned char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > BLOB_MAX) {
		log_warnx("%s: not a regular file of sane size", path);
		close(fd);
		return NULL;
	}
	if ((buf = malloc(sb.st_size)) == NULL)
		fatal("malloc");
	while (off < (size_t)sb.st_size) {
		n = read(fd, buf + off, sb.st_size - off);
		if (n <= 0) {
			log_warn("%s: read", path);
			explicit_bzero(buf, off);
			free(buf);
			close(fd);
			return NULL;
		}
		off += n;
	}
	close(fd);
	*lenp = off;
	return buf;
}

/* Send a file in chunks; wipes and frees it. */
static int
send_blob(struct imsgev *iev, uint32_t owner, enum blob_kind kind,
    const char *path)
{
	unsigned char *data, msg[sizeof(struct conf_blob) + BLOB_CHUNK];
	struct conf_blob hdr;
	size_t len, off;

	if ((data = read_file(path, &len)) == NULL)
		return -1;
	for (off = 0; off < len; off += hdr.len) {
		hdr.owner_id = owner;
		hdr.kind = kind;
		hdr.total = len;
		hdr.offset = off;
		hdr.len = len - off > BLOB_CHUNK ? BLOB_CHUNK : len - off;
		memcpy(msg, &hdr, sizeof(hdr));
		memcpy(msg + sizeof(hdr), data + off, hdr.len);
		imsgev_compose(iev, IMSG_CONF_BLOB, 0, -1, msg,
		    sizeof(hdr) + hdr.len);
	}
	explicit_bzero(msg, sizeof(msg));
	explicit_bzero(data, len);
	free(data);
	return 0;
}

/*
 * The CA bundle of each https:// lookup handler, after the lookup
 * configuration: relay verifies handlers with it from memory.
 */
static void
send_handler_cas(struct imsgev *iev, const struct postern_conf *conf)
{
	const struct conf_lookup_handler *h;
	uint32_t i;

	for (i = 0; i < conf->lookup.nhandlers; i++) {
		h = &conf->lookup.handlers[i];
		if (h->tls &&
		    send_blob(iev, LOOKUP_BLOB_OWNER + i, BLOB_CA,
			h->ca[0] ? h->ca : tls_default_ca_cert_file()) == -1)
			log_warnx("lookup handler %s%s: CA not sent to relay",
			    h->host, h->path);
	}
}

static void
send_listeners(struct child *c)
{
	struct listener *l;
	int fd, gets_fd;

	TAILQ_FOREACH(l, &c->conf->listeners, entry)
	{
		/*
		 * implicit TLS sockets go to tlsproc, the rest to authproc;
		 * every tlsproc worker gets the same socket and the kernel
		 * gives each connection to one of those accepting
		 */
		if (c->role == PROC_TLSPROC)
			gets_fd = (l->conf.flags & LISTEN_TLS) != 0;
		else
			gets_fd = (l->conf.flags & LISTEN_TLS) == 0;
		if (c->role == PROC_TLSPROC && l->conf.nkeypairs == 0)
			continue;
		fd = -1;
		if (gets_fd && (fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0)) == -1)
			log_warn("listener %s not passed on", l->conf.name);
		imsgev_compose(&c->iev, IMSG_CONF_LISTENER, 0, fd, &l->conf,
		    sizeof(l->conf));
	}
}

static void
child_send_config(struct child *c)
{
	struct imsgev *iev = &c->iev;
	struct upstream *u;
	struct route *r;
	struct keypair *k;
	struct pool *p;

	imsgev_compose(iev, IMSG_CONF_SANDBOX, 0, -1, &c->conf->sandbox,
	    sizeof(c->conf->sandbox));
	imsgev_compose(iev, IMSG_CONF_GLOBAL, 0, -1, &c->conf->global,
	    sizeof(c->conf->global));
	switch (c->role) {
	case PROC_AUTHPROC:
		imsgev_compose(iev, IMSG_CONF_POLICY, 0, -1, &c->conf->policy,
		    sizeof(c->conf->policy));
		imsgev_compose(iev, IMSG_CONF_HTTP, 0, -1, &c->conf->http,
		    sizeof(c->conf->http));
		send_listeners(c);
		break;
	case PROC_TLSPROC:
		imsgev_compose(iev, IMSG_CONF_TLS_GLOBAL, 0, -1, &c->conf->tls,
		    sizeof(c->conf->tls));
		/* the trusted balancers, for PROXY headers on tls listeners */
		imsgev_compose(iev, IMSG_CONF_POLICY, 0, -1, &c->conf->policy,
		    sizeof(c->conf->policy));
		TAILQ_FOREACH(k, &c->conf->keypairs, entry)
		{
			imsgev_compose(iev, IMSG_CONF_KEYPAIR, 0, -1, &k->conf,
			    sizeof(k->conf));
			if (send_blob(iev, k->conf.id, BLOB_CERT, k->cert) ==
				-1 ||
			    send_blob(iev, k->conf.id, BLOB_KEY, k->key) ==
				-1 ||
			    (k->ocsp[0] &&
				send_blob(iev, k->conf.id, BLOB_OCSP,
				    k->ocsp) == -1))
				log_warnx("keypair %s not sent to tlsproc",
				    k->conf.name);
		}
		send_listeners(c);
		break;
	case PROC_RELAY:
		imsgev_compose(iev, IMSG_CONF_TLS_GLOBAL, 0, -1, &c->conf->tls,
		    sizeof(c->conf->tls));
		imsgev_compose(iev, IMSG_CONF_POLICY, 0, -1, &c->conf->policy,
		    sizeof(c->conf->policy));
		imsgev_compose(iev, IMSG_CONF_MEMCACHE, 0, -1,
		    &c->conf->memcache, sizeof(c->conf->memcache));
		TAILQ_FOREACH(u, &c->conf->upstreams, entry)
		{
			imsgev_compose(iev, IMSG_CONF_UPSTREAM, 0, -1, &u->conf,
			    sizeof(u->conf));
			if ((u->conf.tls || u->conf.https) &&
			    !u->conf.noverify &&
			    send_blob(iev, u->conf.id, BLOB_CA,
				u->ca[0] ? u->ca
					 : tls_default_ca_cert_file()) == -1)
				log_warnx("upstream %s: CA not sent to relay",
				    u->conf.name);
		}
		TAILQ_FOREACH(p, &c->conf->pools, entry)
		imsgev_compose(iev, IMSG_CONF_POOL, 0, -1, &p->conf,
		    sizeof(p->conf));
		TAILQ_FOREACH(r, &c->conf->routes, entry)
		imsgev_compose(iev, IMSG_CONF_ROUTE, 0, -1, &r->conf,
		    sizeof(r->conf));
		imsgev_compose(iev, IMSG_CONF_LOOKUP, 0, -1, &c->conf->lookup,
		    sizeof(c->conf->lookup));
		send_handler_cas(iev, c->conf);
		imsgev_compose(iev, IMSG_CONF_HTTP, 0, -1, &c->conf->http,
		    sizeof(c->conf->http));
		break;
	default:
		break;
	}
	imsgev_compose(iev, IMSG_CONF_END, 0, -1, NULL, 0);
}

static int
child_running(const struct child *c)
{
	return c->pid > 0;
}

static void
connect_pair(struct child *a, struct child *b)
{
	struct peer_channel pc;
	int sp[2];

	if (!child_running(a) || !child_running(b))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sp) == -1) {
		/* the pair stays apart: logins fail as if relay were down */
		log_warn("socketpair for %s and %s", proc_role_name(a->role),
		    proc_role_name(b->role));
		return;
	}
	pc.role = b->role;
	pc.pid = b->pid;
	pc.instance = b->instance;
	imsgev_compose(&a->iev, IMSG_PEER_CHANNEL, 0, sp[0], &pc, sizeof(pc));
	pc.role = a->role;
	pc.pid = a->pid;
	pc.instance = a->instance;
	imsgev_compose(&b->iev, IMSG_PEER_CHANNEL, 0, sp[1], &pc, sizeof(pc));
}

static struct child *
child_of_role(enum proc_role role, uint32_t gen)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].role == role && children[i].gen == gen)
			return &children[i];
	return NULL;
}

/*
 * A (re)started child gets fresh channels to the children it talks to:
 * authproc to every relay and to every tlsproc worker of its own
 * generation.
 */
static void
child_connect_peers(struct child *started)
{
	struct child *ap;
	int i;

	if (started->role != PROC_AUTHPROC) {
		if ((ap = child_of_role(PROC_AUTHPROC, started->gen)) != NULL)
			connect_pair(ap, started);
		return;
	}
	for (i = 0; i < nchildren; i++)
		if (children[i].role != PROC_AUTHPROC &&
		    children[i].role != PROC_PARENT &&
		    children[i].gen == started->gen)
			connect_pair(started, &children[i]);
}

static const char *
conf_listener_name(const struct postern_conf *conf, uint32_t id)
{
	struct listener *l;

	TAILQ_FOREACH(l, &conf->listeners, entry)
	if (l->conf.id == id)
		return l->conf.name;
	return NULL;
}

/*
 * A child may tell the parent only that its peer misbehaved; the peer is
 * then assumed compromised and restarted, unless the report comes from
 * authproc, the least trusted, which is restarted instead.  Anything else
 * from a child is itself a violation, and that child is restarted.
 */
static void
child_handle(struct child *c, struct imsg *imsg)
{
	struct peer_channel *pc = imsg->data;
	char err[128];
	int i, ok;

	if (imsg_check(child_to_parent_rules, child_to_parent_nrules, imsg, err,
		sizeof(err)) == -1)
		goto bad;
	switch (imsg->hdr.type) {
	case IMSG_AUDIT:
		if (c->role == PROC_AUTHPROC)
			ok = audit_record_valid_from_authproc(imsg);
		else
			ok = c->role == PROC_RELAY && audit_record_valid(imsg);
		if (!ok) {
			snprintf(err, sizeof(err), "bad audit record");
			goto bad;
		}
		audit_write(imsg->data,
		    conf_listener_name(c->conf,
			((struct audit_record *)imsg->data)->listener_id));
		return;
	case IMSG_POLICY_STATE:
		/* no more than a full table could hold */
		if (c->role != PROC_AUTHPROC || !c->draining ||
		    (c->state_bytes += imsg->datalen) > POLICY_STATE_MAX) {
			snprintf(err, sizeof(err), "unasked throttle counters");
			goto bad;
		}
		policy_state_forward(imsg);
		return;
	case IMSG_ACCESS:
		if (c->role != PROC_RELAY || !access_record_valid(imsg)) {
			snprintf(err, sizeof(err), "bad access record");
			goto bad;
		}
		access_write(imsg->data);
		return;
	case IMSG_CTL_SESSION:
	case IMSG_CTL_STATS:
	case IMSG_CTL_UPSTREAM:
	case IMSG_CTL_LISTENER:
	case IMSG_CTL_HANDLER:
	case IMSG_CTL_DONE:
	case IMSG_CTL_FORGET:
		if (control_child_answer(c - children, c->role, c->instance,
			imsg) == -1) {
			snprintf(err, sizeof(err), "unasked control answer");
			goto bad;
		}
		return;
	case IMSG_PEER_MISBEHAVED:
		/* only a peer it has a channel with: authproc talks to both */
		if (!(c->role == PROC_AUTHPROC &&
			(pc->role == PROC_RELAY || pc->role == PROC_TLSPROC)) &&
		    !(c->role != PROC_AUTHPROC && pc->role == PROC_AUTHPROC)) {
			snprintf(err, sizeof(err), "bad peer report");
			goto bad;
		}
		if (c->role == PROC_AUTHPROC) {
			/*
			 * The child that parses clients' bytes may be the one
			 * lying: it must not be able to end every relayed
			 * session or TLS connection by saying so.
			 */
			log_warnx("authproc reports that %s (pid %d) sent a "
				  "malformed message; restarting authproc, "
				  "not %s",
			    proc_role_name(pc->role), pc->pid,
			    proc_role_name(pc->role));
			if (c->pid > 0)
				kill(c->pid, SIGKILL);
			return;
		}
		for (i = 0; i < nchildren; i++)
			if (children[i].role == pc->role &&
			    children[i].pid > 0 &&
			    children[i].pid == (pid_t)pc->pid) {
				log_warnx("%s reports that %s (pid %d) sent a "
					  "malformed message; restarting it",
				    proc_role_name(c->role),
				    proc_role_name(pc->role), pc->pid);
				kill(children[i].pid, SIGKILL);
			}
		return;
	}
bad:
	log_warnx("%s sent a bad message (%s); restarting it",
	    proc_role_name(c->role), err);
	if (c->pid > 0) /* not one being reaped: kill(0) is the group */
		kill(c->pid, SIGKILL);
}

/*
 * posternctl and the metrics: ask the running children of these roles.
 * Returns how many were asked; asked gets their slots.
 */
int
children_query(uint32_t id, const struct ctl_query *q, uint32_t roles,
    uint64_t *asked)
{
	int i, n = 0;

	memset(asked, 0, SLOT_WORDS * sizeof(*asked));
	for (i = 0; i < nchildren; i++) {
		if (!child_running(&children[i]) ||
		    (roles & (1u << children[i].role)) == 0 ||
		    ((roles & CTL_ONE_CHILD) && children[i].draining))
			continue;
		if (imsgev_compose(&children[i].iev, IMSG_CTL_QUERY, id, -1, q,
			sizeof(*q)) == -1)
			continue;
		SLOT_SET(asked, i);
		n++;
		if (roles & CTL_ONE_CHILD)
			break;
	}
	return n;
}

/* A listener's name as the child in that slot was configured. */
const char *
child_listener_name(int slot, uint32_t id)
{
	const char *name = NULL;

	if (slot >= 0 && slot < nchildren && children[slot].conf != NULL)
		name = conf_listener_name(children[slot].conf, id);
	return name != NULL ? name : "-";
}

/* posternctl unblock: one current relay drops the shared keys. */
int
children_forget(const struct counter_forget *f)
{
	struct child *r = child_of_role(PROC_RELAY, cur_gen);

	if (r == NULL || !child_running(r))
		return -1;
	return imsgev_compose(&r->iev, IMSG_COUNTER_FORGET, 0, -1, f,
	    sizeof(*f));
}

const char *
parent_listener_name(uint32_t id)
{
	const char *name = conf_listener_name(env_conf, id);

	return name != NULL ? name : "-";
}

uint64_t
parent_restarts(enum proc_role role)
{
	return role < PROC_MAX ? restarts[role] : 0;
}

int
parent_counters_shared(void)
{
	return env_conf->policy.shared;
}

void
parent_logs_reopen(void)
{
	audit_reopen();
	access_reopen();
}

/* The old configuration's listener still open at this address. */
static struct listener *
listener_at(struct postern_conf *conf, const struct sockaddr_storage *ss)
{
	struct listener *o;

	TAILQ_FOREACH(o, &conf->listeners, entry)
	if (o->fd != -1 && sockaddr_len(&o->conf.addr) == sockaddr_len(ss) &&
	    memcmp(&o->conf.addr, ss, sockaddr_len(ss)) == 0)
		return o;
	return NULL;
}

/*
 * The listeners of a new configuration: the socket of an old listener at
 * the same address passes to the new one (no connection waiting in its
 * queue is lost), others are bound now.  Returns -1, having changed
 * nothing, if one cannot be bound.
 */
static int
listeners_take_over(struct postern_conf *conf, struct postern_conf *old)
{
	struct listener *l, *o;

	TAILQ_FOREACH(l, &conf->listeners, entry)
	{
		l->fd = -1;
		if (listener_at(old, &l->conf.addr) == NULL &&
		    listener_bind(l) == -1) {
			TAILQ_FOREACH(l, &conf->listeners, entry)
			if (l->fd != -1) {
				close(l->fd);
				l->fd = -1;
			}
			return -1;
		}
	}
	TAILQ_FOREACH(l, &conf->listeners, entry)
	{
		if (l->fd != -1)
			continue;
		o = listener_at(old, &l->conf.addr);
		l->fd = o->fd;
		o->fd = -1;
	}
	/* a listener gone: closed here, and by its old children on drain */
	TAILQ_FOREACH(o, &old->listeners, entry)
	if (o->fd != -1) {
		char addr[128];

		log_info("no longer listening on %s",
		    sockaddr_str(&o->conf.addr, addr, sizeof(addr)));
		close(o->fd);
		o->fd = -1;
	}
	return 0;
}

static int
free_slots(void)
{
	int i, n = CTL_MAX_SLOTS - nchildren;

	for (i = 0; i < nchildren; i++)
		n += children[i].role == PROC_PARENT;
	return n;
}

/* What a reload cannot change: said, and left as it was. */
static void
reload_unchanged(const struct postern_conf *conf,
    void (*line)(void *, const char *), void *arg)
{
	if (strcmp(conf->control_path, env_conf->control_path) != 0 ||
	    strcmp(conf->control_group, env_conf->control_group) != 0)
		line(arg, "the control socket changes only with a restart");
	if (conf->metrics != env_conf->metrics ||
	    memcmp(&conf->metrics_addr, &env_conf->metrics_addr,
		sizeof(conf->metrics_addr)) != 0)
		line(arg, "the metrics listener changes only with a restart");
}

/*
 * The old generation stops taking new work: its authproc and tlsproc
 * workers close their listening sockets, and everything already
 * started finishes on the rules it started with; each child exits once
 * it has nothing left (child_gone() frees the slot).
 */
static void
generation_drain(uint32_t gen)
{
	int i;

	for (i = 0; i < nchildren; i++) {
		struct child *c = &children[i];

		if (c->role == PROC_PARENT || c->gen != gen)
			continue;
		c->draining = 1;
		if (child_running(c))
			imsgev_compose(&c->iev, IMSG_DRAIN, 0, -1, NULL, 0);
		else
			slot_release(c); /* was waiting to be restarted */
	}
}

/* A draining authproc's throttle counts, for the current one. */
void
policy_state_forward(struct imsg *imsg)
{
	struct child *ap = child_of_role(PROC_AUTHPROC, cur_gen);

	if (ap != NULL && child_running(ap))
		imsgev_compose(&ap->iev, IMSG_POLICY_STATE, 0, -1, imsg->data,
		    imsg->datalen);
}

struct reload_tee {
	void (*line)(void *, const char *);
	void *arg;
};

static void
reload_tee_line(int pri, const char *msg, void *arg)
{
	struct reload_tee *t = arg;

	(void)pri;
	t->line(t->arg, msg);
}

static struct postern_conf *
reload_read(void (*line)(void *, const char *), void *arg)
{
	struct reload_tee t = {line, arg};
	struct postern_conf *conf;
	int ok;

	log_tee(reload_tee_line, &t);
	conf = parse_config(env_conffile);
	ok = conf != NULL && config_check_user(conf) == 0 &&
	    keypairs_check(conf) == 0;
	log_tee(NULL, NULL);
	if (!ok) {
		free_config(conf);
		return NULL;
	}
	return conf;
}

/*
 * SIGHUP and posternctl reload.  A file with errors changes nothing
 * (each error goes to line() as well as to the log).  A good one starts
 * a new generation of children with it, which takes every new
 * connection, while the old generation drains: no session that has
 * started is cut.  Returns the exit status for posternctl.
 */
int
parent_reload(void (*line)(void *, const char *), void *arg)
{
	struct postern_conf *conf, *old = env_conf;
	char msg[128];
	int need, used;

	if (quitting)
		return 1;
	log_info("reload: reading %s", env_conffile);
	if ((conf = reload_read(line, arg)) == NULL) {
		log_warnx("reload: %s has errors; nothing changed",
		    env_conffile);
		line(arg,
		    "configuration has errors; postern goes on with the "
		    "one it runs");
		return 1;
	}
	need = 1 + conf->global.relays + conf->global.tlsprocs;
	if (free_slots() < need) {
		free_config(conf);
		log_warnx("reload: too many older generations still draining");
		line(arg,
		    "too many older generations are still draining; "
		    "nothing changed");
		return 1;
	}
	if (strcmp(conf->sandbox.chroot, old->sandbox.chroot) != 0) {
		struct stat sb;

		if (stat(conf->sandbox.chroot, &sb) == -1 ||
		    !S_ISDIR(sb.st_mode) || sb.st_uid != 0 ||
		    (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
			free_config(conf);
			line(arg,
			    "the new chroot must be a directory owned "
			    "and writable only by root; nothing changed");
			return 1;
		}
	}
	if (listeners_take_over(conf, old) == -1) {
		free_config(conf);
		line(arg,
		    "a new listener could not be bound (see the log); "
		    "nothing changed");
		return 1;
	}
	reload_unchanged(conf, line, arg);
	/* what only the parent does with the file */
	snprintf(conf->control_path, sizeof(conf->control_path), "%s",
	    old->control_path);
	if (strcmp(conf->audit_path, old->audit_path) != 0 ||
	    conf->audit_syslog != old->audit_syslog ||
	    strcmp(conf->node, old->node) != 0)
		audit_init(conf->audit_path, conf->audit_syslog, conf->node);
	if (strcmp(conf->access_path, old->access_path) != 0)
		access_init(conf->access_path);
	conf_finish(conf);
	env_conf = conf;
	cur_gen++;
	/* the slots were counted; a start that fails is retried as a crash */
	(void)generation_start(conf, cur_gen);
	/* slot_release() frees old once no child uses it, maybe right now */
	used = conf_in_use(old);
	generation_drain(cur_gen - 1);
	if (!used)
		free_config(old);
	snprintf(msg, sizeof(msg),
	    "configuration reloaded: generation %u takes new connections, "
	    "older ones finish their sessions",
	    cur_gen);
	log_info("reload: %s", msg);
	line(arg, msg);
	return 0;
}

static void
child_dispatch(int fd, short event, void *arg)
{
	struct imsgev *iev = arg;
	struct child *c = iev->data;
	struct imsg imsg;
	ssize_t n;

	(void)fd;
	if (imsgev_dispatch_io(iev, event) == -1) {
		event_del(&iev->ev);
		return; /* SIGCHLD will follow */
	}
	while ((n = imsg_get(&iev->ibuf, &imsg)) > 0) {
		child_handle(c, &imsg);
		imsg_free(&imsg);
	}
	if (n == -1) {
		log_warnx("%s sent a malformed message; restarting it",
		    proc_role_name(c->role));
		if (c->pid > 0)
			kill(c->pid, SIGKILL);
		event_del(&iev->ev);
	}
}

/* One line from a child's stderr: "<prio>text", or anything else. */
static void
child_log_line(struct child *c, char *line)
{
	char *end;
	long pri = LOG_ERR;

	const char *role = proc_role_name(c->role);
	size_t rlen = strlen(role);
	char tagged[LOGBUF_SIZE + 32];

	if (line[0] == '<') {
		pri = strtol(line + 1, &end, 10);
		if (*end == '>' && end != line + 1 && pri >= 0 &&
		    pri <= LOG_DEBUG)
			line = end + 1;
		else
			pri = LOG_ERR;
	}
	if (pri == LOG_DEBUG && !opt_verbose)
		return;
	/* emergencies and alerts are the parent's to raise (syslog may wall) */
	if (pri < LOG_CRIT)
		pri = LOG_CRIT;
	if (strncmp(line, role, rlen) == 0 && line[rlen] == ':') {
		log_emit_as(pri, NULL, line);
		return;
	}
	/*
	 * Not in the child's own name (a sanitizer report, say, or a child
	 * posing as another process): say who really wrote it.
	 */
	snprintf(tagged, sizeof(tagged), "%s: %s", role, line);
	log_emit_as(pri, NULL, tagged);
}

/* One read of a child's stderr; > 0 if it gave anything. */
static ssize_t
child_log_take(struct child *c)
{
	ssize_t n;
	char *nl, *p;

	n = read(c->logfd, c->logbuf + c->loglen,
	    sizeof(c->logbuf) - 1 - c->loglen);
	if (n <= 0) {
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (c->loglen > 0) {
			/* a last line without its newline */
			c->logbuf[c->loglen] = '\0';
			child_log_line(c, c->logbuf);
			c->loglen = 0;
		}
		event_del(&c->logev);
		close(c->logfd);
		c->logfd = -1;
		return 0;
	}
	c->loglen += n;
	c->logbuf[c->loglen] = '\0';
	p = c->logbuf;
	while ((nl = memchr(p, '\n', c->loglen - (p - c->logbuf))) != NULL) {
		*nl = '\0';
		child_log_line(c, p);
		p = nl + 1;
	}
	c->loglen -= p - c->logbuf;
	memmove(c->logbuf, p, c->loglen);
	if (c->loglen == sizeof(c->logbuf) - 1) {
		/* an over-long line is cut, never lost silently */
		c->logbuf[c->loglen] = '\0';
		child_log_line(c, c->logbuf);
		c->loglen = 0;
	}
	return n;
}

static void
child_log_read(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	child_log_take(arg);
}

static void
child_restart_cb(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	if (!quitting)
		child_spawn(arg);
}

/* Put fd at target, without close-on-exec, even if it is already there. */
static void
move_fd(int fd, int target)
{
	if (fd == target) {
		if (fcntl(fd, F_SETFD, 0) == -1)
			_exit(127);
		return;
	}
	if (dup2(fd, target) == -1)
		_exit(127);
}

/*
 * No descriptors or processes to start a child with (EMFILE, EAGAIN
 * under a tasks limit): try again in a while, as after a crash, rather
 * than take every running session down with the parent.
 */
static void
child_spawn_later(struct child *c, const char *what, int *fds, int nfds)
{
	struct timeval tv = {1, 0};
	int i;

	log_warn("cannot start %s (%s); trying again in 1 s",
	    proc_role_name(c->role), what);
	for (i = 0; i < nfds; i++)
		if (fds[i] != -1)
			close(fds[i]);
	evtimer_set(&c->restart_ev, child_restart_cb, c);
	evtimer_add(&c->restart_ev, &tv);
}

static void
child_spawn(struct child *c)
{
	int sp[2] = {-1, -1}, lp[2] = {-1, -1}, nullfd, i, fd;
	int fds[4];
	char *argv[8];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sp) == -1) {
		child_spawn_later(c, "socketpair", sp, 0);
		return;
	}
	if (pipe2(lp, O_CLOEXEC) == -1) {
		child_spawn_later(c, "pipe2", sp, 2);
		return;
	}
	/* keep the child's end away from the fd numbers we move it to */
	if ((fd = fcntl(sp[1], F_DUPFD_CLOEXEC, 10)) != -1) {
		close(sp[1]);
		sp[1] = fd;
		if ((fd = fcntl(lp[1], F_DUPFD_CLOEXEC, 10)) != -1) {
			close(lp[1]);
			lp[1] = fd;
		}
	}
	fds[0] = sp[0], fds[1] = sp[1], fds[2] = lp[0], fds[3] = lp[1];
	if (fd == -1) {
		child_spawn_later(c, "fcntl", fds, 4);
		return;
	}

	switch (pid = fork()) {
	case -1:
		child_spawn_later(c, "fork", fds, 4);
		return;
	case 0:
		if ((nullfd = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
			_exit(127);
		move_fd(nullfd, STDIN_FILENO);
		move_fd(nullfd, STDOUT_FILENO);
		move_fd(lp[1], STDERR_FILENO);
		move_fd(sp[1], CHILD_FD);
		/* nothing else we (or whoever started us) had open */
		close_range(CHILD_FD + 1, ~0U, 0);
		i = 0;
		argv[i++] = "postern";
		argv[i++] = "-X";
		argv[i++] = (char *)proc_role_name(c->role);
		if (opt_verbose)
			argv[i++] = opt_verbose > 1 ? "-vv" : "-v";
		argv[i] = NULL;
		/* the running binary, even if the file was replaced since */
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sp[1]);
	close(lp[1]);
	/* the originals beside the dups */
	c->pid = pid;
	c->started = time(NULL);
	c->logfd = lp[0];
	c->loglen = 0;
	fcntl(c->logfd, F_SETFL, O_NONBLOCK);
	event_set(&c->logev, c->logfd, EV_READ | EV_PERSIST, child_log_read, c);
	event_add(&c->logev, NULL);
	imsgev_init(&c->iev, sp[0], proc_role_name(c->role), child_dispatch, c);
	c->iev.ibuf.peerpid = pid;
	log_debug("started %s %u, pid %d", proc_role_name(c->role), c->instance,
	    pid);
	child_send_config(c);
	child_connect_peers(c);
}

/* Is any child still running with this configuration? */
static int
conf_in_use(const struct postern_conf *conf)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].role != PROC_PARENT && children[i].conf == conf)
			return 1;
	return 0;
}

/* A drained child's slot is free again, and maybe its configuration. */
static void
slot_release(struct child *c)
{
	struct postern_conf *conf = c->conf;

	if (evtimer_initialized(&c->restart_ev))
		evtimer_del(&c->restart_ev);
	memset(c, 0, sizeof(*c));
	c->role = PROC_PARENT; /* unused */
	c->logfd = -1;
	c->iev.ibuf.fd = -1;
	if (conf != env_conf && !conf_in_use(conf))
		free_config(conf);
}

static struct child *
slot_alloc(void)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].role == PROC_PARENT)
			return &children[i];
	if (nchildren == CTL_MAX_SLOTS)
		return NULL;
	return &children[nchildren++];
}

/* The children one configuration needs: slots first, then started. */
static int
generation_start(struct postern_conf *conf, uint32_t gen)
{
	struct child *started[MAX_CHILDREN], *c;
	uint32_t k, count;
	int r, n = 0;

	for (r = 0; r < (int)(sizeof(child_roles) / sizeof(child_roles[0]));
	     r++) {
		count = role_count(conf, child_roles[r]);
		for (k = 0; k < count; k++) {
			if ((c = slot_alloc()) == NULL) {
				/* undo: nothing of this generation started */
				while (n > 0)
					started[--n]->role = PROC_PARENT;
				return -1;
			}
			memset(c, 0, sizeof(*c));
			c->role = child_roles[r];
			c->instance = k;
			c->logfd = -1;
			c->backoff_ms = RESTART_MIN_MS;
			c->gen = gen;
			c->conf = conf;
			started[n++] = c;
		}
	}
	/* all slots first: each start pairs with the others running */
	for (r = 0; r < n; r++)
		child_spawn(started[r]);
	return 0;
}

/*
 * What a dead child sent before it died: its last audit records (on
 * SIGTERM it writes out its whole queue, more than one read) and its
 * last log lines.  Bounded, as a compromised child may have handed its
 * ends to a process that still writes.
 */
static void
child_drain(struct child *c)
{
	struct pollfd pfd;
	int i;

	for (i = 0; i < CHILD_DRAIN_READS && c->iev.ibuf.fd != -1; i++) {
		pfd.fd = c->iev.ibuf.fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) != 1)
			break;
		child_dispatch(pfd.fd, EV_READ, &c->iev);
		/* its end of the channel is closed: all is read */
		if (!event_pending(&c->iev.ev, EV_READ, NULL))
			break;
	}
	for (i = 0; i < CHILD_DRAIN_READS && c->logfd != -1; i++)
		if (child_log_take(c) == 0)
			break;
}

static void
child_gone(struct child *c, int status)
{
	int delay_ms;

	if (WIFSIGNALED(status))
		log_warnx("%s (pid %d) terminated by signal %d (%s)",
		    proc_role_name(c->role), c->pid, WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else if ((!quitting && !c->draining) || WEXITSTATUS(status) != 0)
		log_warnx("%s (pid %d) exited with status %d",
		    proc_role_name(c->role), c->pid, WEXITSTATUS(status));
	c->pid = 0;
	child_drain(c);
	imsgev_clear(&c->iev);
	control_child_gone(c - children);
	if (c->logfd != -1) {
		event_del(&c->logev);
		close(c->logfd);
		c->logfd = -1;
	}
	if (quitting)
		return;
	if (c->draining) {
		log_info("%s %u of generation %u drained",
		    proc_role_name(c->role), c->instance, c->gen);
		slot_release(c);
		return;
	}
	restarts[c->role]++;
	if (time(NULL) - c->started >= RESTART_STABLE_SEC)
		c->backoff_ms = RESTART_MIN_MS;
	delay_ms = c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS
							   : c->backoff_ms * 2;
	log_warnx("restarting %s in %d ms", proc_role_name(c->role), delay_ms);
	{
		struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

		evtimer_set(&c->restart_ev, child_restart_cb, c);
		evtimer_add(&c->restart_ev, &tv);
	}
}

/* flags: WNOHANG, or 0 to wait for every child */
static void
reap_children(int flags)
{
	pid_t pid;
	int status, r;

	while ((pid = waitpid(-1, &status, flags)) > 0) {
		for (r = 0; r < nchildren; r++) {
			if (children[r].pid == pid) {
				child_gone(&children[r], status);
				break;
			}
		}
	}
}

/*
 * Waiting for children, read what they still say: a child whose log
 * pipe is full blocks in write(2) and never exits (a relay that has
 * just closed a thousand sessions has that many lines to write), and
 * audit records still in a channel are flushed by the child on its way
 * out.  Returns once something was read or ms have passed.
 */
static void
shutdown_listen(int ms)
{
	struct pollfd pfd[2 * CTL_MAX_SLOTS];
	struct child *owner[2 * CTL_MAX_SLOTS];
	int r, n = 0, i;

	for (r = 0; r < nchildren; r++) {
		if (children[r].logfd != -1) {
			pfd[n].fd = children[r].logfd;
			pfd[n].events = POLLIN;
			owner[n++] = &children[r];
		}
		if (children[r].pid > 0 && children[r].iev.ibuf.fd != -1 &&
		    event_pending(&children[r].iev.ev, EV_READ, NULL)) {
			pfd[n].fd = children[r].iev.ibuf.fd;
			pfd[n].events = POLLIN;
			owner[n++] = &children[r];
		}
	}
	if (poll(pfd, n, ms) <= 0)
		return;
	for (i = 0; i < n; i++) {
		if (pfd[i].revents == 0)
			continue;
		if (pfd[i].fd == owner[i]->logfd)
			child_log_read(pfd[i].fd, EV_READ, owner[i]);
		else
			child_dispatch(pfd[i].fd, EV_READ, &owner[i]->iev);
	}
}

static void
shutdown_children(void)
{
	uint64_t start;
	int r, alive;

	quitting = 1;
	for (r = 0; r < nchildren; r++)
		if (children[r].pid > 0)
			kill(children[r].pid, SIGTERM);
	start = monotonic_us();
	while (monotonic_us() - start < SHUTDOWN_WAIT_MS * 1000ULL) {
		reap_children(WNOHANG);
		for (alive = 0, r = 0; r < nchildren; r++)
			alive += children[r].pid > 0;
		if (!alive)
			return;
		shutdown_listen(20);
	}
	for (r = 0; r < nchildren; r++)
		if (children[r].pid > 0) {
			log_warnx("%s did not stop; killing it",
			    proc_role_name(children[r].role));
			kill(children[r].pid, SIGKILL);
		}
	/* with what they said before they hung */
	reap_children(0);
}

static void
reload_nowhere(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static void
parent_sig(int sig, short event, void *arg)
{
	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received signal %d, shutting down", sig);
		control_cleanup();
		shutdown_children();
		event_loopexit(NULL);
		break;
	case SIGCHLD:
		reap_children(WNOHANG);
		break;
	case SIGHUP:
		(void)parent_reload(reload_nowhere, NULL);
		break;
	case SIGUSR1:
		log_info("reopening the audit and access logs");
		parent_logs_reopen();
		break;
	}
}

/*
 * Every relayed session holds two descriptors in a relay, so the limit
 * an init system hands us (often 1024, or a hard 4096 to 20000) caps the
 * sessions a relay can carry.  As root we may raise the hard limit too,
 * up to the kernel's nr_open; the children inherit it.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = POSTERN_NOFILE;
	FILE *f;
	unsigned long long nr_open;

	if ((f = fopen("/proc/sys/fs/nr_open", "r")) != NULL) {
		if (fscanf(f, "%llu", &nr_open) == 1 && nr_open < want)
			want = nr_open;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_max < want) {
		struct rlimit more = {want, want};

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int
main(int argc, char *argv[])
{
	const char *conffile = POSTERN_CONF;
	const char *role = NULL;
	int ch, noaction = 0, r;
	ssize_t n;
	struct event ev_sigterm, ev_sigint, ev_sigchld, ev_sighup;
	struct event ev_sigusr1;

	while ((ch = getopt(argc, argv, "df:nvX:")) != -1) {
		switch (ch) {
		case 'd':
			opt_debug = 1;
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'v':
			opt_verbose++;
			break;
		case 'X':
			role = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0)
		usage();

	if (role != NULL) {
		if ((r = role_from_name(role)) == -1)
			errx(1, "unknown process role %s", role);
		log_init(LOG_TO_PARENT, opt_verbose, role);
		return child_main(r, argc, argv);
	}

	log_init(LOG_TO_STDERR, opt_verbose, "postern");
	env_conffile = conffile;
	if ((env_conf = parse_config(conffile)) == NULL)
		exit(1);
	if (config_check_user(env_conf) == -1 || keypairs_check(env_conf) == -1)
		exit(1);
	if (noaction) {
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	if (geteuid() != 0)
		fatalx("must be started as root");
	if ((n = readlink("/proc/self/exe", self_path,
		 sizeof(self_path) - 1)) == -1)
		fatal("readlink /proc/self/exe");
	self_path[n] = '\0';

	chroot_prepare(env_conf->sandbox.chroot);
	raise_fd_limit();
	listeners_bind(env_conf);
	control_listen(env_conf->control_path, env_conf->control_group);
	if (env_conf->metrics)
		metrics_listen(&env_conf->metrics_addr);

	if (!opt_debug) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(LOG_TO_SYSLOG, opt_verbose, "parent");
	} else
		log_procname("parent");

	event_init();
	proc_log_defer();
	signal(SIGPIPE, SIG_IGN);
	signal_set(&ev_sigterm, SIGTERM, parent_sig, NULL);
	signal_set(&ev_sigint, SIGINT, parent_sig, NULL);
	signal_set(&ev_sigchld, SIGCHLD, parent_sig, NULL);
	signal_set(&ev_sighup, SIGHUP, parent_sig, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sigchld, NULL);
	signal_add(&ev_sighup, NULL);
	signal_set(&ev_sigusr1, SIGUSR1, parent_sig, NULL);
	signal_add(&ev_sigusr1, NULL);
	audit_init(env_conf->audit_path, env_conf->audit_syslog,
	    env_conf->node);
	access_init(env_conf->access_path);
	conf_finish(env_conf);

	if (generation_start(env_conf, cur_gen) == -1)
		fatalx("no room for the children");
	control_start();
	metrics_start();
	log_info("postern started");
	event_dispatch();
	log_info("postern stopped");
	return 0;
}

/* A re-executed child: become the role the parent asked for. */
int
child_main(enum proc_role role, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	switch (role) {
	case PROC_AUTHPROC:
		authproc_main();
	case PROC_RELAY:
		relay_main();
	case PROC_TLSPROC:
		tlsproc_main();
	default:
		fatalx("no such role");
	}
}
