/*
 * Throttling decisions and the local counter table.  Keys are built from
 * the counter kind, the client address and the lower-cased user name as
 * bytes, never as text for another protocol, so no name can collide with
 * or inject into another key.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "policy.h"
#include "proto.h"

#define TABLE_BUCKETS  65536
#define TABLE_MAX_KEYS 262144
/*
 * Request-rate counters may fill a quarter of the table at most: a flood
 * of requests from many addresses must not leave no room for counting
 * logins (which are refused, not let through, when they cannot be).
 */
#define TABLE_MAX_REQUEST_KEYS (TABLE_MAX_KEYS / 4)
#define KEY_MAX		       POLICY_KEY_MAX

struct counter {
	LIST_ENTRY(counter) entry;
	uint64_t last_ms;
	uint32_t window;
	uint32_t pending; /* attempts awaiting their result */
	struct window_counter w;
	uint16_t keylen;
	unsigned char key[];
};
LIST_HEAD(counter_list, counter);

static struct conf_policy pol;
static struct counter_list *table;
static size_t nkeys;
static size_t nrequest_keys;
static int table_full;
static int requests_full;

void
policy_init(const struct conf_policy *conf)
{
	pol = *conf;
	if (table == NULL &&
	    (table = calloc(TABLE_BUCKETS, sizeof(*table))) == NULL)
		fatal("calloc");
}

static uint32_t
key_hash(const unsigned char *key, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

size_t
policy_key(unsigned char *key, enum counter_kind kind,
    const struct sockaddr_storage *ss, const char *user, int budget)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	size_t len = 0, i;

	key[len++] = kind;
	/* a separate web budget is one of the user's, not the address's */
	if (budget == POLICY_BUDGET_WEB &&
	    (kind == COUNT_USER || kind == COUNT_IPUSER_FAIL))
		key[0] |= 0x80;
	if (kind != COUNT_USER) {
		key[len++] = ss->ss_family;
		if (ss->ss_family == AF_INET6) {
			/*
			 * A /64 is what one IPv6 client gets: counting each
			 * address alone would let it spread its attempts.
			 */
			memcpy(key + len, sin6->sin6_addr.s6_addr, 8);
			len += 8;
		} else {
			memcpy(key + len, &sin->sin_addr, 4);
			len += 4;
		}
	}
	if (kind == COUNT_USER || kind == COUNT_IPUSER_FAIL)
		for (i = 0; user[i] != '\0' && i < USER_MAX_LEN; i++)
			key[len++] = tolower((unsigned char)user[i]);
	return len;
}

static struct counter *
counter_by_key(const unsigned char *key, size_t len, uint32_t window,
    int create)
{
	struct counter *c;
	uint32_t b = key_hash(key, len) % TABLE_BUCKETS;

	LIST_FOREACH(c, &table[b], entry)
	if (c->keylen == len && memcmp(c->key, key, len) == 0)
		return c;
	if (!create)
		return NULL;
	if ((key[0] & 0x7f) == COUNT_REQUEST &&
	    nrequest_keys >= TABLE_MAX_REQUEST_KEYS) {
		if (!requests_full)
			log_warnx("request rate table full (%d addresses): "
				  "requests from addresses it does not know "
				  "are not limited until old entries expire",
			    TABLE_MAX_REQUEST_KEYS);
		requests_full = 1;
		return NULL;
	}
	if (nkeys >= TABLE_MAX_KEYS) {
		if (!table_full)
			log_warnx("throttle table full (%d keys): refusing "
				  "logins from clients and users it does not "
				  "know "
				  "until old entries expire",
			    TABLE_MAX_KEYS);
		table_full = 1;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c) + len)) == NULL)
		return NULL;
	c->keylen = len;
	c->window = window;
	memcpy(c->key, key, len);
	LIST_INSERT_HEAD(&table[b], c, entry);
	nkeys++;
	if ((key[0] & 0x7f) == COUNT_REQUEST)
		nrequest_keys++;
	return c;
}

static struct counter *
counter_get(enum counter_kind kind, const struct sockaddr_storage *ss,
    const char *user, int budget, uint32_t window, int create)
{
	unsigned char key[KEY_MAX];
	size_t len = policy_key(key, kind, ss, user, budget);

	return counter_by_key(key, len, window, create);
}

/*
 * The window's count, plus attempts still waiting for their result.  The
 * count is the larger of this node's and the shared store's (which a
 * restarted or flushed memcached may have lost); attempts in flight are
 * known only here.
 */
static uint32_t
counter_value(enum counter_kind kind, const struct sockaddr_storage *ss,
    const char *user, int budget, const struct policy_limit *lim, uint64_t now,
    const uint32_t *shared)
{
	struct counter *c;
	uint32_t n;

	if (lim->max == 0)
		return 0;
	c = counter_get(kind, ss, user, budget, lim->window, 0);
	n = c != NULL ? window_estimate(&c->w, now, lim->window) : 0;
	/* what this node counted still holds if the store lost it */
	if (shared != NULL && shared[kind] > n)
		n = shared[kind];
	if (c != NULL)
		n = n + c->pending < n ? UINT32_MAX : n + c->pending;
	return n;
}

static void
counter_pending(enum counter_kind kind, const struct sockaddr_storage *ss,
    const char *user, int budget, const struct policy_limit *lim, uint64_t now,
    int add)
{
	struct counter *c;

	if (lim->max == 0 ||
	    (c = counter_get(kind, ss, user, budget, lim->window, add)) == NULL)
		return;
	if (add)
		c->pending++;
	else if (c->pending > 0)
		c->pending--;
	c->last_ms = now;
}

/*
 * When the table is full, a client or user it holds no entry for cannot
 * be counted; refusing it is the only way not to let a flood of
 * addresses switch throttling off for everyone else.
 */
static int
unknown_while_full(const struct sockaddr_storage *ss, const char *user,
    int budget)
{
	if (!table_full)
		return 0;
	/* the allow-list has no address counters to be known by */
	if (pol.ip.max && !policy_allowlisted(ss) &&
	    counter_get(COUNT_IP, ss, user, budget, pol.ip.window, 0) == NULL)
		return 1;
	return pol.user.max &&
	    counter_get(COUNT_USER, ss, user, budget, pol.user.window, 0) ==
	    NULL;
}

static void
counter_bump(enum counter_kind kind, const struct sockaddr_storage *ss,
    const char *user, int budget, const struct policy_limit *lim, uint64_t now)
{
	struct counter *c;

	if (lim->max == 0 ||
	    (c = counter_get(kind, ss, user, budget, lim->window, 1)) == NULL)
		return;
	window_add(&c->w, now, lim->window, 1);
	c->last_ms = now;
}

/*
 * One HTTP request from this address: 1 if the address is over its
 * rate (then not counted), else counted and 0.  Logins have their own
 * limits; this one bounds what any client may ask of the upstreams.
 */
int
policy_request(const struct sockaddr_storage *ss, uint64_t now)
{
	if (pol.requests.max == 0 || policy_allowlisted(ss))
		return 0;
	if (counter_value(COUNT_REQUEST, ss, "", POLICY_BUDGET_MAIL,
		&pol.requests, now, NULL) >= pol.requests.max)
		return 1;
	counter_bump(COUNT_REQUEST, ss, "", POLICY_BUDGET_MAIL, &pol.requests,
	    now);
	return 0;
}

/*
 * Whose budget an attempt of this protocol spends: the user's one, or
 * with `throttle http separate' a web budget of the user's own.
 */
int
policy_budget(uint32_t proto)
{
	return pol.http_separate && proto == PROTO_HTTP ? POLICY_BUDGET_WEB
							: POLICY_BUDGET_MAIL;
}

int
policy_allowlisted(const struct sockaddr_storage *ss)
{
	return cidr_match_any(pol.allow, pol.nallow, ss);
}

int
policy_proxy_trusted(const struct sockaddr_storage *ss)
{
	return cidr_match_any(pol.proxy, pol.nproxy, ss);
}

/*
 * May this address try to log in as this user now?  Refused attempts do
 * not count, so a client that keeps hammering is let in again once its
 * window has moved past its earlier attempts.
 */
enum policy_verdict
policy_check(const struct sockaddr_storage *ss, const char *user, int budget,
    uint64_t now, const char **message)
{
	return policy_check_shared(ss, user, budget, now, NULL, message);
}

/* The same, with the shared store's counts (indexed by COUNT_*). */
enum policy_verdict
policy_check_shared(const struct sockaddr_storage *ss, const char *user,
    int budget, uint64_t now, const uint32_t *shared, const char **message)
{
	if (unknown_while_full(ss, user, budget)) {
		*message = pol.ip.message;
		return POLICY_THROTTLED_IP;
	}
	if (!policy_allowlisted(ss)) {
		if (pol.ip.max &&
		    counter_value(COUNT_IP, ss, user, budget, &pol.ip, now,
			shared) >= pol.ip.max) {
			*message = pol.ip.message;
			return POLICY_THROTTLED_IP;
		}
		if (pol.ip_fail.max &&
		    counter_value(COUNT_IP_FAIL, ss, user, budget, &pol.ip_fail,
			now, shared) >= pol.ip_fail.max) {
			*message = pol.ip_fail.message;
			return POLICY_THROTTLED_IP;
		}
		if (pol.ipuser_fail.max &&
		    counter_value(COUNT_IPUSER_FAIL, ss, user, budget,
			&pol.ipuser_fail, now, shared) >= pol.ipuser_fail.max) {
			*message = pol.ipuser_fail.message;
			return POLICY_THROTTLED_USER;
		}
	}
	if (pol.user.max &&
	    counter_value(COUNT_USER, ss, user, budget, &pol.user, now,
		shared) >= pol.user.max) {
		*message = pol.user.message;
		return POLICY_THROTTLED_USER;
	}
	return POLICY_ALLOW;
}

/*
 * An attempt goes ahead.  Until its result is known it counts against
 * the failure limits too, or many connections in parallel could all try
 * a password before the first failure is counted.
 */
void
policy_attempt(const struct sockaddr_storage *ss, const char *user, int budget,
    uint64_t now)
{
	counter_bump(COUNT_USER, ss, user, budget, &pol.user, now);
	if (policy_allowlisted(ss))
		return;
	counter_bump(COUNT_IP, ss, user, budget, &pol.ip, now);
	counter_pending(COUNT_IP_FAIL, ss, user, budget, &pol.ip_fail, now, 1);
	counter_pending(COUNT_IPUSER_FAIL, ss, user, budget, &pol.ipuser_fail,
	    now, 1);
}

/* The attempt's result: it is no longer pending; a failure counts. */
void
policy_result(const struct sockaddr_storage *ss, const char *user, int budget,
    uint64_t now, int failed)
{
	if (policy_allowlisted(ss))
		return;
	counter_pending(COUNT_IP_FAIL, ss, user, budget, &pol.ip_fail, now, 0);
	counter_pending(COUNT_IPUSER_FAIL, ss, user, budget, &pol.ipuser_fail,
	    now, 0);
	if (failed) {
		counter_bump(COUNT_IP_FAIL, ss, user, budget, &pol.ip_fail,
		    now);
		counter_bump(COUNT_IPUSER_FAIL, ss, user, budget,
		    &pol.ipuser_fail, now);
	}
}

void
policy_failure(const struct sockaddr_storage *ss, const char *user, int budget,
    uint64_t now)
{
	policy_result(ss, user, budget, now, 1);
}

/* The address and user a counter's key was made of (see policy_key). */
static void
key_parts(const struct counter *c, enum counter_kind *kind, int *budget,
    struct sockaddr_storage *ss, char *user)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	size_t off = 1, n;

	*kind = c->key[0] & 0x7f;
	*budget = (c->key[0] & 0x80) ? POLICY_BUDGET_WEB : POLICY_BUDGET_MAIL;
	memset(ss, 0, sizeof(*ss));
	if (*kind != COUNT_USER && c->keylen > 1) {
		ss->ss_family = c->key[off++];
		n = ss->ss_family == AF_INET6 ? 8 : 4;
		if (off + n > c->keylen)
			n = c->keylen - off;
		if (ss->ss_family == AF_INET6)
			memcpy(sin6->sin6_addr.s6_addr, c->key + off, n);
		else
			memcpy(&sin->sin_addr, c->key + off, n);
		off += n;
	}
	n = c->keylen > off ? c->keylen - off : 0;
	memcpy(user, c->key + off, n);
	user[n] = '\0';
}

static int
unblock_matches(enum counter_kind kind, const struct sockaddr_storage *key_ss,
    const char *key_user, const struct sockaddr_storage *ss, const char *user)
{
	unsigned char a[KEY_MAX], b[KEY_MAX];
	size_t alen, blen;

	if (ss != NULL) {
		if (kind == COUNT_USER)
			return 0;
		/* the same bytes as the key's: IPv6 by its /64 */
		alen = policy_key(a, COUNT_IP, key_ss, "", 0);
		blen = policy_key(b, COUNT_IP, ss, "", 0);
		return alen == blen && memcmp(a, b, alen) == 0;
	}
	return (kind == COUNT_USER || kind == COUNT_IPUSER_FAIL) &&
	    strcasecmp(key_user, user) == 0;
}

/*
 * posternctl unblock: every count of this address (ss) or this user
 * starts again from nothing.  Attempts in flight stay counted as such.
 * forgot() hears of each counter reset, to do the same in a shared
 * store.  Returns how many there were.
 */
size_t
policy_unblock(const struct sockaddr_storage *ss, const char *user,
    policy_forgot_cb forgot, void *arg)
{
	struct sockaddr_storage key_ss;
	char key_user[USER_MAX_LEN + 1];
	enum counter_kind kind;
	struct counter *c;
	size_t b, n = 0;
	int budget;

	if (table == NULL)
		return 0;
	for (b = 0; b < TABLE_BUCKETS; b++)
		LIST_FOREACH(c, &table[b], entry)
		{
			key_parts(c, &kind, &budget, &key_ss, key_user);
			if (!unblock_matches(kind, &key_ss, key_user, ss, user))
				continue;
			memset(&c->w, 0, sizeof(c->w));
			n++;
			if (forgot != NULL)
				forgot(kind, budget, &key_ss, key_user, arg);
		}
	return n;
}

/*
 * A reload hands the counts from the draining authproc to the new one,
 * through the parent.  Each entry: key length (2 bytes), key, window
 * (4), last use (8), bucket (8), this bucket's and the last one's counts
 * (4 each), host byte order (both ends are this machine).  emit() gets
 * whole entries, at most chunk bytes at a time.  Attempts in flight are
 * not handed over: they finish, and count, where they started.
 */
#define ENTRY_FIXED (2 + 4 + 8 + 8 + 4 + 4)

static size_t
entry_put(unsigned char *p, const struct counter *c)
{
	uint16_t len = c->keylen;
	size_t off = 0;

	memcpy(p + off, &len, 2), off += 2;
	memcpy(p + off, c->key, len), off += len;
	memcpy(p + off, &c->window, 4), off += 4;
	memcpy(p + off, &c->last_ms, 8), off += 8;
	memcpy(p + off, &c->w.bucket, 8), off += 8;
	memcpy(p + off, &c->w.cur, 4), off += 4;
	memcpy(p + off, &c->w.prev, 4), off += 4;
	return off;
}

size_t
policy_export(void (*emit)(const void *, size_t, void *), void *arg,
    size_t chunk)
{
	unsigned char buf[16384];
	struct counter *c;
	size_t b, used = 0, n = 0;

	if (table == NULL)
		return 0;
	if (chunk > sizeof(buf))
		chunk = sizeof(buf);
	for (b = 0; b < TABLE_BUCKETS; b++)
		LIST_FOREACH(c, &table[b], entry)
		{
			if (c->w.cur == 0 && c->w.prev == 0)
				continue;
			if (used + ENTRY_FIXED + c->keylen > chunk) {
				emit(buf, used, arg);
				used = 0;
			}
			used += entry_put(buf + used, c);
			n++;
		}
	if (used > 0)
		emit(buf, used, arg);
	return n;
}

static uint32_t
sat_add(uint32_t a, uint32_t b)
{
	return a + b < a ? UINT32_MAX : a + b;
}

/* Counts from elsewhere for the same key: both windows, added. */
static void
counter_merge(struct counter *c, const struct window_counter *in,
    uint64_t last_ms)
{
	if (in->bucket == c->w.bucket) {
		c->w.cur = sat_add(c->w.cur, in->cur);
		c->w.prev = sat_add(c->w.prev, in->prev);
	} else if (in->bucket + 1 == c->w.bucket)
		c->w.prev = sat_add(c->w.prev, in->cur);
	else if (in->bucket == c->w.bucket + 1) {
		c->w.prev = sat_add(c->w.cur, in->prev);
		c->w.cur = in->cur;
		c->w.bucket = in->bucket;
	} else if (in->bucket > c->w.bucket)
		c->w = *in;
	if (last_ms > c->last_ms)
		c->last_ms = last_ms;
}

/*
 * Entries from policy_export(), as the parent passed them on.  Counts
 * for a limit whose window the new configuration changed are dropped:
 * their buckets no longer mean the same.  -1 for a malformed chunk.
 */
int
policy_import(const void *data, size_t len, uint64_t now)
{
	const unsigned char *p = data;
	struct window_counter w;
	const struct policy_limit *lim;
	struct counter *c;
	uint64_t last_ms;
	uint32_t window;
	uint16_t klen;
	size_t off = 0;
	int kind;

	if (table == NULL)
		return -1;
	while (off < len) {
		if (len - off < 2)
			return -1;
		memcpy(&klen, p + off, 2);
		off += 2;
		if (klen == 0 || klen > KEY_MAX ||
		    len - off < (size_t)klen + ENTRY_FIXED - 2)
			return -1;
		kind = p[off] & 0x7f;
		if (kind < COUNT_IP || kind > COUNT_REQUEST)
			return -1;
		memcpy(&window, p + off + klen, 4);
		memcpy(&last_ms, p + off + klen + 4, 8);
		memcpy(&w.bucket, p + off + klen + 12, 8);
		memcpy(&w.cur, p + off + klen + 20, 4);
		memcpy(&w.prev, p + off + klen + 24, 4);
		lim = policy_limit(kind);
		/*
		 * What the predecessor says is believed only within what it
		 * could have counted: recent buckets, counts up to the
		 * limit, and never more than half the table.
		 */
		if (lim->max != 0 && window == lim->window && window > 0 &&
		    last_ms <= now + 1000 &&
		    last_ms + (uint64_t)window * 2000 >= now &&
		    w.bucket + 1 >= now / ((uint64_t)window * 1000) &&
		    w.bucket <= now / ((uint64_t)window * 1000) &&
		    nkeys < TABLE_MAX_KEYS / 2 &&
		    (c = counter_by_key(p + off, klen, window, 1)) != NULL) {
			if (w.cur > lim->max)
				w.cur = lim->max;
			if (w.prev > lim->max)
				w.prev = lim->max;
			counter_merge(c, &w, last_ms);
		}
		off += klen + ENTRY_FIXED - 2;
	}
	return 0;
}

/* Drop counters whose windows have long passed. */
void
policy_expire(uint64_t now)
{
	struct counter *c, *next;
	size_t b;

	for (b = 0; b < TABLE_BUCKETS; b++) {
		for (c = LIST_FIRST(&table[b]); c != NULL; c = next) {
			next = LIST_NEXT(c, entry);
			if (c->pending == 0 &&
			    now - c->last_ms > (uint64_t)c->window * 2000) {
				LIST_REMOVE(c, entry);
				if ((c->key[0] & 0x7f) == COUNT_REQUEST)
					nrequest_keys--;
				free(c);
				nkeys--;
			}
		}
	}
	if (nkeys < TABLE_MAX_KEYS)
		table_full = 0;
	if (nrequest_keys < TABLE_MAX_REQUEST_KEYS)
		requests_full = 0;
}

/*
 * Which shared counters an attempt reads, and which its start and a
 * failure count in: the same rules as the local table's.
 */
uint32_t
policy_kinds_checked(const struct sockaddr_storage *ss)
{
	uint32_t k = pol.user.max ? 1 << COUNT_USER : 0;

	if (policy_allowlisted(ss))
		return k;
	if (pol.ip.max)
		k |= 1 << COUNT_IP;
	return k | policy_kinds_failed(ss);
}

uint32_t
policy_kinds_attempted(const struct sockaddr_storage *ss)
{
	uint32_t k = pol.user.max ? 1 << COUNT_USER : 0;

	if (pol.ip.max && !policy_allowlisted(ss))
		k |= 1 << COUNT_IP;
	return k;
}

uint32_t
policy_kinds_failed(const struct sockaddr_storage *ss)
{
	uint32_t k = 0;

	if (policy_allowlisted(ss))
		return 0;
	if (pol.ip_fail.max)
		k |= 1 << COUNT_IP_FAIL;
	if (pol.ipuser_fail.max)
		k |= 1 << COUNT_IPUSER_FAIL;
	return k;
}

const struct policy_limit *
policy_limit(enum counter_kind kind)
{
	switch (kind) {
	case COUNT_IP:
		return &pol.ip;
	case COUNT_USER:
		return &pol.user;
	case COUNT_IP_FAIL:
		return &pol.ip_fail;
	case COUNT_IPUSER_FAIL:
		return &pol.ipuser_fail;
	case COUNT_REQUEST:
		return &pol.requests;
	}
	return NULL;
}

size_t
policy_nkeys(void)
{
	return nkeys;
}

/* The pause before answering the n-th failure on one connection. */
uint32_t
policy_failure_delay(unsigned int failures)
{
	uint64_t d;

	if (pol.delay_ms == 0 || failures == 0)
		return 0;
	d = (uint64_t)pol.delay_ms << (failures > 16 ? 16 : failures - 1);
	return d > pol.delay_max_ms ? pol.delay_max_ms : (uint32_t)d;
}
