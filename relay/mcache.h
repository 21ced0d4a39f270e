/*
 * relay's memcached client (mcache.c) and the derivation of every key it
 * uses (mckey.c).  Keys are never built from raw client text: each is a
 * fixed prefix, a namespace letter and the SHA-256 of the bytes that
 * identify the entry, so no user name can inject a command, exceed the
 * key length or collide with another entry.
 */
#ifndef POSTERN_MCACHE_H
#define POSTERN_MCACHE_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define MC_MAX_KEYS  8
#define MC_KEY_MAX   96
#define MC_VALUE_MAX 512
#define MC_QUEUE_MAX 4096

enum mc_op { MC_COUNTER_GET, MC_COUNTER_INCR, MC_GET, MC_SET, MC_DELETE };

struct mc_job {
	TAILQ_ENTRY(mc_job) entry;
	enum mc_op op;
	int nkeys;
	char keys[MC_MAX_KEYS][MC_KEY_MAX];
	uint64_t values[MC_MAX_KEYS]; /* counters read or incremented */
	uint32_t ttl;		      /* s, for MC_SET and MC_COUNTER_INCR */
	char value[MC_VALUE_MAX];     /* MC_GET result, MC_SET input */
	size_t valuelen;
	int ok;	     /* the store answered */
	int found;   /* MC_GET: the key was there */
	int skipped; /* never sent: backing off, or too late to matter */
	char error[96];
	void (*done)(struct mc_job *);
	void *arg;
	uint64_t cookie;   /* the caller's, to find its owner again */
	uint64_t stamp_ms; /* the caller's clock when it made the job */
	uint32_t seq;	   /* the caller's */
	uint64_t submitted_us; /* for the latency histogram */
};

/* mcache.c */
void mcache_init(const struct conf_memcache *);
void mcache_start(void);
int mcache_configured(void);
int mcache_available(void);
struct mc_job *mcache_job(enum mc_op, void (*)(struct mc_job *), void *);
int mcache_submit(struct mc_job *);
size_t mcache_queued(void);
void mcache_cancel(struct mc_job *);

/* mckey.c */
#define MCKEY_PREFIX "postern:"
int mckey_derive(char *, size_t, char ns, const void *, size_t);
int mckey_counter(char *, size_t, const void *, size_t, uint64_t bucket);

#endif
