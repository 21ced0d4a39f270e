/*
 * PROXY protocol headers, good and hostile, whole and split at every
 * byte: the parser must name the client only for a valid header and
 * never consume a byte of what follows it.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxyproto.h"

static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a,
    0x51, 0x55, 0x49, 0x54, 0x0a};

static size_t
v2_header(unsigned char *buf, unsigned char cmd, unsigned char fam,
    const unsigned char *addr, size_t alen)
{
	memcpy(buf, sig, 12);
	buf[12] = 0x20 | cmd;
	buf[13] = fam;
	buf[14] = alen >> 8;
	buf[15] = alen & 0xff;
	memcpy(buf + 16, addr, alen);
	return 16 + alen;
}

static void
assert_v4(const struct sockaddr_storage *ss, const char *ip, int port)
{
	const struct sockaddr_in *sin = (const void *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
test_v1_tcp4(void **state)
{
	const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 "
			"993\r\na LOGIN";
	struct proxy_result r;

	(void)state;
	assert_int_equal(proxy_parse((const unsigned char *)h, strlen(h), &r),
	    PROXY_OK);
	assert_int_equal(r.consumed, strlen(h) - strlen("a LOGIN"));
	assert_true(r.has_addr);
	assert_v4(&r.src, "192.0.2.7", 40000);
	assert_v4(&r.dst, "198.51.100.1", 993);
}

static void
test_v1_tcp6_and_unknown(void **state)
{
	const char *h6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
	const char *hu = "PROXY UNKNOWN\r\n";
	struct proxy_result r;

	(void)state;
	assert_int_equal(proxy_parse((const unsigned char *)h6, strlen(h6), &r),
	    PROXY_OK);
	assert_int_equal(r.src.ss_family, AF_INET6);
	assert_int_equal(proxy_parse((const unsigned char *)hu, strlen(hu), &r),
	    PROXY_OK);
	assert_false(r.has_addr);
	assert_int_equal(r.consumed, strlen(hu));
}

static void
test_v1_hostile(void **state)
{
	static const char *bad[] = {
	    "PROXY TCP4 192.0.2.7 198.51.100.1 40000 993\n", /* no CR */
	    "PROXY TCP4 999.0.2.7 198.51.100.1 1 2\r\n",
	    "PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n", /* leading 0 */
	    "PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n",
	    "PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n",
	    "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", /* family */
	    "PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
	    "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
	    "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",
	    "PROXY\r\n",
	    "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
	    "GET / HTTP/1.0\r\n",
	    "a LOGIN user pass\r\n",
	};
	struct proxy_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(proxy_parse((const unsigned char *)bad[i],
				     strlen(bad[i]), &r),
		    PROXY_BAD);
}

static void
test_v1_too_long(void **state)
{
	char buf[200];
	struct proxy_result r;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "PROXY ", 6);
	assert_int_equal(proxy_parse((unsigned char *)buf, 100, &r),
	    PROXY_INCOMPLETE);
	assert_int_equal(proxy_parse((unsigned char *)buf, sizeof(buf), &r),
	    PROXY_BAD);
}

static void
test_v2_inet(void **state)
{
	unsigned char buf[64],
	    addr[12] = {192, 0, 2, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x00, 0x8f};
	struct proxy_result r;
	size_t n;

	(void)state;
	n = v2_header(buf, 0x1, 0x11, addr, sizeof(addr));
	memcpy(buf + n, "abc", 3);
	assert_int_equal(proxy_parse(buf, n + 3, &r), PROXY_OK);
	assert_int_equal(r.consumed, n);
	assert_v4(&r.src, "192.0.2.9", 8080);
	assert_v4(&r.dst, "127.0.0.1", 143);
}

static void
test_v2_local_tlv_and_hostile(void **state)
{
	unsigned char buf[64],
	    addr[20] = {192, 0, 2, 9, 127, 0, 0, 1, 0, 1, 0, 2, 0x04, 0x00,
		0x03, 'x', 'y', 'z', 0, 0};
	struct proxy_result r;
	size_t n;

	(void)state;
	/* TLVs after the addresses are skipped, not parsed */
	n = v2_header(buf, 0x1, 0x11, addr, sizeof(addr));
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_OK);
	assert_int_equal(r.consumed, n);
	/* LOCAL: a health check, no client */
	n = v2_header(buf, 0x0, 0x00, addr, 0);
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_OK);
	assert_false(r.has_addr);
	/* unknown command, version, family, short address block */
	n = v2_header(buf, 0x2, 0x11, addr, 12);
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
	n = v2_header(buf, 0x1, 0x11, addr, 12);
	buf[12] = 0x11;
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
	n = v2_header(buf, 0x1, 0x12, addr, 12); /* UDP */
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
	n = v2_header(buf, 0x1, 0x11, addr, 8);
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
	n = v2_header(buf, 0x1, 0x21, addr, 20); /* IPv6 short */
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
	/* an announced length past our bound */
	n = v2_header(buf, 0x1, 0x11, addr, 12);
	buf[14] = 0xff;
	buf[15] = 0xff;
	assert_int_equal(proxy_parse(buf, n, &r), PROXY_BAD);
}

/* Every prefix of a valid header is incomplete, never wrong or done. */
static void
test_split_at_every_byte(void **state)
{
	unsigned char buf[64],
	    addr[12] = {192, 0, 2, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x00, 0x8f};
	const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 4 9\r\n";
	struct proxy_result r;
	size_t n, k;

	(void)state;
	n = v2_header(buf, 0x1, 0x11, addr, sizeof(addr));
	for (k = 0; k < n; k++)
		assert_int_equal(proxy_parse(buf, k, &r), PROXY_INCOMPLETE);
	for (k = 0; k < strlen(v1); k++)
		assert_int_equal(proxy_parse((const unsigned char *)v1, k, &r),
		    PROXY_INCOMPLETE);
}

/*
 * tlsproc reads the header off the socket in whatever pieces arrive and
 * takes a piece as soon as the parser calls it incomplete, so: with a
 * TLS ClientHello right behind the header, every cut before the header's
 * end is incomplete and every cut after it is done, with the header's
 * length and not one byte of the record.
 */
static void
test_header_then_tls_record(void **state)
{
	static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00,
	    0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
	unsigned char buf[128],
	    addr[12] = {203, 0, 113, 7, 127, 0, 0, 1, 0x12, 0x67, 0x7a, 0x6b};
	const char *v1 = "PROXY TCP4 203.0.113.7 127.0.0.1 4711 31339\r\n";
	struct proxy_result r;
	size_t n, k, h;

	(void)state;
	for (h = 0; h < 2; h++) {
		if (h == 0)
			n = v2_header(buf, 0x1, 0x11, addr, sizeof(addr));
		else
			memcpy(buf, v1, n = strlen(v1));
		memcpy(buf + n, hello, sizeof(hello));
		for (k = 0; k <= n + sizeof(hello); k++) {
			if (k < n) {
				assert_int_equal(proxy_parse(buf, k, &r),
				    PROXY_INCOMPLETE);
				continue;
			}
			assert_int_equal(proxy_parse(buf, k, &r), PROXY_OK);
			assert_int_equal(r.consumed, n);
			assert_v4(&r.src, "203.0.113.7", 4711);
			assert_v4(&r.dst, "127.0.0.1", 31339);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_tcp4),
	    cmocka_unit_test(test_v1_tcp6_and_unknown),
	    cmocka_unit_test(test_v1_hostile),
	    cmocka_unit_test(test_v1_too_long),
	    cmocka_unit_test(test_v2_inet),
	    cmocka_unit_test(test_v2_local_tlv_and_hostile),
	    cmocka_unit_test(test_split_at_every_byte),
	    cmocka_unit_test(test_header_then_tls_record),
	};

	return cmocka_run_group_tests_name("proxyproto", tests, NULL, NULL);
}
