/*
 * Zimbra-compatible routing keys: path user, ActiveSync User=, Basic
 * user, and the account id of the ZM_AUTH_TOKEN cookie or zauthtoken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <resolv.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

#define ACCOUNT_ID "e6f5b3c2-1a2b-4c3d-9e8f-0123456789ab"
#define HMAC	   "8f1c2b0e3d4a5b6c7d8e9f00112233445566778e"

static const struct http_limits limits = {16384, 4096, 0};

static struct http_route_conf conf;
static struct http_request req;
static struct http_route_key key;
static char head[16384];

static int
setup(void **state)
{
	(void)state;
	http_route_conf_default(&conf);
	return 0;
}

/* A GET for target with the extra field lines, parsed. */
static void
request(const char *target, const char *fields)
{
	int n;

	n = snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n",
	    target, fields);
	assert_true(n > 0 && (size_t)n < sizeof(head));
	assert_int_equal(http_request_parse(head, (size_t)n, &limits, &req),
	    HTTP_PARSE_OK);
}

static int
route(const char *target, const char *fields)
{
	request(target, fields);
	memset(&key, 0x5a, sizeof(key));
	return http_route_key(&req, &conf, &key);
}

static void
expect_key(const char *target, const char *fields, enum http_key_kind kind,
    enum http_key_source src, const char *want)
{
	assert_int_equal(route(target, fields), 0);
	assert_int_equal(key.kind, kind);
	assert_int_equal(key.source, src);
	assert_string_equal(key.key, want);
}

static void
expect_none(const char *target, const char *fields)
{
	expect_key(target, fields, HTTP_KEY_NONE, HTTP_SRC_NONE, "");
}

static void
expect_refused(const char *target, const char *fields)
{
	assert_int_equal(route(target, fields), -1);
}

/* "Authorization: Basic ...\r\n" for raw credentials (may hold NULs). */
static const char *
basic(const void *raw, size_t len)
{
	static char field[1024];
	char b64[768];

	assert_true(b64_ntop(raw, len, b64, sizeof(b64)) > 0);
	snprintf(field, sizeof(field), "Authorization: Basic %s\r\n", b64);
	return field;
}

static const char *
basic_str(const char *creds)
{
	return basic(creds, strlen(creds));
}

/* A token as Zimbra writes it: key version, HMAC, hex-encoded data. */
static const char *
zm_token(const char *data)
{
	static char tok[2048];
	size_t i, n;

	n = (size_t)snprintf(tok, sizeof(tok), "0_%s_", HMAC);
	for (i = 0; data[i] != '\0'; i++)
		n += (size_t)snprintf(tok + n, sizeof(tok) - n, "%02x",
		    (unsigned char)data[i]);
	return tok;
}

static const char *
good_token(void)
{
	return zm_token("id=36:" ACCOUNT_ID ";exp=13:1700000000000;"
			"type=6:zimbra;");
}

static const char *
cookie(const char *fmt, const char *tok)
{
	static char field[4096];

	snprintf(field, sizeof(field), fmt, tok);
	return field;
}

static void
test_conf_default(void **state)
{
	(void)state;
	assert_int_equal(conf.use_path, 1);
	assert_int_equal(conf.use_basic, 1);
	assert_int_equal(conf.use_cookie, 1);
	assert_int_equal(conf.nprefixes, 6);
	assert_string_equal(conf.prefixes[0], "/home/");
	assert_string_equal(conf.prefixes[1], "/service/home/");
	assert_string_equal(conf.prefixes[2], "/dav/");
	assert_string_equal(conf.prefixes[3], "/principals/users/");
	assert_string_equal(conf.prefixes[4], "/calendars/");
	assert_string_equal(conf.prefixes[5], "/addressbooks/");
	assert_string_equal(conf.cookie, "ZM_AUTH_TOKEN");
}

static void
test_path_prefixes(void **state)
{
	(void)state;
	expect_key("/home/bob/Inbox", "", HTTP_KEY_USER, HTTP_SRC_PATH, "bob");
	expect_key("/home/bob", "", HTTP_KEY_USER, HTTP_SRC_PATH, "bob");
	expect_key("/home/bob?fmt=ics", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "bob");
	expect_key("/service/home/bob@example.com/Calendar.ics", "",
	    HTTP_KEY_USER, HTTP_SRC_PATH, "bob@example.com");
	expect_key("/dav/bob@example.com/Calendar/", "", HTTP_KEY_USER,
	    HTTP_SRC_PATH, "bob@example.com");
	expect_key("/principals/users/bob@example.com/", "", HTTP_KEY_USER,
	    HTTP_SRC_PATH, "bob@example.com");
	expect_key("/calendars/carol/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "carol");
	expect_key("/addressbooks/dave/Contacts/", "", HTTP_KEY_USER,
	    HTTP_SRC_PATH, "dave");
	/* absolute-form is reduced before routing */
	expect_key("http://h/home/erin/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "erin");
	/* prefixes match from the start, case and all */
	expect_none("/x/home/bob/", "");
	expect_none("/Home/bob/", "");
	expect_none("/homes/bob/", "");
	expect_none("/home", "");
	expect_none("/home/", "");
	expect_none("/home//Inbox", "");
	expect_none("/home/?x=1", "");
}

static void
test_path_decoding(void **state)
{
	char target[512];

	(void)state;
	expect_key("/home/bob%40example.com/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "bob@example.com");
	/* decoded once only */
	expect_key("/home/bob%2540x/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "bob%40x");
	expect_key("/home/b+c/", "", HTTP_KEY_USER, HTTP_SRC_PATH, "b+c");
	expect_key("/home/%C3%A9l%C3%A8ve/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "\xc3\xa9l\xc3\xa8ve");
	/* a malformed escape refuses the request */
	expect_refused("/home/bob%4/", "");
	expect_refused("/home/bob%zz/", "");
	expect_refused("/home/%/", "");
	expect_refused("/home/bob%", "");
	/* even when another source would give a key */
	expect_refused("/home/bob%g0/", basic_str("bob:pw"));
	/* names that decode to what no account has are ignored */
	expect_none("/home/a%00b/", "");
	expect_none("/home/a%20b/", "");
	expect_none("/home/a%2Fb/", "");
	expect_none("/home/a%0d%0aX:%20y/", "");
	expect_none("/home/a%7fb/", "");
	expect_none("/home/../x", "");
	expect_none("/home/./x", "");
	expect_key("/home/a%2Fb/", basic_str("carol:pw"), HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "carol");
	/* HTTP_USER_MAX bytes at most */
	snprintf(target, sizeof(target), "/home/%0*d/", HTTP_USER_MAX, 0);
	assert_int_equal(route(target, ""), 0);
	assert_int_equal(key.kind, HTTP_KEY_USER);
	assert_int_equal(strlen(key.key), HTTP_USER_MAX);
	snprintf(target, sizeof(target), "/home/~%0*d/", HTTP_USER_MAX, 0);
	assert_int_equal(route(target, ""), 0);
	assert_int_equal(strlen(key.key), HTTP_USER_MAX);
	snprintf(target, sizeof(target), "/home/%0*d/", HTTP_USER_MAX + 1, 0);
	expect_none(target, "");
	/* a bad escape past the length limit is still found */
	snprintf(target, sizeof(target), "/home/%0*d%%x/", HTTP_USER_MAX + 1,
	    0);
	expect_refused(target, "");
}

static void
test_tilde(void **state)
{
	char field[4096];

	(void)state;
	expect_key("/home/~bob@example.com/Inbox", "", HTTP_KEY_USER,
	    HTTP_SRC_PATH, "bob@example.com");
	expect_key("/home/%7Ebob/", "", HTTP_KEY_USER, HTTP_SRC_PATH, "bob");
	/* "~" alone is whoever the credentials say */
	expect_key("/home/~/Inbox", basic_str("bob@example.com:pw"),
	    HTTP_KEY_USER, HTTP_SRC_BASIC, "bob@example.com");
	snprintf(field, sizeof(field), "Cookie: ZM_AUTH_TOKEN=%s\r\n",
	    good_token());
	expect_key("/home/~/Inbox.rss", field, HTTP_KEY_ACCOUNT_ID,
	    HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_key("/service/home/~/", field, HTTP_KEY_ACCOUNT_ID,
	    HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_none("/home/~", "");
	expect_none("/home/~?auth=co", "");
}

static void
test_activesync(void **state)
{
	(void)state;
	expect_key("/Microsoft-Server-ActiveSync?User=bob&DeviceId=D1&"
		   "DeviceType=iPhone&Cmd=Sync",
	    "", HTTP_KEY_USER, HTTP_SRC_QUERY, "bob");
	expect_key("/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=D1&"
		   "User=bob%40example.com&DeviceType=iPhone",
	    "", HTTP_KEY_USER, HTTP_SRC_QUERY, "bob@example.com");
	expect_key("/Microsoft-Server-ActiveSync?Cmd=Ping&User=carol", "",
	    HTTP_KEY_USER, HTTP_SRC_QUERY, "carol");
	expect_key("/microsoft-server-activesync/?cmd=sync&user=dave", "",
	    HTTP_KEY_USER, HTTP_SRC_QUERY, "dave");
	/* '+' is not a space here */
	expect_key("/Microsoft-Server-ActiveSync?User=a+b", "", HTTP_KEY_USER,
	    HTTP_SRC_QUERY, "a+b");
	/* the first User= counts */
	expect_key("/Microsoft-Server-ActiveSync?User=x&User=y", "",
	    HTTP_KEY_USER, HTTP_SRC_QUERY, "x");
	/* not the ActiveSync path, not the argument */
	expect_none("/Microsoft-Server-ActiveSyncX?User=bob", "");
	expect_none("/Microsoft-Server-ActiveSync/x?User=bob", "");
	expect_none("/Microsoft-Server-ActiveSync?Username=bob", "");
	expect_none("/Microsoft-Server-ActiveSync?XUser=bob", "");
	expect_none("/Microsoft-Server-ActiveSync?User=", "");
	expect_none("/Microsoft-Server-ActiveSync?User", "");
	expect_none("/Microsoft-Server-ActiveSync?User=a%20b", "");
	expect_none("/other?User=bob", "");
	expect_refused("/Microsoft-Server-ActiveSync?User=bob%zz", "");
	/* no User=: the Basic credentials every ActiveSync client sends */
	expect_key("/Microsoft-Server-ActiveSync?Cmd=Options",
	    basic_str("EXAMPLE\\bob:pw"), HTTP_KEY_USER, HTTP_SRC_BASIC,
	    "bob@EXAMPLE");
}

static void
test_ews(void **state)
{
	(void)state;
	expect_key("/ews/Exchange.asmx", basic_str("bob@example.com:pw"),
	    HTTP_KEY_USER, HTTP_SRC_BASIC, "bob@example.com");
	expect_none("/ews/Exchange.asmx", "");
}

static void
test_basic(void **state)
{
	(void)state;
	expect_key("/", basic_str("bob@example.com:s3cret"), HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "bob@example.com");
	assert_int_equal(key.has_basic, 1);
	assert_string_equal(key.basic_user, "bob@example.com");
	/* the password may hold colons; the user is before the first */
	expect_key("/", basic_str("bob:a:b:c"), HTTP_KEY_USER, HTTP_SRC_BASIC,
	    "bob");
	expect_key("/", basic_str("EXAMPLE\\bob:pw"), HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "bob@EXAMPLE");
	expect_key("/", basic_str("\\bob:pw"), HTTP_KEY_USER, HTTP_SRC_BASIC,
	    "bob");
	expect_key("/", basic_str("bob:"), HTTP_KEY_USER, HTTP_SRC_BASIC,
	    "bob");
	expect_key("/", "Authorization: basic Ym9iOnB3\r\n", HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "bob");
	expect_key("/", "Authorization: BASIC   Ym9iOnB3\r\n", HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "bob");
	/* the path wins, but the Basic user is still reported */
	expect_key("/home/alice/", basic_str("bob:pw"), HTTP_KEY_USER,
	    HTTP_SRC_PATH, "alice");
	assert_int_equal(key.has_basic, 1);
	assert_string_equal(key.basic_user, "bob");
	expect_key("/home/alice/", "", HTTP_KEY_USER, HTTP_SRC_PATH, "alice");
	assert_int_equal(key.has_basic, 0);
	assert_string_equal(key.basic_user, "");
}

static void
test_basic_other_schemes(void **state)
{
	(void)state;
	expect_none("/", "Authorization: Bearer eyJhbGciOiJub25lIn0.e30.\r\n");
	expect_none("/",
	    "Authorization: Negotiate YIIBhwYGKwYBBQUCoIIBezCC\r\n");
	expect_none("/", "Authorization: Basicx Ym9iOnB3\r\n");
	assert_int_equal(key.has_basic, 0);
	/* the first Basic one is taken, after any other */
	expect_key("/",
	    "Authorization: Bearer x\r\n"
	    "Authorization: Basic Ym9iOnB3\r\n",
	    HTTP_KEY_USER, HTTP_SRC_BASIC, "bob");
}

static void
test_basic_malformed(void **state)
{
	(void)state;
	expect_refused("/", "Authorization: Basic\r\n");
	expect_refused("/", "Authorization: Basic !!!!\r\n");
	expect_refused("/", "Authorization: Basic Ym9iOnB3=\r\n");
	expect_refused("/", "Authorization: Basic Ym9iOnB\r\n");
	expect_refused("/", "Authorization: Basic Ym9i OnB3\r\n");
	expect_refused("/", basic_str("bobpassword"));
	expect_refused("/", basic_str(":pw"));
	expect_refused("/", basic_str("EXAMPLE\\:pw"));
	/* refused even though the path names the user */
	expect_refused("/home/bob/", basic_str("nocolon"));
	/* a user no account has is ignored, not refused */
	expect_none("/", basic_str("bob smith:pw"));
	assert_int_equal(key.has_basic, 1);
	assert_string_equal(key.basic_user, "");
	expect_none("/", basic("b\0b:pw", 6));
	assert_int_equal(key.has_basic, 1);
	expect_none("/", basic_str("b\tb:pw"));
}

static void
test_basic_user_direct(void **state)
{
	char user[HTTP_USER_MAX + 1], small[4];
	char raw[600], b64[1024], field[1100];
	size_t n;

	(void)state;
	assert_int_equal(http_basic_user("Basic Ym9iOnB3", 14, user,
			     sizeof(user)),
	    1);
	assert_string_equal(user, "bob");
	/* only len bytes are looked at */
	assert_int_equal(http_basic_user("Basic Ym9iOnB3", 13, user,
			     sizeof(user)),
	    -1);
	assert_int_equal(http_basic_user("Digest x", 8, user, sizeof(user)), 0);
	assert_int_equal(http_basic_user("", 0, user, sizeof(user)), 0);
	/* a user too long for the buffer is no usable name */
	memset(user, 'X', sizeof(user));
	assert_int_equal(http_basic_user("Basic Ym9iOnB3", 14, small,
			     sizeof(small)),
	    1);
	assert_string_equal(small, "bob");
	assert_int_equal(http_basic_user("Basic YWxpY2U6cHc=", 18, small,
			     sizeof(small)),
	    1);
	assert_string_equal(small, "");
	/* HTTP_USER_MAX at most, whatever the buffer */
	memset(raw, 'u', HTTP_USER_MAX + 1);
	memcpy(raw + HTTP_USER_MAX + 1, ":pw", 3);
	assert_true(b64_ntop((unsigned char *)raw, HTTP_USER_MAX + 4, b64,
			sizeof(b64)) > 0);
	n = (size_t)snprintf(field, sizeof(field), "Basic %s", b64);
	assert_int_equal(http_basic_user(field, n, user, sizeof(user)), 1);
	assert_string_equal(user, "");
	memmove(raw + HTTP_USER_MAX, raw + HTTP_USER_MAX + 1, 3);
	assert_true(b64_ntop((unsigned char *)raw, HTTP_USER_MAX + 3, b64,
			sizeof(b64)) > 0);
	n = (size_t)snprintf(field, sizeof(field), "Basic %s", b64);
	assert_int_equal(http_basic_user(field, n, user, sizeof(user)), 1);
	assert_int_equal(strlen(user), HTTP_USER_MAX);
}

static void
test_password_not_kept(void **state)
{
	(void)state;
	expect_key("/", basic_str("bob:Tr0ub4dor&3"), HTTP_KEY_USER,
	    HTTP_SRC_BASIC, "bob");
	assert_null(memmem(&key, sizeof(key), "Tr0ub4dor", 9));
}

static void
test_cookie_token(void **state)
{
	const char *tok = good_token();

	(void)state;
	expect_key("/", cookie("Cookie: ZM_AUTH_TOKEN=%s\r\n", tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_key("/", cookie("Cookie: a=1; ZM_AUTH_TOKEN=%s; b=2\r\n", tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_key("/", cookie("Cookie: a=1;ZM_AUTH_TOKEN=%s\r\n", tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_key("/",
	    cookie("Cookie: a=1\r\nCookie: ZM_AUTH_TOKEN=%s\r\n", tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
	expect_key("/", cookie("Cookie: ZM_AUTH_TOKEN=\"%s\"\r\n", tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
	/* the cookie name is exact */
	expect_none("/", cookie("Cookie: zm_auth_token=%s\r\n", tok));
	expect_none("/", cookie("Cookie: XZM_AUTH_TOKEN=%s\r\n", tok));
	expect_none("/", cookie("Cookie: ZM_AUTH_TOKEN =%s\r\n", tok));
	/* Basic comes first */
	expect_key("/",
	    cookie("Cookie: ZM_AUTH_TOKEN=%s\r\n"
		   "Authorization: Basic Ym9iOnB3\r\n",
		tok),
	    HTTP_KEY_USER, HTTP_SRC_BASIC, "bob");
	/* another cookie name by configuration */
	snprintf(conf.cookie, sizeof(conf.cookie), "ZM_ADMIN_AUTH_TOKEN");
	expect_key("/",
	    cookie("Cookie: ZM_AUTH_TOKEN=x; "
		   "ZM_ADMIN_AUTH_TOKEN=%s\r\n",
		tok),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, ACCOUNT_ID);
}

static void
test_token_arg(void **state)
{
	char target[2048];
	const char *tok = good_token();

	(void)state;
	snprintf(target, sizeof(target), "/service/soap?zauthtoken=%s", tok);
	expect_key(target, "", HTTP_KEY_ACCOUNT_ID, HTTP_SRC_TOKEN_ARG,
	    ACCOUNT_ID);
	snprintf(target, sizeof(target), "/service/soap?a=b&ZAuthToken=%s&c",
	    tok);
	expect_key(target, "", HTTP_KEY_ACCOUNT_ID, HTTP_SRC_TOKEN_ARG,
	    ACCOUNT_ID);
	/* the cookie comes first */
	expect_key(target,
	    cookie("Cookie: ZM_AUTH_TOKEN=%s\r\n", zm_token("id=5:other;")),
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_COOKIE, "other");
	/* but a malformed cookie does not hide the argument */
	expect_key(target, "Cookie: ZM_AUTH_TOKEN=junk\r\n",
	    HTTP_KEY_ACCOUNT_ID, HTTP_SRC_TOKEN_ARG, ACCOUNT_ID);
	/* and a malformed argument is ignored */
	expect_none("/service/soap?zauthtoken=0_ab_6964", "");
	expect_none("/service/soap?zauthtoken=%zz", "");
}

static void
test_malformed_tokens_ignored(void **state)
{
	const char *bad[] = {
	    "junk",
	    "",
	    "0_" HMAC,
	    "0__6964",
	    "_" HMAC "_6964",
	    "x_" HMAC "_6964",
	    "0_" HMAC "_69643d", /* odd data */
	    "0_" HMAC "_69643",	 /* odd hex length */
	    "0_" HMAC "_6964zz",
	    "0_zz_6964",
	};
	char field[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(field, sizeof(field), "Cookie: ZM_AUTH_TOKEN=%s\r\n",
		    bad[i]);
		expect_none("/", field);
	}
}

static int
token_id(const char *data, char *id, size_t idsz)
{
	const char *tok = zm_token(data);

	memset(id, 'X', idsz);
	return http_zm_token_id(tok, strlen(tok), id, idsz);
}

static void
test_zm_token_id(void **state)
{
	char id[HTTP_USER_MAX + 1], small[8], data[1024];

	(void)state;
	assert_int_equal(token_id("id=36:" ACCOUNT_ID ";", id, sizeof(id)), 0);
	assert_string_equal(id, ACCOUNT_ID);
	/* no ';' after the last one, id not first */
	assert_int_equal(token_id("exp=3:123;id=3:a-Z", id, sizeof(id)), 0);
	assert_string_equal(id, "a-Z");
	/* a value with ';' and '=' inside is read by its length */
	assert_int_equal(token_id("x=7:a;id=3:;id=3:abc", id, sizeof(id)), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(token_id("ida=3:abc;id=1:b", id, sizeof(id)), 0);
	assert_string_equal(id, "b");
	/* uppercase hex is hex too */
	assert_int_equal(http_zm_token_id("12_AB_69643D313A41", 18, id,
			     sizeof(id)),
	    0);
	assert_string_equal(id, "A");

	assert_int_equal(token_id("exp=3:123;", id, sizeof(id)), -1);
	assert_string_equal(id, "");
	assert_int_equal(token_id("id=0:;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=3:a_b;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=3:a b;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=3:ab;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=2:abc;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=3:abc;;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=3:abcX", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=:abc;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=x:abc;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id3:abc;", id, sizeof(id)), -1);
	assert_int_equal(token_id("=3:abc;", id, sizeof(id)), -1);
	assert_int_equal(token_id("id=99999999999999999999999:abc;", id,
			     sizeof(id)),
	    -1);
	/* twice is ambiguous */
	assert_int_equal(token_id("id=1:a;id=1:b;", id, sizeof(id)), -1);
	assert_string_equal(id, "");
	/* HTTP_USER_MAX bytes at most, and what the buffer holds */
	snprintf(data, sizeof(data), "id=%d:%0*d;", HTTP_USER_MAX,
	    HTTP_USER_MAX, 0);
	assert_int_equal(token_id(data, id, sizeof(id)), 0);
	assert_int_equal(strlen(id), HTTP_USER_MAX);
	snprintf(data, sizeof(data), "id=%d:%0*d;", HTTP_USER_MAX + 1,
	    HTTP_USER_MAX + 1, 0);
	assert_int_equal(token_id(data, id, sizeof(id)), -1);
	assert_int_equal(token_id("id=7:1234567;", small, sizeof(small)), 0);
	assert_string_equal(small, "1234567");
	assert_int_equal(token_id("id=8:12345678;", small, sizeof(small)), -1);
	assert_string_equal(small, "");
}

static void
test_cookie_value(void **state)
{
	const char *h = "a=1; b=two;c=\"q\" ;  d=; e";
	const char *v;
	size_t n;

	(void)state;
	assert_int_equal(http_cookie_value(h, strlen(h), "a", &v, &n), 1);
	assert_int_equal(n, 1);
	assert_memory_equal(v, "1", 1);
	assert_int_equal(http_cookie_value(h, strlen(h), "b", &v, &n), 1);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "two", 3);
	assert_int_equal(http_cookie_value(h, strlen(h), "c", &v, &n), 1);
	assert_int_equal(n, 1);
	assert_memory_equal(v, "q", 1);
	assert_int_equal(http_cookie_value(h, strlen(h), "d", &v, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(http_cookie_value(h, strlen(h), "e", &v, &n), 0);
	assert_int_equal(http_cookie_value(h, strlen(h), "A", &v, &n), 0);
	assert_int_equal(http_cookie_value(h, strlen(h), "two", &v, &n), 0);
	/* only len bytes */
	assert_int_equal(http_cookie_value(h, 3, "b", &v, &n), 0);
	assert_int_equal(http_cookie_value(h, 2, "a", &v, &n), 1);
	assert_int_equal(n, 0);
}

static void
test_query_arg(void **state)
{
	const char *t = "/p?a=1&User=b%40x&e=&f&g=a+b&User=second";
	char out[16];

	(void)state;
	assert_int_equal(http_query_arg(t, strlen(t), "a", out, sizeof(out)),
	    1);
	assert_string_equal(out, "1");
	assert_int_equal(http_query_arg(t, strlen(t), "user", out, sizeof(out)),
	    1);
	assert_string_equal(out, "b@x");
	assert_int_equal(http_query_arg(t, strlen(t), "e", out, sizeof(out)),
	    1);
	assert_string_equal(out, "");
	assert_int_equal(http_query_arg(t, strlen(t), "f", out, sizeof(out)),
	    1);
	assert_string_equal(out, "");
	assert_int_equal(http_query_arg(t, strlen(t), "g", out, sizeof(out)),
	    1);
	assert_string_equal(out, "a+b");
	assert_int_equal(http_query_arg(t, strlen(t), "h", out, sizeof(out)),
	    0);
	assert_int_equal(http_query_arg(t, strlen(t), "p", out, sizeof(out)),
	    0);
	assert_int_equal(http_query_arg("/p", 2, "p", out, sizeof(out)), 0);
	assert_int_equal(http_query_arg("/p?a=1", 4, "a", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	/* malformed, too long, or a NUL the caller could not see */
	assert_int_equal(http_query_arg("/?a=%4", 6, "a", out, sizeof(out)),
	    -1);
	assert_string_equal(out, "");
	assert_int_equal(http_query_arg("/?a=%00", 7, "a", out, sizeof(out)),
	    -1);
	assert_int_equal(http_query_arg("/?a=0123456789abcdef", 20, "a", out,
			     sizeof(out)),
	    -1);
	assert_int_equal(http_query_arg("/?a=0123456789abcde", 19, "a", out,
			     sizeof(out)),
	    1);
	assert_string_equal(out, "0123456789abcde");
	assert_int_equal(http_query_arg("/?a=x", 5, "a", out, 0), -1);
}

static void
test_use_flags(void **state)
{
	const char *fields;
	char target[2048];

	(void)state;
	snprintf(target, sizeof(target), "/home/alice/?zauthtoken=%s",
	    good_token());
	fields = "Authorization: Basic Ym9iOnB3\r\n";
	expect_key(target, fields, HTTP_KEY_USER, HTTP_SRC_PATH, "alice");
	conf.use_path = 0;
	expect_key(target, fields, HTTP_KEY_USER, HTTP_SRC_BASIC, "bob");
	/* no path step, no refusal for its encoding either */
	expect_key("/home/a%zz/", fields, HTTP_KEY_USER, HTTP_SRC_BASIC, "bob");
	conf.use_basic = 0;
	expect_key(target, fields, HTTP_KEY_ACCOUNT_ID, HTTP_SRC_TOKEN_ARG,
	    ACCOUNT_ID);
	assert_int_equal(key.has_basic, 0);
	assert_int_equal(route("/", "Authorization: Basic !!\r\n"), 0);
	conf.use_cookie = 0;
	expect_none(target, fields);
	conf.use_path = 1;
	expect_key(target, fields, HTTP_KEY_USER, HTTP_SRC_PATH, "alice");
	/* custom prefixes; the first that matches is used */
	http_route_conf_default(&conf);
	conf.nprefixes = 2;
	snprintf(conf.prefixes[0], HTTP_PREFIX_MAX, "/zimbra/home/");
	snprintf(conf.prefixes[1], HTTP_PREFIX_MAX, "/zimbra/");
	expect_key("/zimbra/home/bob/", "", HTTP_KEY_USER, HTTP_SRC_PATH,
	    "bob");
	expect_key("/zimbra/carol/", "", HTTP_KEY_USER, HTTP_SRC_PATH, "carol");
	expect_none("/home/bob/", "");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
	const struct CMUnitTest tests[] = {
	    T(test_conf_default),
	    T(test_path_prefixes),
	    T(test_path_decoding),
	    T(test_tilde),
	    T(test_activesync),
	    T(test_ews),
	    T(test_basic),
	    T(test_basic_other_schemes),
	    T(test_basic_malformed),
	    T(test_basic_user_direct),
	    T(test_password_not_kept),
	    T(test_cookie_token),
	    T(test_token_arg),
	    T(test_malformed_tokens_ignored),
	    T(test_zm_token_id),
	    T(test_cookie_value),
	    T(test_query_arg),
	    T(test_use_flags),
	};
#undef T

	return cmocka_run_group_tests_name("http_route", tests, NULL, NULL);
}
