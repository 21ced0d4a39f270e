/*
 * Fuzz the routing keys: http_route_key on whatever parses as a request
 * (under several configurations), and the token, Basic, cookie and query
 * helpers on the raw bytes.  Results must be terminated, bounded and of
 * the documented shape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static const struct http_limits limits = {8192, 4096, 0};

static int
terminated(const char *s, size_t sz)
{
	return memchr(s, '\0', sz) != NULL;
}

/* A name postern routes by: no controls, spaces or '/'. */
static void
check_name(const char *s)
{
	size_t i, n = strlen(s);

	CHECK(n > 0 && n <= HTTP_USER_MAX);
	for (i = 0; i < n; i++)
		CHECK(
		    (unsigned char)s[i] > 0x20 && s[i] != 0x7f && s[i] != '/');
}

static void
check_account_id(const char *s)
{
	size_t i, n = strlen(s);

	CHECK(n > 0 && n <= HTTP_USER_MAX);
	for (i = 0; i < n; i++)
		CHECK((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-');
}

static void
check_key(const struct http_route_key *k, const struct http_route_conf *c)
{
	CHECK(terminated(k->key, sizeof(k->key)));
	CHECK(terminated(k->basic_user, sizeof(k->basic_user)));
	if (k->basic_user[0] != '\0')
		check_name(k->basic_user);
	if (!k->has_basic)
		CHECK(k->basic_user[0] == '\0');
	switch (k->kind) {
	case HTTP_KEY_NONE:
		CHECK(k->source == HTTP_SRC_NONE && k->key[0] == '\0');
		break;
	case HTTP_KEY_USER:
		check_name(k->key);
		CHECK((c->use_path &&
			  (k->source == HTTP_SRC_PATH ||
			      k->source == HTTP_SRC_QUERY)) ||
		    (c->use_basic && k->source == HTTP_SRC_BASIC &&
			strcmp(k->key, k->basic_user) == 0));
		break;
	case HTTP_KEY_ACCOUNT_ID:
		check_account_id(k->key);
		CHECK(c->use_cookie &&
		    (k->source == HTTP_SRC_COOKIE ||
			k->source == HTTP_SRC_TOKEN_ARG));
		break;
	default:
		abort();
	}
}

static void
route_request(const char *buf, size_t size)
{
	static struct http_request req;
	struct http_route_conf conf;
	struct http_route_key key;
	unsigned int mask;
	int r;

	if (http_request_parse(buf, size, &limits, &req) != HTTP_PARSE_OK)
		return;
	for (mask = 0; mask < 8; mask++) {
		http_route_conf_default(&conf);
		conf.use_path = mask & 1;
		conf.use_basic = (mask >> 1) & 1;
		conf.use_cookie = (mask >> 2) & 1;
		r = http_route_key(&req, &conf, &key);
		CHECK(r == 0 || r == -1);
		if (r == 0)
			check_key(&key, &conf);
		else
			CHECK(key.kind == HTTP_KEY_NONE &&
			    key.basic_user[0] == '\0');
	}
}

static void
raw_pieces(const char *buf, size_t size)
{
	char id[HTTP_USER_MAX + 1], small[8], user[HTTP_USER_MAX + 1];
	char arg[64];
	const char *v;
	size_t vlen;
	int r;

	if (http_zm_token_id(buf, size, id, sizeof(id)) == 0)
		check_account_id(id);
	else
		CHECK(id[0] == '\0');
	if (http_zm_token_id(buf, size, small, sizeof(small)) == 0)
		CHECK(strlen(small) < sizeof(small));
	else
		CHECK(small[0] == '\0');

	r = http_basic_user(buf, size, user, sizeof(user));
	CHECK(r >= -1 && r <= 1 && terminated(user, sizeof(user)));
	if (r == 1 && user[0] != '\0')
		check_name(user);
	if (r != 1)
		CHECK(user[0] == '\0');
	r = http_basic_user(buf, size, small, sizeof(small));
	CHECK(terminated(small, sizeof(small)));

	r = http_query_arg(buf, size, "User", arg, sizeof(arg));
	CHECK(r >= -1 && r <= 1 && terminated(arg, sizeof(arg)));
	if (r != 1)
		CHECK(arg[0] == '\0');

	if (http_cookie_value(buf, size, "ZM_AUTH_TOKEN", &v, &vlen))
		CHECK(v >= buf && vlen <= size &&
		    (size_t)(v - buf) <= size - vlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	route_request(buf, size);
	raw_pieces(buf, size);
	return 0;
}
