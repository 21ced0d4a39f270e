/*
 * memcached key derivation: hostile user names (spaces, CR/LF, control
 * bytes, names longer than memcached allows) must give keys that are
 * printable, short, distinct and free of anything memcached's protocol
 * treats as a separator.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mcache.h"
#include "policy.h"

static void
assert_safe_key(const char *key)
{
	size_t i;

	assert_true(strlen(key) < 250);
	assert_memory_equal(key, MCKEY_PREFIX, strlen(MCKEY_PREFIX));
	for (i = 0; key[i] != '\0'; i++)
		assert_true((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= '0' && key[i] <= '9') || key[i] == ':');
}

static void
test_hostile_names_give_safe_distinct_keys(void **state)
{
	static const char *names[] = {
	    "alice",
	    "alice ",
	    "alice\r\nset postern:r:x 0 0 1\r\nA",
	    "alice\r\n",
	    "ALICE",
	    "alice\x01",
	    "",
	    " ",
	};
	char keys[sizeof(names) / sizeof(names[0]) + 1][MC_KEY_MAX];
	char longname[301];
	size_t i, j, n = sizeof(names) / sizeof(names[0]);

	(void)state;
	for (i = 0; i < n; i++) {
		assert_int_equal(mckey_derive(keys[i], MC_KEY_MAX, 'r',
				     names[i], strlen(names[i])),
		    0);
		assert_safe_key(keys[i]);
	}
	memset(longname, 'a', 300);
	longname[300] = '\0';
	assert_int_equal(mckey_derive(keys[n], MC_KEY_MAX, 'r', longname, 300),
	    0);
	assert_safe_key(keys[n]);
	for (i = 0; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			assert_string_not_equal(keys[i], keys[j]);
}

static void
test_keys_are_stable_and_namespaced(void **state)
{
	char a[MC_KEY_MAX], b[MC_KEY_MAX], c[MC_KEY_MAX];

	(void)state;
	assert_int_equal(mckey_derive(a, sizeof(a), 'r', "bob", 3), 0);
	assert_int_equal(mckey_derive(b, sizeof(b), 'r', "bob", 3), 0);
	assert_string_equal(a, b);
	/* the same bytes in another namespace are another key */
	assert_int_equal(mckey_derive(c, sizeof(c), 'c', "bob", 3), 0);
	assert_string_not_equal(a, c);
	/* SHA-256 of "bob", so any node derives the same key */
	assert_string_equal(a,
	    "postern:r:81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd"
	    "9ec58ce9");
	/* a namespace outside a-z, or no room, is refused */
	assert_int_equal(mckey_derive(c, sizeof(c), ':', "bob", 3), -1);
	assert_int_equal(mckey_derive(c, 20, 'r', "bob", 3), -1);
}

static void
test_counter_keys_per_bucket(void **state)
{
	unsigned char raw[POLICY_KEY_MAX];
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	char k1[MC_KEY_MAX], k2[MC_KEY_MAX];
	size_t len;

	(void)state;
	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0xc0000201);
	len = policy_key(raw, COUNT_IPUSER_FAIL, &ss, "Eve\r\n",
	    POLICY_BUDGET_MAIL);
	assert_int_equal(mckey_counter(k1, sizeof(k1), raw, len, 41), 0);
	assert_int_equal(mckey_counter(k2, sizeof(k2), raw, len, 42), 0);
	assert_string_not_equal(k1, k2);
	assert_safe_key(k1);
	assert_true(strlen(k1) > 3 && strcmp(k1 + strlen(k1) - 3, ":41") == 0);
	/* user names count case-insensitively, as in the local table */
	len = policy_key(raw, COUNT_IPUSER_FAIL, &ss, "eve\r\n",
	    POLICY_BUDGET_MAIL);
	assert_int_equal(mckey_counter(k2, sizeof(k2), raw, len, 41), 0);
	assert_string_equal(k1, k2);
	/* a key that does not fit is refused, never cut short */
	assert_int_equal(mckey_counter(k2, 77, raw, len, 41), -1);
	assert_int_equal(mckey_counter(k2, 78, raw, len, 41), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostile_names_give_safe_distinct_keys),
	    cmocka_unit_test(test_keys_are_stable_and_namespaced),
	    cmocka_unit_test(test_counter_keys_per_bucket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
