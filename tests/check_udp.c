/*
 * UDP echo (RFC 862, -u): a real echoserver on loopback UDP ports the
 * kernel picks, driven with real datagram sockets.  It proves byte-exact
 * echo from 1 byte to the largest datagram IPv4 and IPv6 carry, the
 * zero-length reply, the loop guard on privileged source ports, the
 * per-source rate limit and its recovery, SO_REUSEPORT spreading over the
 * workers, clean shutdown, the option errors, and echobench --udp
 * against the server and against a fake that drops or corrupts.  The source-address
 * guard is tested on the classifier itself: Linux drops datagrams with a
 * broadcast, multicast or 0/8 source as martians before any socket sees
 * them, so no real datagram can reach it here.
 */
#include "testutil.h"
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct test_server server;

static void teardown(void)
{
	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
}

/* A UDP socket bound to @host:@port (numeric; port 0: any), or -1 with
 * errno set. */
static int udp_socket(const char *host, int port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int family = strchr(host, ':') ? AF_INET6 : AF_INET;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &sin6->sin6_addr);
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, host, &sin->sin_addr);
		len = sizeof(*sin);
	}
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* A bound socket or the test fails. */
static int udp_client(const char *host)
{
	int fd = udp_socket(host, 0);

	ck_assert_msg(fd >= 0, "udp socket on '%s': %s", host,
	    strerror(errno));
	return fd;
}

/* Sends @len bytes of @buf to @host:@port; the sendto result. */
static ssize_t udp_send_to(int fd, const char *host, int port,
    const void *buf, size_t len)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t slen;

	if (strchr(host, ':')) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &sin6->sin6_addr);
		slen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, host, &sin->sin_addr);
		slen = sizeof(*sin);
	}
	return sendto(fd, buf, len, 0, (struct sockaddr *)&ss, slen);
}

/* Waits up to @ms for one datagram; its length, or -1 on timeout.  The
 * sender's port goes to *@from_port when not NULL. */
static ssize_t udp_recv(int fd, void *buf, size_t size, int ms,
    int *from_port)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	ssize_t n;

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	n = recvfrom(fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)&ss,
	    &slen);
	if (n >= 0 && from_port)
		*from_port = ss.ss_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return n;
}

/* Datagrams waiting on @fd now, read and discarded. */
static int udp_drain(int fd)
{
	char buf[2048];
	int n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

/* The live total of counter @name, after one SIGUSR1. */
static long live_stat(const char *who, const char *name)
{
	char *log;
	long v = -1;
	uint64_t deadline = now_ms() + 20000;

	/* The line for this signal may take a moment to appear. */
	while (v < 0 && now_ms() < deadline) {
		kill(server.pid, SIGUSR1);
		poll(NULL, 0, 50);
		log = test_server_log(&server);
		v = test_stat(log, "now", who, name);
		free(log);
	}
	return v;
}

/* Echoes datagrams of each size in @sizes to @host:@port and checks
 * every byte and the reply's source port. */
static void check_sizes(const char *host, int port, const size_t *sizes,
    int n)
{
	int fd = udp_client(host);
	char *out = malloc(65536), *in = malloc(65536);
	uint64_t seed = 12345;
	int one = 1 << 20;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	for (int i = 0; i < n; i++) {
		int from = 0;
		ssize_t got;

		fill_random(&seed, out, sizes[i]);
		ck_assert_int_eq(udp_send_to(fd, host, port, out, sizes[i]),
		    (ssize_t)sizes[i]);
		got = udp_recv(fd, in, 65536, 20000, &from);
		ck_assert_msg(got == (ssize_t)sizes[i], "%zu B to '%s': got "
		    "%zd back", sizes[i], host, got);
		ck_assert_msg(!memcmp(in, out, sizes[i]), "%zu B to '%s': "
		    "bytes differ", sizes[i], host);
		ck_assert_int_eq(from, port);
	}
	free(out);
	free(in);
	close(fd);
}

/*
 * 65507 is IPv4's largest UDP payload (65535 less the 20-byte IP and
 * 8-byte UDP headers); 65527 is IPv6's, whose 40-byte header sits outside
 * its payload length.  One byte more cannot be sent at all, so "64 KiB"
 * here means those.
 */
static const size_t v4_sizes[] = { 1, 2, 63, 64, 512, 1472, 1473, 4096,
	9000, 16384, 32768, 65000, 65507 };
static const size_t v6_sizes[] = { 1, 64, 1452, 1453, 16384, 65527 };

START_TEST(test_udp_echoes_every_size_byte_exact_ipv4)
{
	const char *args[] = { "-u", "127.0.0.1:0", NULL };
	char big[65508] = { 0 };
	int fd;

	test_server_start(&server, args);
	ck_assert_int_eq(server.n_udp_ports, 1);
	check_sizes("127.0.0.1", server.udp_ports[0], v4_sizes,
	    (int)(sizeof(v4_sizes) / sizeof(v4_sizes[0])));
	/* The next size up is not a datagram IPv4 can carry. */
	fd = udp_client("127.0.0.1");
	ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", server.udp_ports[0],
	    big, sizeof(big)), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_udp_echoes_every_size_byte_exact_ipv6)
{
	const char *args[] = { "-u", "[::1]:0", NULL };

	test_server_start(&server, args);
	check_sizes("::1", server.udp_ports[0], v6_sizes,
	    (int)(sizeof(v6_sizes) / sizeof(v6_sizes[0])));
	free(test_server_stop_clean(&server));
}
END_TEST

/* A bare port is every interface: IPv4 senders reach the dual-stack
 * socket as IPv4-mapped addresses, which the guards must let through. */
START_TEST(test_udp_bare_port_serves_ipv4_and_ipv6)
{
	const char *args[] = { "-u", "0", NULL };
	static const size_t sizes[] = { 1, 1000 };

	test_server_start(&server, args);
	check_sizes("127.0.0.1", server.udp_ports[0], sizes, 2);
	if (!test_no_ipv6_loopback())
		check_sizes("::1", server.udp_ports[0], sizes, 2);
	free(test_server_stop_clean(&server));
}
END_TEST

/* Sends "where" from a socket connected to @dst:@port, which takes
 * datagrams from that address alone, and returns whether it came back. */
static int echo_connected(int family, const char *dst, int port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char buf[16];
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), ok;

	ck_assert_int_ge(fd, 0);
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, dst, &sin6->sin6_addr);
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, dst, &sin->sin_addr);
		len = sizeof(*sin);
	}
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
	ck_assert_int_eq(send(fd, "where", 5, 0), 5);
	ok = udp_recv(fd, buf, sizeof(buf), 20000, NULL) == 5;
	close(fd);
	return ok;
}

/*
 * A wildcard socket must reply from the address the client sent to:
 * 127.0.0.5 is one of loopback's, but routing a reply to 127.0.0.1
 * would pick 127.0.0.1 as its source, and the connected client would
 * drop it.  Both wildcard kinds: IPv4 (IP_PKTINFO) and dual-stack
 * (IPV6_PKTINFO, with IPv4 as IPv4-mapped).
 */
START_TEST(test_udp_wildcard_replies_from_the_address_sent_to)
{
	const char *v4[] = { "-u", "0.0.0.0:0", NULL };
	const char *dual[] = { "-u", "0", NULL };

	test_server_start(&server, v4);
	ck_assert(echo_connected(AF_INET, "127.0.0.5", server.udp_ports[0]));
	ck_assert(echo_connected(AF_INET, "127.0.0.1", server.udp_ports[0]));
	free(test_server_stop_clean(&server));
	test_server_cleanup(&server);

	test_server_start(&server, dual);
	ck_assert(echo_connected(AF_INET, "127.0.0.5", server.udp_ports[0]));
	if (!test_no_ipv6_loopback())
		ck_assert(echo_connected(AF_INET6, "::1",
		    server.udp_ports[0]));
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_udp_zero_length_datagram_gets_zero_length_reply)
{
	const char *args[] = { "-u", "127.0.0.1:0", NULL };
	char buf[16];
	int fd, from = 0;

	test_server_start(&server, args);
	fd = udp_client("127.0.0.1");
	ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", server.udp_ports[0],
	    "", 0), 0);
	/* udp_recv() polls first, so 0 is a datagram, not a timeout. */
	ck_assert_int_eq(udp_recv(fd, buf, sizeof(buf), 20000, &from), 0);
	ck_assert_int_eq(from, server.udp_ports[0]);
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

/* A free privileged port on 127.0.0.1 bound to *@fd, or why not. */
static const char *privileged_socket(int *fd)
{
	static char why[128];
	int err = 0;

	for (int port = 1023; port >= 600; port--) {
		*fd = udp_socket("127.0.0.1", port);
		if (*fd >= 0)
			return NULL;
		err = errno;
		if (err != EADDRINUSE)
			break;
	}
	snprintf(why, sizeof(why), "cannot bind a UDP port below 1024 "
	    "(needs root or CAP_NET_BIND_SERVICE): %s", strerror(err));
	return why;
}

static const char *no_privileged_port(void)
{
	int fd;
	const char *why = privileged_socket(&fd);

	if (!why)
		close(fd);
	return why;
}

/*
 * One worker, so one socket and one receive queue: the guarded datagram
 * is handled before the probe sent after it, and once the probe's echo is
 * back, any echo to the guarded sender would already be queued.
 */
START_TEST(test_udp_loop_guard_drops_privileged_source_ports)
{
	const char *args[] = { "-t", "1", "-u", "127.0.0.1:0", NULL };
	const char *open_args[] = { "-t", "1", "-u", "127.0.0.1:0",
		"--udp-min-port", "0", NULL };
	char buf[64];
	int priv, probe;

	ck_assert_ptr_null(privileged_socket(&priv));
	test_server_start(&server, args);
	probe = udp_client("127.0.0.1");
	ck_assert_int_eq(udp_send_to(priv, "127.0.0.1", server.udp_ports[0],
	    "loop", 4), 4);
	ck_assert_int_eq(udp_send_to(probe, "127.0.0.1", server.udp_ports[0],
	    "probe", 5), 5);
	ck_assert_int_eq(udp_recv(probe, buf, sizeof(buf), 20000, NULL), 5);
	ck_assert_int_eq(udp_drain(priv), 0);
	ck_assert(test_server_wait_stat(&server, "udp_guard_port", 1,
	    now_ms() + 20000));
	ck_assert(test_server_wait_stat(&server, "udp_out", 1,
	    now_ms() + 20000));
	free(test_server_stop_clean(&server));
	test_server_cleanup(&server);

	/* With the guard off the same sender is answered: the check above
	 * could have seen an echo. */
	test_server_start(&server, open_args);
	ck_assert_int_eq(udp_send_to(priv, "127.0.0.1", server.udp_ports[0],
	    "loop", 4), 4);
	ck_assert_int_eq(udp_recv(priv, buf, sizeof(buf), 20000, NULL), 4);
	close(priv);
	close(probe);
	free(test_server_stop_clean(&server));
}
END_TEST

/* Sends @n datagrams of @size back to back, waits until the server has
 * read them all, and returns how many came back. */
static int burst(int fd, int port, int n, size_t size)
{
	char buf[8192] = { 0 };
	int back = 0;

	for (int i = 0; i < n; i++)
		ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", port, buf,
		    size), (ssize_t)size);
	ck_assert(test_server_wait_stat(&server, "udp_in", n,
	    now_ms() + 30000));
	/* The counters move after the echoes are sent (udp.c), and
	 * loopback delivers at once, so every echo is queued by now. */
	back = udp_drain(fd);
	return back;
}

/* Sends a probe every 100 ms until one is echoed; false at the deadline. */
static int recovers(int fd, int port)
{
	uint64_t deadline = now_ms() + 20000;
	char buf[64];

	while (now_ms() < deadline) {
		ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", port, "again",
		    5), 5);
		if (udp_recv(fd, buf, sizeof(buf), 100, NULL) == 5)
			return 1;
	}
	return 0;
}

START_TEST(test_udp_rate_limit_drops_the_excess_then_recovers)
{
	const char *args[] = { "-t", "1", "-u", "127.0.0.1:0", "--udp-rate",
		"20", "--udp-rate-bytes", "0", NULL };
	int fd, rcvbuf = 1 << 20, back;

	test_server_start(&server, args);
	fd = udp_client("127.0.0.1");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* A burst of 100 with 20 tokens: about 20 pass, plus what the
	 * bucket refills while the server reads (more under valgrind). */
	back = burst(fd, server.udp_ports[0], 100, 16);
	ck_assert_int_ge(back, 20);
	ck_assert_int_lt(back, 100);
	ck_assert(test_server_wait_stat(&server, "udp_rate_limited",
	    100 - back, now_ms() + 20000));
	ck_assert(recovers(fd, server.udp_ports[0]));
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_udp_byte_rate_limit_drops_the_excess)
{
	const char *args[] = { "-t", "1", "-u", "127.0.0.1:0", "--udp-rate",
		"0", "--udp-rate-bytes", "10000", NULL };
	int fd, back;

	test_server_start(&server, args);
	fd = udp_client("127.0.0.1");
	/* 10000 bytes of tokens take two 4000-byte datagrams; refilling
	 * another takes 0.4 s. */
	back = burst(fd, server.udp_ports[0], 10, 4000);
	ck_assert_int_ge(back, 2);
	ck_assert_int_lt(back, 10);
	ck_assert(test_server_wait_stat(&server, "udp_rate_limited",
	    10 - back, now_ms() + 20000));
	ck_assert(recovers(fd, server.udp_ports[0]));
	close(fd);
	free(test_server_stop_clean(&server));
}
END_TEST

/*
 * Many sources through a table of one set: each new source evicts the
 * stalest entry and gets its own full bucket, so memory stays fixed and
 * no source is refused for want of a slot.  The sources are 127.0.2.x,
 * which loopback accepts as source addresses.
 */
START_TEST(test_udp_rate_table_evicts_instead_of_growing)
{
	const char *args[] = { "-t", "1", "-u", "127.0.0.1:0", "--udp-rate",
		"3", "--udp-rate-table", "4", NULL };
	char host[32], buf[64];
	int echoed = 0;

	test_server_start(&server, args);
	for (int i = 1; i <= 32; i++) {
		int fd;

		snprintf(host, sizeof(host), "127.0.2.%d", i);
		fd = udp_client(host);
		for (int k = 0; k < 3; k++)
			ck_assert_int_eq(udp_send_to(fd, "127.0.0.1",
			    server.udp_ports[0], "x", 1), 1);
		for (int k = 0; k < 3; k++)
			if (udp_recv(fd, buf, sizeof(buf), 20000, NULL) == 1)
				echoed++;
		close(fd);
	}
	ck_assert_int_eq(echoed, 96);
	ck_assert(test_server_wait_stat(&server, "udp_out", 96,
	    now_ms() + 20000));
	ck_assert_int_eq(live_stat("total", "udp_rate_limited"), 0);
	free(test_server_stop_clean(&server));
}
END_TEST

/*
 * The kernel picks a worker's socket by a hash of the 4-tuple, so which
 * worker gets which sender is not fixed; what is fixed is that every
 * datagram is echoed.  The per-worker split is printed for the record.
 */
START_TEST(test_udp_every_worker_socket_echoes)
{
	const char *args[] = { "-t", "2", "-u", "127.0.0.1:0", NULL };
	enum { SENDERS = 64 };
	int fds[SENDERS];
	char buf[64], *log;

	test_server_start(&server, args);
	for (int i = 0; i < SENDERS; i++) {
		fds[i] = udp_client("127.0.0.1");
		ck_assert_int_eq(udp_send_to(fds[i], "127.0.0.1",
		    server.udp_ports[0], "spread", 6), 6);
	}
	for (int i = 0; i < SENDERS; i++) {
		ck_assert_int_eq(udp_recv(fds[i], buf, sizeof(buf), 20000,
		    NULL), 6);
		close(fds[i]);
	}
	/* The counters move just after the echoes leave (udp.c), so
	 * wait for them rather than read them once. */
	ck_assert(test_server_wait_stat(&server, "udp_out", SENDERS,
	    now_ms() + 20000));
	log = test_server_log(&server);
	printf("udp: %d senders over 2 workers: %ld and %ld\n", SENDERS,
	    test_stat(log, "now", "worker 0", "udp_in"),
	    test_stat(log, "now", "worker 1", "udp_in"));
	ck_assert_int_eq(test_stat(log, "now", "worker 0", "udp_in") +
	    test_stat(log, "now", "worker 1", "udp_in"), SENDERS);
	free(log);
	free(test_server_stop_clean(&server));
}
END_TEST

/* SIGTERM with datagrams still arriving: the sockets close, every
 * worker leaves, and the port answers no more. */
START_TEST(test_udp_sigterm_closes_the_sockets_and_exits_clean)
{
	const char *args[] = { "-t", "2", "-u", "127.0.0.1:0", NULL };
	char buf[64];
	int fd, port;

	test_server_start(&server, args);
	port = server.udp_ports[0];
	fd = udp_client("127.0.0.1");
	ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", port, "hi", 2), 2);
	ck_assert_int_eq(udp_recv(fd, buf, sizeof(buf), 20000, NULL), 2);
	for (int i = 0; i < 200; i++)
		udp_send_to(fd, "127.0.0.1", port, "more", 4);
	free(test_server_stop_clean(&server));
	udp_drain(fd);
	close(fd);

	/* Nothing is bound there now: a connected socket hears the ICMP
	 * port-unreachable as ECONNREFUSED. */
	fd = udp_client("127.0.0.1");
	{
		struct sockaddr_in sin = { .sin_family = AF_INET,
			.sin_port = htons((uint16_t)port) };

		inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
	}
	ck_assert_int_eq(send(fd, "gone", 4, 0), 4);
	errno = 0;
	ck_assert_int_eq(udp_recv(fd, buf, sizeof(buf), 20000, NULL), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	close(fd);
}
END_TEST

START_TEST(test_udp_bad_options_fail_with_one_clear_line)
{
	static const struct {
		const char *opt, *value, *want;
	} cases[] = {
		{ "-u", "127.0.0.1", "invalid value '127.0.0.1' for option "
		    "'--udp'" },
		{ "-u", "70000", "invalid value '70000' for option '--udp'" },
		{ "-u", "[::1]", "invalid value '[::1]' for option '--udp'" },
		{ "-u", "host:7", "invalid value 'host:7' for option "
		    "'--udp'" },
		{ "--udp-rate", "fast", "invalid value 'fast' for option "
		    "'--udp-rate'" },
		{ "--udp-min-port", "65536", "invalid value '65536' for "
		    "option '--udp-min-port'" },
		{ "--udp-rate-table", "2", "invalid value '2' for option "
		    "'--udp-rate-table'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { cases[i].opt, cases[i].value, NULL };
		char *err = NULL;
		int status = run_echoserver(args, &err);

		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 64,
		    "%s %s: status %d", cases[i].opt, cases[i].value, status);
		ck_assert_msg(strstr(err, cases[i].want), "%s %s: %s",
		    cases[i].opt, cases[i].value, err);
		free(err);
	}
}
END_TEST

/* A port another socket holds without SO_REUSEPORT: start-up fails with
 * one line naming it. */
START_TEST(test_udp_port_in_use_fails_start_up)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char addr[64], want[128], *err = NULL;
	int fd = udp_client("127.0.0.1"), status;
	const char *args[] = { "-l", "127.0.0.1", "-p", "0", "-u", addr,
		NULL };

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	status = run_echoserver(args, &err);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %d", status);
	snprintf(want, sizeof(want), "cannot listen on UDP '%s': Address "
	    "already in use", addr);
	ck_assert_msg(strstr(err, want), "%s", err);
	free(err);
	close(fd);
}
END_TEST

/* Another process's SO_REUSEPORT socket on the port: echoserver must not
 * join its group (the kernel would let it, for the same user) and split
 * the traffic, but refuse to start. */
START_TEST(test_udp_port_in_a_reuseport_group_fails_start_up)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char addr[64], want[128], *err = NULL;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
	int status;
	const char *args[] = { "-l", "127.0.0.1", "-p", "0", "-u", addr,
		NULL };

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)), 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	status = run_echoserver(args, &err);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %d: %s", status, err);
	snprintf(want, sizeof(want), "cannot listen on UDP '%s': Address "
	    "already in use", addr);
	ck_assert_msg(strstr(err, want), "%s", err);
	free(err);
	close(fd);
}
END_TEST

static struct sockaddr_storage sa4(const char *ip, int port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (void *)&ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage sa6(const char *ip, int port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (void *)&ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

START_TEST(test_udp_guard_classifies_sources)
{
	static const struct {
		const char *ip;
		int port;
		enum udp_verdict want;
	} cases[] = {
		{ "127.0.0.1", 40000, UDP_PASS },
		{ "192.0.2.1", 1024, UDP_PASS },
		{ "192.0.2.1", 1023, UDP_DROP_PORT },
		{ "192.0.2.1", 7, UDP_DROP_PORT },
		{ "192.0.2.1", 0, UDP_DROP_PORT },
		{ "0.0.0.0", 40000, UDP_DROP_ADDR },
		{ "0.1.2.3", 40000, UDP_DROP_ADDR },
		{ "224.0.0.1", 40000, UDP_DROP_ADDR },
		{ "239.255.255.250", 40000, UDP_DROP_ADDR },
		{ "240.0.0.1", 40000, UDP_DROP_ADDR },
		{ "255.255.255.255", 40000, UDP_DROP_ADDR },
		{ "223.255.255.255", 40000, UDP_PASS },
		{ "::1", 40000, UDP_PASS },
		{ "2001:db8::1", 40000, UDP_PASS },
		{ "2001:db8::1", 19, UDP_DROP_PORT },
		{ "::", 40000, UDP_DROP_ADDR },
		{ "ff02::1", 40000, UDP_DROP_ADDR },
		{ "ff0e::1", 40000, UDP_DROP_ADDR },
		{ "::ffff:192.0.2.1", 40000, UDP_PASS },
		{ "::ffff:192.0.2.1", 9, UDP_DROP_PORT },
		{ "::ffff:224.0.0.1", 40000, UDP_DROP_ADDR },
		{ "::ffff:255.255.255.255", 40000, UDP_DROP_ADDR },
		{ "::ffff:0.0.0.1", 40000, UDP_DROP_ADDR },
	};
	struct udp_config cfg;

	udp_config_init(&cfg);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = strchr(cases[i].ip, ':') ?
		    sa6(cases[i].ip, cases[i].port) :
		    sa4(cases[i].ip, cases[i].port);

		ck_assert_msg(udp_guard_source(&cfg, (struct sockaddr *)&ss)
		    == cases[i].want, "%s port %d", cases[i].ip,
		    cases[i].port);
	}
}
END_TEST

START_TEST(test_udp_guard_options_turn_each_guard_off)
{
	struct udp_config cfg;
	struct sockaddr_storage low = sa4("192.0.2.1", 7);
	struct sockaddr_storage mcast = sa6("ff02::1", 40000);
	struct sockaddr_storage mapped = sa6("::ffff:255.255.255.255", 5000);

	udp_config_init(&cfg);
	cfg.min_src_port = 0;
	ck_assert_int_eq(udp_guard_source(&cfg, (struct sockaddr *)&low),
	    UDP_PASS);
	ck_assert_int_eq(udp_guard_source(&cfg, (struct sockaddr *)&mcast),
	    UDP_DROP_ADDR);
	cfg.allow_broadcast = true;
	ck_assert_int_eq(udp_guard_source(&cfg, (struct sockaddr *)&mcast),
	    UDP_PASS);
	ck_assert_int_eq(udp_guard_source(&cfg, (struct sockaddr *)&mapped),
	    UDP_PASS);
}
END_TEST

/* --- echobench --udp ------------------------------------------------ */

enum fake_fault {
	FAKE_DROP,	/* echo all but every 5th datagram */
	FAKE_FLIP,	/* flip a byte of the 3rd datagram */
};

struct fake_udp {
	int fd;
	int port;
	enum fake_fault fault;
	pthread_t tid;
};

static void *fake_udp_run(void *arg)
{
	struct fake_udp *f = arg;
	char buf[65536];
	unsigned long n = 0;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		ssize_t len = recvfrom(f->fd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&ss, &slen);

		if (len < 0)
			return NULL;	/* shut down */
		if (len == 1 && buf[0] == 'q')
			return NULL;
		n++;
		if (f->fault == FAKE_DROP && n % 5 == 0)
			continue;
		if (f->fault == FAKE_FLIP && n == 3 && len > 20)
			buf[20] ^= 0x40;
		sendto(f->fd, buf, (size_t)len, 0, (struct sockaddr *)&ss,
		    slen);
	}
}

static void fake_udp_start(struct fake_udp *f, enum fake_fault fault)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	f->fd = udp_client("127.0.0.1");
	f->fault = fault;
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&sin, &len),
	    0);
	f->port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&f->tid, NULL, fake_udp_run, f), 0);
}

static void fake_udp_stop(struct fake_udp *f)
{
	int fd = udp_client("127.0.0.1");

	ck_assert_int_eq(udp_send_to(fd, "127.0.0.1", f->port, "q", 1), 1);
	pthread_join(f->tid, NULL);
	close(fd);
	close(f->fd);
}

/* Runs ./echobench --udp on @port with @opts; returns its JSON line and
 * its exit status in *@status.  Caller frees. */
static char *echobench_udp(int port, const char *opts, int *status)
{
	char cmd[512];
	const char *prog = getenv("ECHOBENCH") ? getenv("ECHOBENCH") :
	    "./echobench";
	char *out;

	snprintf(cmd, sizeof(cmd), "%s --udp -q --json -p %d %s", prog, port,
	    opts);
	out = test_shell(cmd, status);
	return out;
}

static double json_number(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The real server, a window that fits its socket buffer and a loss
 * timeout long enough for valgrind: every datagram comes back. */
START_TEST(test_echobench_udp_counts_no_loss_against_echoserver)
{
	const char *args[] = { "-u", "127.0.0.1:0", "--udp-rate", "0",
		"--udp-rate-bytes", "0", NULL };
	char *out;
	int status;

	test_server_start(&server, args);
	out = echobench_udp(server.udp_ports[0], "-c 4 -D 8 -s 100 -d 0.5 "
	    "-w 0.1 --loss-timeout 5", &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	    out);
	ck_assert_msg(json_number(out, "echoed") > 0, "%s", out);
	ck_assert_msg(json_number(out, "lost") == 0, "%s", out);
	ck_assert_msg(json_number(out, "errors") == 0, "%s", out);
	free(out);
	free(test_server_stop_clean(&server));
}
END_TEST

START_TEST(test_echobench_udp_counts_the_datagrams_a_server_drops)
{
	struct fake_udp f;
	char *out;
	int status;

	fake_udp_start(&f, FAKE_DROP);
	out = echobench_udp(f.port, "-c 2 -D 4 -d 0.5 -w 0.1 "
	    "--loss-timeout 0.05", &status);
	fake_udp_stop(&f);
	/* Losses are UDP's nature, not an error of the echo. */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	    out);
	ck_assert_msg(json_number(out, "lost") > 0, "%s", out);
	ck_assert_msg(json_number(out, "loss") > 0.05 &&
	    json_number(out, "loss") < 0.5, "%s", out);
	ck_assert_msg(json_number(out, "errors") == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_echobench_udp_reports_a_corrupted_byte)
{
	struct fake_udp f;
	char *out;
	int status;

	fake_udp_start(&f, FAKE_FLIP);
	out = echobench_udp(f.port, "-c 1 -D 1 -s 64 -d 0.3 -w 0", &status);
	fake_udp_stop(&f);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s",
	    out);
	ck_assert_msg(json_number(out, "errors") >= 1, "%s", out);
	free(out);
}
END_TEST

static Suite *udp_suite(void)
{
	Suite *s = suite_create("udp");
	TCase *tc = tcase_create("echo");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_udp_echoes_every_size_byte_exact_ipv4);
	test_add_or_skip(tc, test_udp_echoes_every_size_byte_exact_ipv6,
	    test_no_ipv6_loopback());
	tcase_add_test(tc, test_udp_bare_port_serves_ipv4_and_ipv6);
	tcase_add_test(tc, test_udp_wildcard_replies_from_the_address_sent_to);
	tcase_add_test(tc,
	    test_udp_zero_length_datagram_gets_zero_length_reply);
	tcase_add_test(tc, test_udp_every_worker_socket_echoes);
	suite_add_tcase(s, tc);

	tc = tcase_create("guards");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc, test_udp_loop_guard_drops_privileged_source_ports,
	    no_privileged_port());
	tcase_add_test(tc, test_udp_rate_limit_drops_the_excess_then_recovers);
	tcase_add_test(tc, test_udp_byte_rate_limit_drops_the_excess);
	tcase_add_test(tc, test_udp_rate_table_evicts_instead_of_growing);
	tcase_add_test(tc, test_udp_guard_classifies_sources);
	tcase_add_test(tc, test_udp_guard_options_turn_each_guard_off);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_udp_sigterm_closes_the_sockets_and_exits_clean);
	tcase_add_test(tc, test_udp_bad_options_fail_with_one_clear_line);
	tcase_add_test(tc, test_udp_port_in_use_fails_start_up);
	tcase_add_test(tc, test_udp_port_in_a_reuseport_group_fails_start_up);
	suite_add_tcase(s, tc);

	tc = tcase_create("echobench");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_echobench_udp_counts_no_loss_against_echoserver);
	tcase_add_test(tc,
	    test_echobench_udp_counts_the_datagrams_a_server_drops);
	tcase_add_test(tc, test_echobench_udp_reports_a_corrupted_byte);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(udp_suite());
}
