/*
 * Unit tests for the PROXY protocol parser (src/proxy.c), against the
 * rules of haproxy's doc/proxy-protocol.txt: v1 lines (TCP4, TCP6,
 * UNKNOWN, the 107-byte cap, CRLF only), v2 headers (the signature with
 * its NUL, LOCAL and PROXY, each family, TLVs, length bounds), and that a
 * header cut anywhere asks for more rather than passing or failing.
 */
#include "proxy.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static ssize_t parse_str(const char *s, struct proxy_header *h)
{
	return proxy_parse(s, strlen(s), h, NULL);
}

/* Every proper prefix of @buf must ask for more bytes. */
static void assert_prefixes_need_more(const void *buf, size_t len)
{
	struct proxy_header h;

	for (size_t i = 0; i < len; i++)
		ck_assert_msg(proxy_parse(buf, i, &h, NULL) == 0,
		    "a %zu-byte prefix of a %zu-byte header did not ask for "
		    "more", i, len);
}

static void assert_v4(const union netaddr_ip *a, const char *ip, int port)
{
	char text[INET_ADDRSTRLEN];

	ck_assert_int_eq(a->sa.sa_family, AF_INET);
	inet_ntop(AF_INET, &a->in.sin_addr, text, sizeof(text));
	ck_assert_str_eq(text, ip);
	ck_assert_int_eq(ntohs(a->in.sin_port), port);
}

static void assert_v6(const union netaddr_ip *a, const char *ip, int port)
{
	char text[INET6_ADDRSTRLEN];

	ck_assert_int_eq(a->sa.sa_family, AF_INET6);
	inet_ntop(AF_INET6, &a->in6.sin6_addr, text, sizeof(text));
	ck_assert_str_eq(text, ip);
	ck_assert_int_eq(ntohs(a->in6.sin6_port), port);
}

START_TEST(test_proxy_v1_tcp4_gives_both_addresses_and_its_length)
{
	const char *line = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
	char buf[128];
	struct proxy_header h;

	/* Payload after the line is not the header's. */
	snprintf(buf, sizeof(buf), "%shello", line);
	ck_assert_int_eq(parse_str(buf, &h), (ssize_t)strlen(line));
	ck_assert_int_eq(h.version, 1);
	ck_assert(h.has_addr);
	ck_assert(!h.local);
	assert_v4(&h.src, "192.0.2.1", 56324);
	assert_v4(&h.dst, "198.51.100.7", 443);
	assert_prefixes_need_more(line, strlen(line));
}
END_TEST

START_TEST(test_proxy_v1_tcp6_gives_both_addresses)
{
	const char *line = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	struct proxy_header h;

	ck_assert_int_eq(parse_str(line, &h), (ssize_t)strlen(line));
	assert_v6(&h.src, "2001:db8::1", 65535);
	assert_v6(&h.dst, "::1", 0);
}
END_TEST

START_TEST(test_proxy_v1_unknown_keeps_the_socket_addresses)
{
	const char *shortform = "PROXY UNKNOWN\r\n";
	const char *longform = "PROXY UNKNOWN ffff:f::f whatever 1 2\r\n";
	struct proxy_header h;

	ck_assert_int_eq(parse_str(shortform, &h), 15);
	ck_assert(!h.has_addr);
	ck_assert_int_eq(parse_str(longform, &h), (ssize_t)strlen(longform));
	ck_assert(!h.has_addr);
	ck_assert_int_eq(parse_str("PROXY UNKNOWNX\r\n", &h), -1);
}
END_TEST

START_TEST(test_proxy_v1_longest_line_fits_and_one_more_byte_does_not)
{
	/* The spec's worst case: 107 bytes with the CRLF. */
	const char *worst = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char over[PROXY_V1_MAX + 2];
	struct proxy_header h;
	const char *why = NULL;

	ck_assert_uint_eq(strlen(worst), PROXY_V1_MAX);
	ck_assert_int_eq(parse_str(worst, &h), PROXY_V1_MAX);
	/* 107 bytes and still no LF: refused, without waiting for more. */
	memset(over, 'f', sizeof(over));
	memcpy(over, "PROXY UNKNOWN ", 14);
	ck_assert_int_eq(proxy_parse(over, PROXY_V1_MAX, &h, &why), -1);
	ck_assert_ptr_nonnull(strstr(why, "107"));
	ck_assert_int_eq(proxy_parse(over, PROXY_V1_MAX - 1, &h, NULL), 0);
	/* A CRLF as bytes 108 and 109 is too late. */
	over[PROXY_V1_MAX] = '\r';
	over[PROXY_V1_MAX + 1] = '\n';
	ck_assert_int_eq(proxy_parse(over, sizeof(over), &h, NULL), -1);
}
END_TEST

START_TEST(test_proxy_v1_needs_crlf_not_a_bare_cr_or_lf)
{
	struct proxy_header h;

	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &h), -1);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r3\r\n",
	    &h), -1);
	/* A CR alone is the start of a CRLF: wait. */
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", &h), 0);
}
END_TEST

START_TEST(test_proxy_v1_rejects_what_is_not_canonical)
{
	static const char *const bad_lines[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",	/* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",	/* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",		/* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
		"PROXY \r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"GET / HTTP/1.0\r\n",
		"hello\n",
		NULL,
	};
	struct proxy_header h;

	for (int i = 0; bad_lines[i]; i++) {
		const char *why = NULL;

		ck_assert_msg(proxy_parse(bad_lines[i], strlen(bad_lines[i]),
		    &h, &why) == -1, "accepted '%s'", bad_lines[i]);
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

START_TEST(test_proxy_v1_address_with_a_nul_is_refused)
{
	const char line[] = "PROXY TCP4 1.2.3.4\0x 5.6.7.8 1 2\r\n";
	struct proxy_header h;

	ck_assert_int_eq(proxy_parse(line, sizeof(line) - 1, &h, NULL), -1);
}
END_TEST

START_TEST(test_proxy_garbage_fails_at_the_first_wrong_byte)
{
	struct proxy_header h;

	ck_assert_int_eq(proxy_parse("G", 1, &h, NULL), -1);
	ck_assert_int_eq(proxy_parse("PROXX", 5, &h, NULL), -1);
	ck_assert_int_eq(proxy_parse("\r\n\r\n\x01", 5, &h, NULL), -1);
	ck_assert_int_eq(proxy_parse("", 0, &h, NULL), 0);
}
END_TEST

/* A v2 header: the signature, @ver_cmd, @fam, then @body_len bytes of
 * @body.  Returns its length. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam,
    const void *body, size_t body_len)
{
	memcpy(out, sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(body_len >> 8);
	out[15] = (unsigned char)body_len;
	if (body_len)		/* @body may be NULL then */
		memcpy(out + 16, body, body_len);
	return 16 + body_len;
}

static const unsigned char v4_block[12] = {
	192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb,	/* 56324 443 */
};

START_TEST(test_proxy_v2_proxy_tcp4_gives_both_addresses)
{
	unsigned char buf[64];
	size_t n = v2(buf, 0x21, 0x11, v4_block, sizeof(v4_block));
	struct proxy_header h;

	memcpy(buf + n, "after", 5);
	ck_assert_int_eq(proxy_parse(buf, n + 5, &h, NULL), (ssize_t)n);
	ck_assert_int_eq(h.version, 2);
	ck_assert(!h.local);
	ck_assert(h.has_addr);
	assert_v4(&h.src, "192.0.2.1", 56324);
	assert_v4(&h.dst, "198.51.100.7", 443);
	assert_prefixes_need_more(buf, n);
}
END_TEST

START_TEST(test_proxy_v2_proxy_tcp6_gives_both_addresses)
{
	unsigned char body[36] = { 0x20, 0x01, 0x0d, 0xb8 }, buf[64];
	struct proxy_header h;
	size_t n;

	body[15] = 1;			/* 2001:db8::1 */
	body[31] = 1;			/* ::1 */
	body[32] = 0x30;
	body[33] = 0x39;		/* 12345 */
	body[35] = 80;
	n = v2(buf, 0x21, 0x21, body, sizeof(body));
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), (ssize_t)n);
	assert_v6(&h.src, "2001:db8::1", 12345);
	assert_v6(&h.dst, "::1", 80);
}
END_TEST

START_TEST(test_proxy_v2_local_is_accepted_without_addresses)
{
	unsigned char buf[64];
	struct proxy_header h;
	size_t n;

	/* HAProxy's health checks: LOCAL, UNSPEC, no body. */
	n = v2(buf, 0x20, 0x00, NULL, 0);
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), 16);
	ck_assert(h.local);
	ck_assert(!h.has_addr);
	/* LOCAL with an address block: still LOCAL, block skipped. */
	n = v2(buf, 0x20, 0x11, v4_block, sizeof(v4_block));
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), (ssize_t)n);
	ck_assert(h.local);
	ck_assert(!h.has_addr);
}
END_TEST

START_TEST(test_proxy_v2_unspec_and_unix_keep_the_socket_addresses)
{
	unsigned char body[216] = { 0 }, buf[256];
	struct proxy_header h;
	size_t n;

	n = v2(buf, 0x21, 0x00, NULL, 0);
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), 16);
	ck_assert(!h.has_addr);
	n = v2(buf, 0x21, 0x31, body, sizeof(body));
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), (ssize_t)n);
	ck_assert(!h.has_addr);
}
END_TEST

START_TEST(test_proxy_v2_tlvs_are_skipped_and_must_fit)
{
	unsigned char body[64], buf[96];
	struct proxy_header h;
	size_t n;

	memcpy(body, v4_block, 12);
	/* NOOP with 2 bytes, then UNIQUE_ID with 3. */
	memcpy(body + 12, "\x04\x00\x02xx\x05\x00\x03id!", 11);
	n = v2(buf, 0x21, 0x11, body, 23);
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), (ssize_t)n);
	assert_v4(&h.src, "192.0.2.1", 56324);
	/* A TLV claiming more than the header holds. */
	body[14] = 9;
	n = v2(buf, 0x21, 0x11, body, 23);
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), -1);
	/* Two stray bytes cannot be a TLV. */
	n = v2(buf, 0x21, 0x11, body, 14);
	ck_assert_int_eq(proxy_parse(buf, n, &h, NULL), -1);
}
END_TEST

START_TEST(test_proxy_v2_length_bounds)
{
	unsigned char *buf = calloc(1, PROXY_V2_MAX + 1);
	struct proxy_header h;
	const char *why = NULL;
	size_t n;

	/* Shorter than the IPv4 block. */
	n = v2(buf, 0x21, 0x11, v4_block, 11);
	ck_assert_int_eq(proxy_parse(buf, n, &h, &why), -1);
	ck_assert_ptr_nonnull(strstr(why, "shorter"));
	/* The longest: 65535 bytes of body, one big NOOP after the block. */
	n = v2(buf, 0x21, 0x11, v4_block, 12);
	buf[14] = buf[15] = 0xff;
	buf[28] = 0x04;
	buf[29] = (65535 - 15) >> 8;
	buf[30] = (65535 - 15) & 0xff;
	ck_assert_int_eq(proxy_parse(buf, PROXY_V2_MAX - 1, &h, NULL), 0);
	ck_assert_int_eq(proxy_parse(buf, PROXY_V2_MAX + 1, &h, NULL),
	    PROXY_V2_MAX);
	free(buf);
}
END_TEST

START_TEST(test_proxy_v2_rejects_bad_version_command_and_family)
{
	unsigned char buf[64];
	struct proxy_header h;

	v2(buf, 0x11, 0x11, v4_block, 12);	/* version 1 */
	ck_assert_int_eq(proxy_parse(buf, 28, &h, NULL), -1);
	/* Rejected as soon as byte 13 is in, without waiting. */
	ck_assert_int_eq(proxy_parse(buf, 13, &h, NULL), -1);
	v2(buf, 0x22, 0x11, v4_block, 12);	/* command 2 */
	ck_assert_int_eq(proxy_parse(buf, 28, &h, NULL), -1);
	v2(buf, 0x21, 0x41, v4_block, 12);	/* family 4 */
	ck_assert_int_eq(proxy_parse(buf, 28, &h, NULL), -1);
	v2(buf, 0x21, 0x13, v4_block, 12);	/* transport 3 */
	ck_assert_int_eq(proxy_parse(buf, 28, &h, NULL), -1);
}
END_TEST

START_TEST(test_proxy_v2_signature_is_compared_past_its_nul)
{
	unsigned char buf[64];
	struct proxy_header h;

	v2(buf, 0x21, 0x11, v4_block, 12);
	buf[7] = 'X';			/* after the NUL at byte 5 */
	ck_assert_int_eq(proxy_parse(buf, 28, &h, NULL), -1);
	ck_assert_int_eq(proxy_parse(buf, 7, &h, NULL), 0);
	ck_assert_int_eq(proxy_parse(buf, 8, &h, NULL), -1);
}
END_TEST

static Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *v1 = tcase_create("v1");
	TCase *v2c = tcase_create("v2");

	tcase_add_test(v1, test_proxy_v1_tcp4_gives_both_addresses_and_its_length);
	tcase_add_test(v1, test_proxy_v1_tcp6_gives_both_addresses);
	tcase_add_test(v1, test_proxy_v1_unknown_keeps_the_socket_addresses);
	tcase_add_test(v1,
	    test_proxy_v1_longest_line_fits_and_one_more_byte_does_not);
	tcase_add_test(v1, test_proxy_v1_needs_crlf_not_a_bare_cr_or_lf);
	tcase_add_test(v1, test_proxy_v1_rejects_what_is_not_canonical);
	tcase_add_test(v1, test_proxy_v1_address_with_a_nul_is_refused);
	tcase_add_test(v1, test_proxy_garbage_fails_at_the_first_wrong_byte);
	suite_add_tcase(s, v1);
	tcase_add_test(v2c, test_proxy_v2_proxy_tcp4_gives_both_addresses);
	tcase_add_test(v2c, test_proxy_v2_proxy_tcp6_gives_both_addresses);
	tcase_add_test(v2c, test_proxy_v2_local_is_accepted_without_addresses);
	tcase_add_test(v2c,
	    test_proxy_v2_unspec_and_unix_keep_the_socket_addresses);
	tcase_add_test(v2c, test_proxy_v2_tlvs_are_skipped_and_must_fit);
	tcase_add_test(v2c, test_proxy_v2_length_bounds);
	tcase_add_test(v2c,
	    test_proxy_v2_rejects_bad_version_command_and_family);
	tcase_add_test(v2c, test_proxy_v2_signature_is_compared_past_its_nul);
	suite_add_tcase(s, v2c);
	return s;
}

int main(void)
{
	return run_suite(proxy_suite());
}
