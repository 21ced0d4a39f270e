/*
 * The shared throttle counter service.  authproc has no network access,
 * so it asks relay to read or bump the counters of one attempt; relay
 * derives the memcached keys itself from the counter kind, the client's
 * address and the user name, so a compromised authproc can do nothing
 * in memcached but count attempts.
 *
 * Each counter is two memcached keys, one per window bucket, bumped with
 * an atomic increment; the window estimate is computed as for the local
 * table (policy/window.c).  Nodes must agree on the time (NTP): buckets
 * are numbered from the wall clock.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mcache.h"
#include "policy.h"
#include "relay.h"

struct conf_policy relay_policy;

static int
counter_keys(struct mc_job *job, const struct counter_op *op, uint64_t now,
    int both_buckets)
{
	unsigned char key[POLICY_KEY_MAX];
	const struct policy_limit *lim;
	uint64_t bucket;
	size_t len;
	int kind;

	for (kind = COUNT_IP; kind <= COUNT_IPUSER_FAIL; kind++) {
		if ((op->kinds & (1u << kind)) == 0)
			continue;
		lim = policy_limit(kind);
		if (lim->max == 0 || lim->window == 0)
			continue;
		bucket = now / ((uint64_t)lim->window * 1000);
		len = policy_key(key, kind, &op->client, op->user, op->budget);
		if (job->nkeys + 2 > MC_MAX_KEYS ||
		    mckey_counter(job->keys[job->nkeys], MC_KEY_MAX, key, len,
			bucket) == -1)
			return -1;
		job->nkeys++;
		if (!both_buckets)
			continue;
		if (mckey_counter(job->keys[job->nkeys], MC_KEY_MAX, key, len,
			bucket - 1) == -1)
			return -1;
		job->nkeys++;
	}
	return 0;
}

static void
counter_reply(uint32_t id, uint64_t gen, const struct counter_values *cv)
{
	struct imsgev *iev = relay_authproc_channel(gen);

	if (iev != NULL)
		imsgev_compose(iev, IMSG_COUNTER_VALUES, id, -1, cv,
		    sizeof(*cv));
}

static void
counter_query_done(struct mc_job *job)
{
	struct counter_values cv;
	struct window_counter w;
	const struct policy_limit *lim;
	uint32_t kinds = (uint32_t)(job->cookie >> 32);
	int kind, i = 0;

	memset(&cv, 0, sizeof(cv));
	cv.ok = job->ok;
	cv.seq = job->seq;
	for (kind = COUNT_IP; job->ok && kind <= COUNT_IPUSER_FAIL; kind++) {
		if ((kinds & (1u << kind)) == 0)
			continue;
		lim = policy_limit(kind);
		if (lim->max == 0 || lim->window == 0)
			continue;
		/* the buckets the keys were made for, not today's */
		w.bucket = job->stamp_ms / ((uint64_t)lim->window * 1000);
		w.cur =
		    job->values[i] > UINT32_MAX ? UINT32_MAX : job->values[i];
		w.prev = job->values[i + 1] > UINT32_MAX ? UINT32_MAX
							 : job->values[i + 1];
		cv.values[kind] =
		    window_estimate(&w, job->stamp_ms, lim->window);
		i += 2;
	}
	counter_reply((uint32_t)job->cookie, (uint64_t)(uintptr_t)job->arg,
	    &cv);
}

void
counter_query(uint32_t id, uint64_t gen, const struct counter_op *op)
{
	struct counter_values cv;
	struct mc_job *job;

	job = mcache_job(MC_COUNTER_GET, counter_query_done,
	    (void *)(uintptr_t)gen);
	job->cookie = (uint64_t)op->kinds << 32 | id;
	job->seq = op->seq;
	job->stamp_ms = wallclock_ms();
	if (counter_keys(job, op, job->stamp_ms, 1) == -1 || job->nkeys == 0) {
		free(job);
		job = NULL;
	}
	/* route lookups must not queue behind a flood of queries */
	if (job != NULL && mcache_queued() > MC_QUEUE_MAX / 2) {
		free(job);
		job = NULL;
	}
	if (job != NULL && mcache_submit(job) == 0)
		return;
	/* no shared store now: authproc decides from its own table */
	memset(&cv, 0, sizeof(cv));
	cv.seq = op->seq;
	counter_reply(id, gen, &cv);
}

/*
 * posternctl unblock, through authproc: drop the counters' keys, this
 * bucket's and the last.  Returns -1 for a request that makes no sense.
 */
int
counter_forget(const struct counter_forget *f)
{
	const uint32_t known = 1 << COUNT_IP | 1 << COUNT_USER |
	    1 << COUNT_IP_FAIL | 1 << COUNT_IPUSER_FAIL;
	struct counter_op op;
	struct mc_job *job;

	if (f->kinds == 0 || (f->kinds & ~known) != 0 || f->budget > 1 ||
	    !imsg_string_ok(f->user, sizeof(f->user)) ||
	    (f->kinds != 1u << COUNT_USER && !sockaddr_valid(&f->client)))
		return -1;
	memset(&op, 0, sizeof(op));
	op.kinds = f->kinds;
	op.client = f->client;
	op.budget = f->budget;
	memcpy(op.user, f->user, sizeof(op.user));
	job = mcache_job(MC_DELETE, NULL, NULL);
	job->stamp_ms = wallclock_ms();
	if (counter_keys(job, &op, job->stamp_ms, 1) == -1 || job->nkeys == 0) {
		free(job);
		return 0;
	}
	(void)mcache_submit(job);
	return 0;
}

static void
counter_add(const struct counter_op *op)
{
	struct mc_job *job;
	uint64_t now = wallclock_ms();
	uint32_t window = 0;
	int kind;

	job = mcache_job(MC_COUNTER_INCR, NULL, NULL);
	job->stamp_ms = now;
	for (kind = COUNT_IP; kind <= COUNT_IPUSER_FAIL; kind++)
		if ((op->kinds & (1u << kind)) &&
		    policy_limit(kind)->window > window)
			window = policy_limit(kind)->window;
	/* a bucket is read for two windows after it starts */
	job->ttl = window * 2 + 60;
	if (counter_keys(job, op, now, 0) == -1 || job->nkeys == 0) {
		free(job);
		return;
	}
	(void)mcache_submit(job);
}

/*
 * relay itself counts what it sees: every attempt authproc hands it and
 * every refused login.  authproc may only read counters, so even a
 * compromised authproc cannot lock a user out on every node.
 */
static void
counter_bump(const struct login_request *req, uint32_t kinds)
{
	struct counter_op op;

	memset(&op, 0, sizeof(op));
	op.kinds = kinds;
	op.budget = policy_budget(req->proto);
	op.client = req->client;
	memcpy(op.user, req->user, sizeof(op.user));
	op.user[sizeof(op.user) - 1] = '\0';
	if (op.kinds != 0)
		counter_add(&op);
}

void
counter_attempt(const struct login_request *req)
{
	counter_bump(req, policy_kinds_attempted(&req->client));
}

void
counter_failure(const struct login_request *req)
{
	counter_bump(req, policy_kinds_failed(&req->client));
}
