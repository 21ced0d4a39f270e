/*
 * The privileged parent: configuration, listeners, child supervision.
 */
#ifndef POSTERN_PARENT_H
#define POSTERN_PARENT_H

#include <sys/queue.h>

#include <sys/types.h>

#include <event.h>

#include "policy.h"
#include "proto.h"

#define POSTERN_CONF   "/etc/postern/postern.conf"
#define POSTERN_USER   "_postern"
#define POSTERN_CHROOT "/var/empty"
#define POSTERN_CONTROL "/run/postern/postern.sock"

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
	char control_path[108]; /* sun_path; empty: no control socket */
	char control_group[64]; /* may show, not change */
	int metrics;
	struct sockaddr_storage metrics_addr;
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

/*
 * Child slots: one generation is a set of children started with one
 * configuration; after a reload older generations drain beside the new
 * one, so there is room for several.
 */
#define MAX_GENERATIONS 16
#define CTL_MAX_SLOTS	((1 + MAX_RELAYS + MAX_TLSPROCS) * MAX_GENERATIONS)
#define SLOT_WORDS	((CTL_MAX_SLOTS + 63) / 64)
#define SLOT_SET(a, i)	((a)[(i) / 64] |= 1ull << ((i) % 64))
#define SLOT_CLR(a, i)	((a)[(i) / 64] &= ~(1ull << ((i) % 64)))
#define SLOT_ISSET(a, i) (((a)[(i) / 64] >> ((i) % 64)) & 1)

/* control.c: one posternctl command, or a metrics scrape, gathering */
struct ctl_upstream_row {
	uint32_t relay; /* instance */
	int slot;
	struct ctl_upstream u;
};

struct ctl_listener_row {
	char name[NAME_MAX_LEN + 1];
	uint64_t handshakes;
	uint64_t failures;
};

#define CTL_MAX_ROWS	  4096	 /* per child and answer, sessions aside */
#define CTL_MAX_SESSIONS  100000 /* rows of show sessions */
#define CTL_MAX_FORGET	  1024	 /* address+user pairs one unblock drops */

struct ctl_handler_row {
	uint32_t relay;
	struct ctl_handler h;
};

struct ctl_gather {
	TAILQ_ENTRY(ctl_gather) entry;
	uint32_t id; /* the children's answers carry it as peerid */
	struct ctl_query query;
	uint64_t asked[SLOT_WORDS]; /* children slots yet to answer */
	int waiting;
	int incomplete; /* some child did not answer in time */
	int failed;	/* some child could not do it */
	uint32_t count;
	struct event timer;
	struct ctl_stats stats;
	struct ctl_session *sessions;
	size_t nsessions, capsessions;
	struct ctl_upstream_row *upstreams;
	size_t nupstreams, capupstreams;
	struct ctl_handler_row *handlers;
	size_t nhandlers, caphandlers;
	struct ctl_listener_row *listeners;
	size_t nlisteners, caplisteners;
	struct counter_forget *forget;
	size_t nforget, capforget;
	uint32_t rows[CTL_MAX_SLOTS];
	uint64_t got_stats[SLOT_WORDS];
	int truncated; /* more sessions than shown */
	void (*finish)(struct ctl_gather *);
	void *arg;
};

#define CTL_ONE_CHILD 0x80000000u /* roles: the first running one only */

int control_listen(const char *path, const char *group);
void control_start(void);
void control_cleanup(void);
struct ctl_gather *control_collect(const struct ctl_query *, uint32_t roles,
    void (*)(struct ctl_gather *), void *);
void control_gather_free(struct ctl_gather *);
int control_child_answer(int slot, enum proc_role, uint32_t instance,
    struct imsg *);
void control_stats_seen(int slot, const struct ctl_stats *);
void control_child_gone(int slot);
void conn_text_line(void *, const char *);

/* metrics.c */
#define METRICS_REQUEST_MAX 4096
enum metrics_ask {
	METRICS_INCOMPLETE,
	METRICS_SCRAPE,
	METRICS_NOT_FOUND,
	METRICS_BAD_METHOD,
	METRICS_TOO_LARGE
};
enum metrics_ask metrics_classify(const char *, size_t);
int metrics_listen(const struct sockaddr_storage *);
void metrics_start(void);
ssize_t metrics_render(struct evbuffer *, const struct ctl_gather *);

/* parse.y */
struct postern_conf *parse_config(const char *path);
void free_config(struct postern_conf *);

/* parent.c */
int child_main(enum proc_role, int argc, char **argv);
int children_query(uint32_t id, const struct ctl_query *, uint32_t roles,
    uint64_t *asked);
void policy_state_forward(struct imsg *);
const char *parent_listener_name(uint32_t id);
const char *child_listener_name(int slot, uint32_t id);
int children_forget(const struct counter_forget *);
uint64_t parent_restarts(enum proc_role);
int parent_counters_shared(void);
void parent_logs_reopen(void);
int parent_reload(void (*)(void *, const char *), void *);

#endif
