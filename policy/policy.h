/*
 * Login throttling policy, enforced in authproc before any credentials
 * leave it.  Counts login attempts per client address and per user, and
 * failed logins per address and per address+user, each in its own
 * sliding window; an allow-list exempts addresses from the address
 * limits.  Counters live in a local table; with "throttle store
 * memcache" the window counts come from memcached through relay's
 * counter service, so several nodes enforce one limit together, and the
 * local table still holds the attempts in flight and is the fallback
 * when memcached cannot be reached.
 *
 * The windows are sliding, estimated from two fixed buckets: the count
 * is this bucket's plus the previous bucket's weighted by how much of it
 * still lies inside the window.  A fixed window would let a client make
 * twice the limit around a bucket boundary; an exact sliding log would
 * cost memory per attempt.  Two counters per key also map directly onto
 * memcached keys when the store becomes shared.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <sys/socket.h>

#include <stdint.h>

#define POLICY_MSG_MAX	 128
#define POLICY_KEY_MAX	 (2 + 16 + 255)
#define POLICY_MAX_ALLOW 32

struct policy_limit {
	uint32_t max;	 /* 0: no limit */
	uint32_t window; /* seconds */
	char message[POLICY_MSG_MAX];
};

struct cidr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix;
	uint8_t addr[16];
};

struct conf_policy {
	struct policy_limit ip;		 /* attempts per address */
	struct policy_limit user;	 /* attempts per user */
	struct policy_limit ip_fail;	 /* failures per address */
	struct policy_limit ipuser_fail; /* failures per address+user */
	uint32_t max_conn_per_ip;	 /* pre-auth, 0: none */
	uint32_t max_attempts;		 /* per connection, 0: none */
	uint32_t delay_ms;		 /* after a failure, doubling */
	uint32_t delay_max_ms;
	uint32_t shared; /* counters in memcached, through relay */
	uint32_t nallow;
	struct cidr allow[POLICY_MAX_ALLOW];
	/* load balancers whose PROXY protocol headers are believed */
	uint32_t nproxy;
	struct cidr proxy[POLICY_MAX_ALLOW];
	struct policy_limit requests; /* HTTP requests per address */
	uint32_t http_separate;	      /* web attempts: a user budget apart */
};

/* Which of a user's attempt budgets: one for all, or web apart. */
#define POLICY_BUDGET_MAIL 0
#define POLICY_BUDGET_WEB  1

/* window.c: a two-bucket sliding window counter */
struct window_counter {
	uint64_t bucket; /* index of the current bucket */
	uint32_t cur;
	uint32_t prev;
};

uint32_t window_estimate(const struct window_counter *, uint64_t now_ms,
    uint32_t window_s);
void window_add(struct window_counter *, uint64_t now_ms, uint32_t window_s,
    uint32_t n);

/* cidr.c */
int cidr_parse(const char *, struct cidr *);
int cidr_match(const struct cidr *, const struct sockaddr_storage *);
int cidr_match_any(const struct cidr *, uint32_t,
    const struct sockaddr_storage *);

/* policy.c */
enum policy_verdict {
	POLICY_ALLOW,
	POLICY_THROTTLED_IP,
	POLICY_THROTTLED_USER
};

enum counter_kind {
	COUNT_IP = 1,
	COUNT_USER,
	COUNT_IP_FAIL,
	COUNT_IPUSER_FAIL,
	COUNT_REQUEST /* HTTP requests per address: local, never shared */
};

void policy_init(const struct conf_policy *);
int policy_allowlisted(const struct sockaddr_storage *);
int policy_proxy_trusted(const struct sockaddr_storage *);
enum policy_verdict policy_check(const struct sockaddr_storage *,
    const char *user, int budget, uint64_t now_ms, const char **message);
enum policy_verdict policy_check_shared(const struct sockaddr_storage *,
    const char *user, int budget, uint64_t now_ms, const uint32_t *shared,
    const char **message);
int policy_budget(uint32_t proto);
uint32_t policy_kinds_checked(const struct sockaddr_storage *);
uint32_t policy_kinds_attempted(const struct sockaddr_storage *);
uint32_t policy_kinds_failed(const struct sockaddr_storage *);
const struct policy_limit *policy_limit(enum counter_kind);
size_t policy_key(unsigned char *, enum counter_kind,
    const struct sockaddr_storage *, const char *user, int budget);
void policy_attempt(const struct sockaddr_storage *, const char *user,
    int budget, uint64_t now_ms);
void policy_failure(const struct sockaddr_storage *, const char *user,
    int budget, uint64_t now_ms);
void policy_result(const struct sockaddr_storage *, const char *user,
    int budget, uint64_t now_ms, int failed);
void policy_expire(uint64_t now_ms);
size_t policy_nkeys(void);
uint32_t policy_failure_delay(unsigned int failures);
int policy_request(const struct sockaddr_storage *, uint64_t now_ms);
typedef void (*policy_forgot_cb)(enum counter_kind, int budget,
    const struct sockaddr_storage *, const char *user, void *);
size_t policy_export(void (*emit)(const void *, size_t, void *), void *,
    size_t chunk);
int policy_import(const void *, size_t, uint64_t now_ms);
size_t policy_unblock(const struct sockaddr_storage *, const char *user,
    policy_forgot_cb, void *);

#endif
