/*
 * relay's memcached client.  libmemcached blocks while it waits for a
 * server, so every operation runs in one worker thread; the event loop
 * only queues jobs and picks up finished ones through a pipe, and no
 * relayed session waits on memcached.  The thread is started after the
 * sandbox is entered, so it inherits the seccomp filter, the Landlock
 * domain and the dropped credentials.
 *
 * A failed operation (a server down, refusing, or slower than the
 * operation time-out) closes every connection, so no late reply can be
 * read as the answer to a later request, and memcached is skipped for
 * the back-off period: callers fall back at once instead of queueing
 * behind a dead server.  Replies to multi-key reads are matched to
 * their requests by key.
 */
#include <sys/queue.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event.h>
#include <libmemcached/memcached.h>

#include "log.h"
#include "mcache.h"

static memcached_st *mc;
static struct conf_memcache mc_conf;
static pthread_t mc_thread;
static pthread_mutex_t mc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mc_cond = PTHREAD_COND_INITIALIZER;
static TAILQ_HEAD(, mc_job) mc_todo = TAILQ_HEAD_INITIALIZER(mc_todo);
static TAILQ_HEAD(, mc_job) mc_done = TAILQ_HEAD_INITIALIZER(mc_done);
static size_t mc_queued;
static int mc_wake[2] = {-1, -1};
static struct event mc_wake_ev;
static _Atomic uint64_t mc_down_until; /* ms, monotonic */
static int mc_reported_down;
static int mc_running;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
mcache_queued(void)
{
	return mc_queued;
}

int
mcache_configured(void)
{
	return mc != NULL;
}

/* Is memcached worth asking now, or inside its back-off period? */
int
mcache_available(void)
{
	return mc_running && mono_ms() >= atomic_load(&mc_down_until);
}

/*
 * Set-up, before the sandbox: server addresses are numeric, so
 * libmemcached never needs a resolver inside the chroot.
 */
void
mcache_init(const struct conf_memcache *conf)
{
	char host[64];
	uint32_t i;

	mc_conf = *conf;
	if (conf->nservers == 0)
		return;
	if ((mc = memcached_create(NULL)) == NULL)
		fatalx("memcached_create");
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	    MEMCACHED_DISTRIBUTION_CONSISTENT);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
	    conf->timeout_ms);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
	    conf->timeout_ms);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
	    (uint64_t)conf->timeout_ms * 1000);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
	    (uint64_t)conf->timeout_ms * 1000);
	/*
	 * A failed server is retried a second later: by the time our own
	 * back-off (two seconds at least) ends, libmemcached will try it
	 * again.  Servers are not ejected from the ring: libmemcached 1.1
	 * never brings an ejected server back.
	 */
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DEAD_TIMEOUT, 1);
	for (i = 0; i < conf->nservers && i < MCACHE_MAX_SERVERS; i++) {
		if (sockaddr_host(&conf->servers[i], host, sizeof(host)) ==
		    NULL)
			fatalx("memcached server %u: bad address", i);
		if (memcached_server_add(mc, host,
			sockaddr_port(&conf->servers[i])) != MEMCACHED_SUCCESS)
			fatalx("memcached server %s: %s", host,
			    memcached_last_error_message(mc));
	}
	if (pipe2(mc_wake, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe2");
}

static int
mc_failed(memcached_return_t rc)
{
	return rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND &&
	    rc != MEMCACHED_END && rc != MEMCACHED_NOTSTORED &&
	    rc != MEMCACHED_DATA_EXISTS;
}

static void
mc_error(struct mc_job *job, memcached_return_t rc)
{
	job->ok = 0;
	int err = memcached_last_error_errno(mc);

	/* libmemcached's own message holds pointers: not for logs */
	snprintf(job->error, sizeof(job->error), "%s%s%s",
	    memcached_strerror(mc, rc), err ? ": " : "",
	    err ? strerror(err) : "");
}

/* Counter reads: one multi-get, each value matched back by its key. */
static void
mc_run_counter_get(struct mc_job *job)
{
	const char *keys[MC_MAX_KEYS];
	size_t lens[MC_MAX_KEYS];
	memcached_result_st *res;
	memcached_return_t rc;
	char num[24];
	int i;

	for (i = 0; i < job->nkeys; i++) {
		keys[i] = job->keys[i];
		lens[i] = strlen(job->keys[i]);
		job->values[i] = 0;
	}
	if ((rc = memcached_mget(mc, keys, lens, job->nkeys)) !=
	    MEMCACHED_SUCCESS) {
		mc_error(job, rc);
		return;
	}
	while ((res = memcached_fetch_result(mc, NULL, &rc)) != NULL) {
		const char *k = memcached_result_key_value(res);
		size_t klen = memcached_result_key_length(res);
		size_t vlen = memcached_result_length(res);

		for (i = 0; i < job->nkeys; i++)
			if (klen == lens[i] && memcmp(k, keys[i], klen) == 0)
				break;
		if (i < job->nkeys && vlen > 0 && vlen < sizeof(num)) {
			memcpy(num, memcached_result_value(res), vlen);
			num[vlen] = '\0';
			job->values[i] = strtoull(num, NULL, 10);
		}
		memcached_result_free(res);
	}
	if (mc_failed(rc))
		mc_error(job, rc);
}

static void
mc_run_counter_incr(struct mc_job *job)
{
	memcached_return_t rc;
	uint64_t v;
	int i;

	for (i = 0; i < job->nkeys; i++) {
		rc = memcached_increment_with_initial(mc, job->keys[i],
		    strlen(job->keys[i]), 1, 1, job->ttl, &v);
		if (mc_failed(rc)) {
			mc_error(job, rc);
			return;
		}
		job->values[i] = v;
	}
}

static void
mc_run_get(struct mc_job *job)
{
	memcached_return_t rc;
	uint32_t flags;
	size_t len;
	char *v;

	v = memcached_get(mc, job->keys[0], strlen(job->keys[0]), &len, &flags,
	    &rc);
	if (v == NULL) {
		if (mc_failed(rc))
			mc_error(job, rc);
		return;
	}
	if (len < sizeof(job->value)) {
		memcpy(job->value, v, len);
		job->value[len] = '\0';
		job->valuelen = len;
		job->found = 1;
	}
	free(v);
}

static void
mc_run_set(struct mc_job *job)
{
	memcached_return_t rc;

	rc = memcached_set(mc, job->keys[0], strlen(job->keys[0]), job->value,
	    job->valuelen, job->ttl, 0);
	if (mc_failed(rc))
		mc_error(job, rc);
}

static void
mc_run_delete(struct mc_job *job)
{
	memcached_return_t rc;
	int i, n = job->nkeys > 0 ? job->nkeys : 1;

	for (i = 0; i < n; i++) {
		rc = memcached_delete(mc, job->keys[i], strlen(job->keys[i]),
		    0);
		if (mc_failed(rc)) {
			mc_error(job, rc);
			return;
		}
	}
}

static void
mc_run(struct mc_job *job)
{
	job->ok = 1;
	if (mono_ms() < atomic_load(&mc_down_until)) {
		job->ok = 0;
		job->skipped = 1;
		return;
	}
	/* authproc stops waiting for counters after 2 s: skip stale reads */
	if (job->op == MC_COUNTER_GET &&
	    wallclock_ms() > job->stamp_ms + 2000) {
		job->ok = 0;
		job->skipped = 1;
		return;
	}
	switch (job->op) {
	case MC_COUNTER_GET:
		mc_run_counter_get(job);
		break;
	case MC_COUNTER_INCR:
		mc_run_counter_incr(job);
		break;
	case MC_GET:
		mc_run_get(job);
		break;
	case MC_SET:
		mc_run_set(job);
		break;
	case MC_DELETE:
		mc_run_delete(job);
		break;
	}
	if (!job->ok) {
		/* drop every connection: nothing late may be read later */
		memcached_quit(mc);
		atomic_store(&mc_down_until,
		    mono_ms() + (uint64_t)mc_conf.backoff_s * 1000);
	}
}

static void *
mc_worker(void *arg)
{
	struct mc_job *job;
	char c = 1;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mc_lock);
		while ((job = TAILQ_FIRST(&mc_todo)) == NULL)
			pthread_cond_wait(&mc_cond, &mc_lock);
		TAILQ_REMOVE(&mc_todo, job, entry);
		pthread_mutex_unlock(&mc_lock);

		mc_run(job);

		pthread_mutex_lock(&mc_lock);
		TAILQ_INSERT_TAIL(&mc_done, job, entry);
		pthread_mutex_unlock(&mc_lock);
		/* a full pipe already holds a wake-up: EAGAIN is fine */
		while (write(mc_wake[1], &c, 1) == -1 && errno == EINTR)
			;
	}
	return NULL;
}

static void
mc_report(const struct mc_job *job)
{
	if (!job->ok && !mc_reported_down) {
		log_warnx("memcached unavailable (%s): skipping it for %u s; "
			  "throttle counters are this node's own meanwhile",
		    job->error, mc_conf.backoff_s);
		mc_reported_down = 1;
	} else if (job->ok && mc_reported_down) {
		log_info("memcached reachable again");
		mc_reported_down = 0;
	}
}

static void
mc_collect(int fd, short event, void *arg)
{
	TAILQ_HEAD(, mc_job) finished = TAILQ_HEAD_INITIALIZER(finished);
	struct mc_job *job;
	char buf[256];

	(void)event;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&mc_lock);
	TAILQ_CONCAT(&finished, &mc_done, entry);
	pthread_mutex_unlock(&mc_lock);
	while ((job = TAILQ_FIRST(&finished)) != NULL) {
		TAILQ_REMOVE(&finished, job, entry);
		mc_queued--;
		if (!job->skipped) {
			mc_report(job);
			ctl_hist_observe(&proc_stats.memcache,
			    monotonic_us() - job->submitted_us);
			if (!job->ok)
				proc_stats.memcache.errors++;
		}
		if (job->done != NULL)
			job->done(job);
		free(job);
	}
}

/* After the sandbox: the worker inherits every restriction. */
void
mcache_start(void)
{
	sigset_t all, old;
	int rc;

	if (mc == NULL)
		return;
	event_set(&mc_wake_ev, mc_wake[0], EV_READ | EV_PERSIST, mc_collect,
	    NULL);
	event_add(&mc_wake_ev, NULL);
	/* signals are for the event loop's thread only */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&mc_thread, NULL, mc_worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		fatalx("memcached worker: %s", strerror(rc));
	mc_running = 1;
}

struct mc_job *
mcache_job(enum mc_op op, void (*done)(struct mc_job *), void *arg)
{
	struct mc_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		fatal("calloc");
	job->op = op;
	job->done = done;
	job->arg = arg;
	return job;
}

/*
 * Queue a job; its done callback runs later in the event loop.  Fails
 * (and frees the job) when memcached is backing off or the queue is
 * full, so the caller falls back at once.
 */
int
mcache_submit(struct mc_job *job)
{
	if (!mcache_available() || mc_queued >= MC_QUEUE_MAX) {
		free(job);
		return -1;
	}
	mc_queued++;
	job->submitted_us = monotonic_us();
	pthread_mutex_lock(&mc_lock);
	TAILQ_INSERT_TAIL(&mc_todo, job, entry);
	pthread_cond_signal(&mc_cond);
	pthread_mutex_unlock(&mc_lock);
	return 0;
}

/* The job's owner went away: let it finish, but call nobody. */
void
mcache_cancel(struct mc_job *job)
{
	job->done = NULL;
	job->arg = NULL;
}
