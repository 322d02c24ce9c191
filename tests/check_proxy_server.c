/*
 * Integration tests for proxy+ listeners and --reuseport: a real
 * echoserver on kernel-chosen loopback ports, spoken to over real sockets
 * the way a load balancer does.  They prove what the PROXY protocol asks
 * of a receiver: nothing is sent (not even a banner) before a complete
 * header, bad, truncated and late headers close the connection and are
 * counted, LOCAL (a health check) is accepted, the payload after the
 * header reaches the handler, and the real client's address is what the
 * -v logs show.  The parser itself is unit-tested in check_proxy.c, and
 * HAProxy in front of three servers is tests/check_haproxy.c.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct test_server server, other;

static void teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
	test_server_stop(&other, SIGKILL);
	test_server_cleanup(&other);
}

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static void send_str(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

static void expect(int fd, const char *want)
{
	size_t len = strlen(want);
	char *got = calloc(1, len + 1);

	ck_assert_uint_eq(read_exact(fd, got, len, now_ms() + 20000), len);
	ck_assert_msg(memcmp(got, want, len) == 0, "got '%s', want '%s'",
	    got, want);
	free(got);
}

/* True if nothing arrives on @fd for @ms: proving an absence needs a
 * bounded wait. */
static int quiet_for(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

/* The local port of @fd, as the server sees the client's. */
static int local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

START_TEST(test_proxy_nothing_is_sent_before_the_header_not_even_a_banner)
{
	const char *args[] = { "--banner", "hello", "-l",
		"proxy+line@127.0.0.1", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.ports[1]);
	ck_assert_msg(quiet_for(fd, 300), "the server spoke first");
	/* Half a header: still nothing. */
	send_str(fd, "PROXY TCP4 192.0.2.1 ");
	ck_assert_msg(quiet_for(fd, 300), "the server spoke mid-header");
	/* The rest, and a line in the same write. */
	send_str(fd, "192.0.2.2 1234 5555\r\nping\n");
	expect(fd, "hello\r\nping\n");
	close(fd);
}
END_TEST

START_TEST(test_proxy_v1_client_address_is_in_the_open_and_close_lines)
{
	const char *args[] = { "-v", "-l", "proxy+echo@127.0.0.1", NULL };
	int fd;

	test_server_start(&server, args);
	fd = test_connect(server.ports[1]);
	send_str(fd, "PROXY TCP4 192.0.2.1 192.0.2.2 4321 5555\r\nhello");
	expect(fd, "hello");
	ck_assert(test_server_log_wait(&server,
	    "open: client 192.0.2.1:4321 (PROXY v1)", now_ms() + 20000));
	close(fd);
	/* Payload only: the 42-byte header is not counted. */
	ck_assert(test_server_log_wait(&server,
	    "closed: client 192.0.2.1:4321, 5 bytes in, 5 out",
	    now_ms() + 20000));
}
END_TEST

START_TEST(test_proxy_v2_header_a_byte_at_a_time_then_payload)
{
	const char *args[] = { "-v", "-l", "proxy+echo@127.0.0.1", NULL };
	unsigned char hdr[16 + 36 + 4] = { 0 };
	int fd;

	memcpy(hdr, v2_sig, 12);
	hdr[12] = 0x21;			/* v2, PROXY */
	hdr[13] = 0x21;			/* TCP over IPv6 */
	hdr[15] = 36 + 4;		/* the addresses and a NOOP TLV */
	hdr[16] = 0x20;
	hdr[17] = 0x01;
	hdr[18] = 0x0d;
	hdr[19] = 0xb8;
	hdr[31] = 7;			/* 2001:db8::7 */
	hdr[47] = 1;			/* ::1 */
	hdr[48] = 0x1f;
	hdr[49] = 0x90;			/* port 8080 */
	hdr[51] = 80;
	hdr[52] = 0x04;			/* NOOP, one byte */
	hdr[54] = 1;
	test_server_start(&server, args);
	fd = test_connect(server.ports[1]);
	/* TCP_NODELAY (test_connect): each byte its own segment. */
	for (size_t i = 0; i < sizeof(hdr) - 1; i++)
		write_all(fd, &hdr[i], 1);
	ck_assert(quiet_for(fd, 100));
	{
		unsigned char last[8];

		last[0] = hdr[sizeof(hdr) - 1];
		memcpy(last + 1, "payload", 7);
		write_all(fd, last, sizeof(last));
	}
	expect(fd, "payload");
	ck_assert(test_server_log_wait(&server,
	    "open: client [2001:db8::7]:8080 (PROXY v2)", now_ms() + 20000));
	close(fd);
}
END_TEST

START_TEST(test_proxy_v2_local_keeps_the_socket_address)
{
	const char *args[] = { "-v", "-l", "proxy+echo@127.0.0.1", NULL };
	unsigned char hdr[16 + 5];
	char want[96];
	int fd;

	memcpy(hdr, v2_sig, 12);
	hdr[12] = 0x20;			/* v2, LOCAL: a health check */
	hdr[13] = 0x00;
	hdr[14] = hdr[15] = 0;
	memcpy(hdr + 16, "check", 5);
	test_server_start(&server, args);
	fd = test_connect(server.ports[1]);
	write_all(fd, hdr, sizeof(hdr));
	expect(fd, "check");
	snprintf(want, sizeof(want), "open: client 127.0.0.1:%d (PROXY v2 "
	    "LOCAL)", local_port(fd));
	ck_assert_msg(test_server_log_wait(&server, want, now_ms() + 20000),
	    "no '%s' in the log", want);
	close(fd);
}
END_TEST

START_TEST(test_proxy_bad_and_truncated_headers_close_and_are_counted)
{
	const char *args[] = { "-v", "-l", "proxy+echo@127.0.0.1", NULL };
	int fd, plain;

	test_server_start(&server, args);
	plain = test_connect(server.port);
	/* A plain client on a proxy+ port. */
	fd = test_connect(server.ports[1]);
	send_str(fd, "GET / HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(wait_eof(fd, now_ms() + 20000), 1);
	close(fd);
	ck_assert(test_server_wait_stat(&server, "proxy_errors", 1,
	    now_ms() + 20000));
	/* Half a header, then the client goes. */
	fd = test_connect(server.ports[1]);
	send_str(fd, "PROXY TCP4 192.0.2.1 19");
	shutdown(fd, SHUT_WR);
	ck_assert_int_eq(wait_eof(fd, now_ms() + 20000), 1);
	close(fd);
	ck_assert(test_server_wait_stat(&server, "proxy_errors", 2,
	    now_ms() + 20000));
	/* A v1 line with a bare LF. */
	fd = test_connect(server.ports[1]);
	send_str(fd, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\nhello");
	ck_assert_int_eq(wait_eof(fd, now_ms() + 20000), 1);
	close(fd);
	ck_assert(test_server_wait_stat(&server, "proxy_errors", 3,
	    now_ms() + 20000));
	ck_assert(test_server_log_wait(&server, "bad PROXY header: v1 line "
	    "ends in a bare LF", now_ms() + 20000));
	/* Everyone else is still served. */
	send_str(plain, "still here");
	expect(plain, "still here");
	close(plain);
}
END_TEST

/* The deadline is for the whole header: a client trickling bytes does not
 * extend it. */
START_TEST(test_proxy_header_timeout_holds_for_a_trickling_client)
{
	const char *args[] = { "--proxy-timeout", "0.5", "-l",
		"proxy+echo@127.0.0.1", NULL };
	const char *part = "PROXY TCP4 192.0.2.1 192.0.2.2 ";
	uint64_t start, deadline;
	size_t i = 0;
	int fd, closed = 0;

	test_server_start(&server, args);
	fd = test_connect(server.ports[1]);
	start = now_ms();
	deadline = start + 20000;
	/* One byte every 100 ms: well within any idle timeout. */
	while (!closed && now_ms() < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (part[i] && send(fd, &part[i], 1, MSG_NOSIGNAL) == 1)
			i++;
		if (poll(&pfd, 1, 100) > 0) {
			char c;

			closed = read(fd, &c, 1) <= 0;
		}
	}
	ck_assert_msg(closed, "still open after %llu ms",
	    (unsigned long long)(now_ms() - start));
	ck_assert_uint_ge(now_ms() - start, 400);
	ck_assert_uint_lt(i, strlen(part));	/* cut off mid-header */
	close(fd);
	ck_assert(test_server_wait_stat(&server, "proxy_timeouts", 1,
	    now_ms() + 20000));
	ck_assert(test_server_wait_stat(&server, "proxy_errors", 0,
	    now_ms() + 20000));
}
END_TEST

START_TEST(test_proxy_plain_listener_logs_the_socket_peer)
{
	const char *args[] = { "-v", NULL };
	char want[96];
	int fd, port;

	test_server_start(&server, args);
	fd = test_connect(server.port);
	port = local_port(fd);
	send_str(fd, "abc");
	expect(fd, "abc");
	snprintf(want, sizeof(want), "open: client 127.0.0.1:%d\n", port);
	ck_assert_msg(test_server_log_wait(&server, want, now_ms() + 20000),
	    "no '%s' in the log", want);
	close(fd);
	snprintf(want, sizeof(want), "closed: client 127.0.0.1:%d, 3 bytes "
	    "in, 3 out", port);
	ck_assert_msg(test_server_log_wait(&server, want, now_ms() + 20000),
	    "no '%s' in the log", want);
}
END_TEST

START_TEST(test_reuseport_lets_two_servers_share_a_port)
{
	const char *first[] = { "--reuseport", "-l", "echo@127.0.0.1", NULL };
	char spec[64];
	const char *second[] = { "--reuseport", "-l", spec, NULL };
	const char *plain[] = { "-l", spec, NULL };
	char *err = NULL;
	int status, port, fds[40];
	long a, b;

	test_server_start(&server, first);
	port = server.ports[1];
	snprintf(spec, sizeof(spec), "echo@127.0.0.1:%d", port);
	/* Without --reuseport the port is taken. */
	status = run_echoserver(plain, &err);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %d: %s", status, err);
	ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
	free(err);
	test_server_start(&other, second);
	ck_assert_int_eq(other.ports[1], port);
	/* The kernel spreads connections over both by their 4-tuple. */
	for (int i = 0; i < 40; i++) {
		fds[i] = test_connect(port);
		send_str(fds[i], "x");
		expect(fds[i], "x");
	}
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	{
		char *la, *lb;

		kill(server.pid, SIGUSR1);
		kill(other.pid, SIGUSR1);
		ck_assert(test_server_log_wait(&server, "stats now: total",
		    now_ms() + 20000));
		ck_assert(test_server_log_wait(&other, "stats now: total",
		    now_ms() + 20000));
		la = test_server_log(&server);
		lb = test_server_log(&other);
		a = test_stat(la, "now", "total", "conns_total");
		b = test_stat(lb, "now", "total", "conns_total");
		free(la);
		free(lb);
	}
	ck_assert_int_eq(a + b, 40);
	ck_assert_msg(a > 0 && b > 0, "one server got all: %ld and %ld", a,
	    b);
}
END_TEST

static Suite *proxy_server_suite(void)
{
	Suite *s = suite_create("proxy_server");
	TCase *hdr = tcase_create("header");
	TCase *addr = tcase_create("address");
	TCase *reuse = tcase_create("reuseport");

	tcase_add_checked_fixture(hdr, NULL, teardown);
	tcase_set_timeout(hdr, 60);
	tcase_add_test(hdr,
	    test_proxy_nothing_is_sent_before_the_header_not_even_a_banner);
	tcase_add_test(hdr, test_proxy_v2_header_a_byte_at_a_time_then_payload);
	tcase_add_test(hdr,
	    test_proxy_bad_and_truncated_headers_close_and_are_counted);
	tcase_add_test(hdr,
	    test_proxy_header_timeout_holds_for_a_trickling_client);
	suite_add_tcase(s, hdr);
	tcase_add_checked_fixture(addr, NULL, teardown);
	tcase_set_timeout(addr, 60);
	tcase_add_test(addr,
	    test_proxy_v1_client_address_is_in_the_open_and_close_lines);
	tcase_add_test(addr, test_proxy_v2_local_keeps_the_socket_address);
	tcase_add_test(addr, test_proxy_plain_listener_logs_the_socket_peer);
	suite_add_tcase(s, addr);
	tcase_add_checked_fixture(reuse, NULL, teardown);
	tcase_set_timeout(reuse, 60);
	tcase_add_test(reuse, test_reuseport_lets_two_servers_share_a_port);
	suite_add_tcase(s, reuse);
	return s;
}

int main(void)
{
	return run_suite(proxy_server_suite());
}
