/*
 * The privileged parent: configuration, listeners, child supervision.
 */
#ifndef POSTERN_PARENT_H
#define POSTERN_PARENT_H

#include <sys/queue.h>

#include <sys/types.h>

#include "policy.h"
#include "proto.h"

#define POSTERN_CONF   "/etc/postern/postern.conf"
#define POSTERN_USER   "_postern"
#define POSTERN_CHROOT "/var/empty"

struct listener {
	TAILQ_ENTRY(listener) entry;
	struct conf_listener conf;
	int fd;
};
TAILQ_HEAD(listenerlist, listener);

struct keypair {
	TAILQ_ENTRY(keypair) entry;
	struct conf_keypair conf;
	char cert[256];
	char key[256];
	char ocsp[256];
};
TAILQ_HEAD(keypairlist, keypair);

struct upstream {
	TAILQ_ENTRY(upstream) entry;
	struct conf_upstream conf;
	char ca[256];
	char host[256];
	int imap_port;
	int pop3_port;
	int http_port;
	int tls_opts; /* tls ca, name or no-verify given */
};
TAILQ_HEAD(upstreamlist, upstream);

struct route {
	TAILQ_ENTRY(route) entry;
	struct conf_route conf;
};
TAILQ_HEAD(routelist, route);

struct pool {
	TAILQ_ENTRY(pool) entry;
	struct conf_pool conf;
};
TAILQ_HEAD(poollist, pool);

struct postern_conf {
	char user[64];
	char node[64];
	char audit_path[256];
	char access_path[256];
	int audit_syslog;
	struct conf_sandbox sandbox;
	struct conf_global global;
	struct conf_tls_global tls;
	struct conf_policy policy;
	struct conf_memcache memcache;
	struct conf_lookup lookup;
	struct conf_http http;
	char http_fallback[NAME_MAX_LEN + 1]; /* resolved after parsing */
	struct poollist pools;
	struct keypairlist keypairs;
	struct listenerlist listeners;
	struct upstreamlist upstreams;
	struct routelist routes;
	uint32_t next_id;
};

/* audit.c */
void audit_init(const char *path, int use_syslog, const char *node);
void audit_reopen(void);
void audit_write(const struct audit_record *, const char *listener);
void access_init(const char *path);
void access_reopen(void);
void access_write(const struct access_record *);
ssize_t access_format(char *, size_t, const struct access_record *);
ssize_t audit_format(char *, size_t, const struct audit_record *,
    const char *node, const char *listener);

/* parse.y */
struct postern_conf *parse_config(const char *path);
void free_config(struct postern_conf *);

/* parent.c */
int child_main(enum proc_role, int argc, char **argv);

#endif
