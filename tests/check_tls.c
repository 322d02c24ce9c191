/*
 * TLS listeners (tls+PROTO@ADDR) against a real echoserver: the echo and
 * line handlers through the real `openssl s_client`, and through a small
 * OpenSSL client of our own for what s_client cannot check: the 64 MiB
 * half-close (with close_notify and without), a slow reader with the
 * server's memory bounded, garbage and half handshakes, TLS versions,
 * an expired certificate at start-up and a SIGHUP reload.  Every
 * certificate is made by the test with the openssl command; none is
 * committed.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static struct test_server server;
static char dir[64];		/* the certificates of one test */
static char cert[128], key[128];	/* what the server is started with */
static SSL_CTX *client_ctx;

/* Runs @cmd, failing the test with its output unless it succeeds. */
static void shell_ok(const char *cmd)
{
	int status;
	char *out = test_shell(cmd, &status);

	ck_assert_msg(status == 0, "'%s' failed: %s", cmd, out);
	free(out);
}

/*
 * Makes DIR/@name.crt and DIR/@name.key: a self-signed P-256 certificate
 * with subject CN=@name and serial @serial, valid for a day, or, with
 * @expired, one whose validity ended a day ago.
 */
static void make_cert(const char *name, int serial, bool expired)
{
	char cmd[2048];

	if (!expired) {
		snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec "
		    "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
		    "%s/%s.key -out %s/%s.crt -days 1 -subj /CN=%s "
		    "-set_serial %d 2>&1", dir, name, dir, name, name, serial);
	} else {
		snprintf(cmd, sizeof(cmd), "openssl ecparam -name prime256v1 "
		    "-genkey -noout -out %s/%s.key 2>&1 && openssl req -new "
		    "-key %s/%s.key -subj /CN=%s -out %s/%s.csr 2>&1 && "
		    "openssl x509 -req -in %s/%s.csr -signkey %s/%s.key "
		    "-days -1 -set_serial %d -out %s/%s.crt 2>&1", dir, name,
		    dir, name, name, dir, name, dir, name, dir, name, serial,
		    dir, name);
	}
	shell_ok(cmd);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/echoserver-tls.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	make_cert("a", 0xa1, false);
	snprintf(cert, sizeof(cert), "%s/a.crt", dir);
	snprintf(key, sizeof(key), "%s/a.key", dir);
	client_ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(client_ctx);
	/* The tests check the server, not the certificate's chain. */
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static void teardown(void)
{
	char cmd[128];
	int status;

	test_server_stop(&server, SIGKILL);
	test_server_cleanup(&server);
	SSL_CTX_free(client_ctx);
	client_ctx = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	free(test_shell(cmd, &status));
}

/* Starts the server with a plain echo port (server.port, from
 * testutil) and "tls+@proto@127.0.0.1" (returned), plus @extra
 * (NULL-terminated, may be NULL). */
static int start_tls_server(const char *proto, const char *const *extra)
{
	char spec[64];
	const char *args[32] = { "-t", "2", "-l", spec, "--tls-cert", cert,
		"--tls-key", key };
	int n = 8;

	snprintf(spec, sizeof(spec), "tls+%s@127.0.0.1", proto);
	for (; extra && *extra && n < 31; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	test_server_start(&server, args);
	ck_assert_int_eq(server.n_ports, 2);
	return server.ports[1];
}

/* A blocking socket's reads and writes give up after this long, so a
 * stuck server fails a test rather than hanging it. */
static void set_io_timeout(int fd, double seconds)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double s = seconds * (m ? atof(m) : 1.0);
	struct timeval tv = { (time_t)s, (suseconds_t)((s - (long)s) * 1e6) };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A TLS connection to @port from @ctx, or NULL if the handshake fails. */
static SSL *tls_try_connect(SSL_CTX *ctx, int port)
{
	int fd = test_connect(port);
	SSL *ssl = SSL_new(ctx);

	ck_assert_ptr_nonnull(ssl);
	set_io_timeout(fd, 20);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

static SSL *tls_connect(int port)
{
	SSL *ssl = tls_try_connect(client_ctx, port);

	ck_assert_msg(ssl != NULL, "tls handshake with port %d failed",
	    port);
	return ssl;
}

static void tls_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);

	SSL_free(ssl);
	close(fd);
}

/* One byte over @ssl and back: true if echoed. */
static bool tls_echo_once(SSL *ssl)
{
	char c = 't';

	if (SSL_write(ssl, &c, 1) != 1)
		return false;
	c = 0;
	return SSL_read(ssl, &c, 1) == 1 && c == 't';
}

/* The serial number of the certificate the server showed @ssl. */
static long peer_serial(SSL *ssl)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	long serial;

	ck_assert_ptr_nonnull(x);
	serial = ASN1_INTEGER_get(X509_get0_serialNumber(x));
	X509_free(x);
	return serial;
}

/*
 * The byte stream clients send and expect back: a random pattern with a
 * prime period, so any slice of up to 64 KiB is contiguous in it and a
 * lost or repeated chunk shows up.
 */
#define PERIOD 1048573u
static unsigned char pattern[PERIOD + 65536];

static void pattern_init(void)
{
	uint64_t seed = 0x7f4a7c159e3779b9ULL;

	fill_random(&seed, pattern, PERIOD);
	memcpy(pattern + PERIOD, pattern, sizeof(pattern) - PERIOD);
}

static const unsigned char *pattern_at(size_t off)
{
	return pattern + off % PERIOD;
}

enum stream_close { CLOSE_NOTIFY, CLOSE_TCP };

/* A client streaming the pattern over non-blocking TLS and checking
 * what comes back. */
struct stream {
	SSL *ssl;
	int fd;
	size_t total, sent, recvd;
	size_t trying;		/* a write OpenSSL holds, to be retried
				 * with the same length; 0: none */
	enum stream_close how;
	bool shut, eof, close_notified;
};

static void stream_init(struct stream *s, SSL *ssl, size_t total,
    enum stream_close how)
{
	memset(s, 0, sizeof(*s));
	s->ssl = ssl;
	s->fd = SSL_get_fd(ssl);
	s->total = total;
	s->how = how;
	ck_assert_int_eq(fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) |
	    O_NONBLOCK), 0);
}

/* Fails the test unless @err is a would-block. */
static void stream_check(struct stream *s, const char *op, int r)
{
	int err = SSL_get_error(s->ssl, r);
	char buf[256];

	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return;
	ERR_error_string_n(ERR_peek_error(), buf, sizeof(buf));
	ck_abort_msg("%s after %zu sent, %zu received: ssl error %d (%s), "
	    "errno %s", op, s->sent, s->recvd, err, buf, strerror(errno));
}

/* Writes what it can; true on progress. */
static bool stream_write(struct stream *s)
{
	size_t left = s->total - s->sent;
	int n;

	if (left == 0)
		return false;
	if (!s->trying)
		s->trying = left < 65536 ? left : 65536;
	n = SSL_write(s->ssl, pattern_at(s->sent), (int)s->trying);
	if (n > 0) {
		s->sent += (size_t)n;
		s->trying = 0;
		return true;
	}
	stream_check(s, "write", n);
	return false;
}

/* Reads and checks what it can; true on progress. */
static bool stream_read(struct stream *s)
{
	static unsigned char buf[65536];
	int n = SSL_read(s->ssl, buf, sizeof(buf));

	if (n > 0) {
		ck_assert_msg(s->recvd + (size_t)n <= s->sent, "echoed more "
		    "than sent");
		ck_assert_msg(!memcmp(buf, pattern_at(s->recvd), (size_t)n),
		    "echoed bytes at %zu differ from those sent", s->recvd);
		s->recvd += (size_t)n;
		return true;
	}
	if (SSL_get_error(s->ssl, n) == SSL_ERROR_ZERO_RETURN) {
		s->eof = true;
		s->close_notified = (SSL_get_shutdown(s->ssl) &
		    SSL_RECEIVED_SHUTDOWN) != 0;
		return true;
	}
	stream_check(s, "read", n);
	return false;
}

/* Sends everything, half-closes as s->how says, and reads until the
 * server's end of stream, failing the test at @deadline. */
static void stream_run(struct stream *s, uint64_t deadline)
{
	while (!s->eof) {
		bool progress = stream_write(s);

		if (s->sent == s->total && !s->shut) {
			int r = 0;

			if (s->how == CLOSE_NOTIFY)
				r = SSL_shutdown(s->ssl);  /* 0: sent, not
							    * yet answered */
			else
				ck_assert_int_eq(shutdown(s->fd, SHUT_WR), 0);
			if (r >= 0)
				s->shut = true;
			else
				stream_check(s, "shutdown", r);
		}
		progress |= stream_read(s);
		if (!progress) {
			struct pollfd pfd = { .fd = s->fd, .events = POLLIN |
			    (s->sent < s->total ? POLLOUT : 0) };

			ck_assert_msg(now_ms() < deadline, "stuck: %zu of %zu "
			    "sent, %zu received", s->sent, s->total, s->recvd);
			poll(&pfd, 1, 100);
		}
	}
}

/* Counters, once the server is told to stop and has exited cleanly. */
static long exit_stat(const char *log, const char *name)
{
	return test_stat(log, "at exit", "total", name);
}

static const char *no_openssl(void)
{
	/* Not test_shell(): this runs before any test, outside Check. */
	if (system("openssl version >/dev/null 2>&1") != 0)
		return "the openssl command is not installed (apt-get "
		    "install openssl)";
	return NULL;
}

/* --- through the real openssl s_client ----------------------------------- */

START_TEST(test_echo_over_tls_with_s_client)
{
	const char *extra[] = { "--idle-timeout", "1", NULL };
	int port = start_tls_server("echo", extra), status;
	char cmd[256], *out, *log;

	/* s_client -quiet keeps the connection after its input ends; the
	 * server's idle timeout closes it, with close_notify. */
	snprintf(cmd, sizeof(cmd), "printf 'hello over tls\\n' | timeout 30 "
	    "openssl s_client -quiet -connect 127.0.0.1:%d 2>/dev/null",
	    port);
	out = test_shell(cmd, &status);
	ck_assert_str_eq(out, "hello over tls\n");
	ck_assert_int_eq(status, 0);
	free(out);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 1);
	ck_assert_int_eq(exit_stat(log, "idle_timeouts"), 1);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

/*
 * proxy+tls+: the PROXY header comes first, in the clear, then the TLS
 * handshake, as HAProxy's "send-proxy-v2" on an "ssl" server sends them;
 * here both leave in one write, so the server must not take more than
 * the header before OpenSSL reads.  The header's client reaches the log.
 */
START_TEST(test_proxy_header_then_tls_is_served_with_its_client)
{
	static const char header[] =
	    "PROXY TCP4 192.0.2.9 127.0.0.1 40001 443\r\n";
	const char *args[] = { "-t", "1", "-v", "-l",
		"proxy+tls+echo@127.0.0.1", "--tls-cert", cert, "--tls-key",
		key, NULL };
	int fd, port;
	char *log;
	SSL *ssl;

	test_server_start(&server, args);
	port = server.ports[1];
	fd = test_connect(port);
	set_io_timeout(fd, 20);
	ck_assert_int_eq(write(fd, header, sizeof(header) - 1),
	    (ssize_t)sizeof(header) - 1);
	ssl = SSL_new(client_ctx);
	ck_assert_ptr_nonnull(ssl);
	SSL_set_fd(ssl, fd);
	ck_assert_int_eq(SSL_connect(ssl), 1);
	ck_assert(tls_echo_once(ssl));
	SSL_shutdown(ssl);
	tls_close(ssl);
	ck_assert(test_server_log_wait(&server,
	    "client 192.0.2.9:40001 (PROXY, TLS)", now_ms() + 10000));
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 1);
	ck_assert_int_eq(exit_stat(log, "proxy_errors"), 0);
	free(log);
}
END_TEST

START_TEST(test_line_over_tls_1_2_and_1_3_with_s_client)
{
	const char *versions[] = { "-tls1_2", "-tls1_3" };
	int port = start_tls_server("line", NULL), status;
	char cmd[256], *out, *log;

	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd), "printf 'one\\r\\ntwo\\nquit\\n"
		    "never\\n' | timeout 30 openssl s_client %s -quiet "
		    "-connect 127.0.0.1:%d 2>/dev/null", versions[i], port);
		out = test_shell(cmd, &status);
		ck_assert_str_eq(out, "one\r\ntwo\n");
		ck_assert_int_eq(status, 0);
		free(out);
	}
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 2);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

START_TEST(test_resp_over_tls_with_redis_cli)
{
	int port = start_tls_server("resp", NULL), status;
	char cmd[256], *out, *log;

	snprintf(cmd, sizeof(cmd), "redis-cli --tls --insecure -p %d SET "
	    "greeting hello 2>&1 && redis-cli --tls --insecure -p %d GET "
	    "greeting 2>&1", port, port);
	out = test_shell(cmd, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_str_eq(out, "OK\nhello\n");
	free(out);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 2);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

static const char *no_redis_cli_tls(void)
{
	if (system("redis-cli --help 2>&1 | grep -q -- --tls") != 0)
		return "redis-cli with --tls is not installed (apt-get "
		    "install redis-tools)";
	return NULL;
}

/* --- versions ------------------------------------------------------------- */

START_TEST(test_tls_1_2_and_1_3_served_and_1_1_refused)
{
	int port = start_tls_server("echo", NULL);
	SSL_CTX *old = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	char *log;

	ssl = tls_connect(port);
	ck_assert_int_eq(SSL_version(ssl), TLS1_3_VERSION);
	ck_assert(tls_echo_once(ssl));
	tls_close(ssl);

	SSL_CTX_set_max_proto_version(client_ctx, TLS1_2_VERSION);
	ssl = tls_connect(port);
	ck_assert_int_eq(SSL_version(ssl), TLS1_2_VERSION);
	ck_assert(tls_echo_once(ssl));
	tls_close(ssl);

	/* A client that could speak TLS 1.1, were the server to. */
	ck_assert_ptr_nonnull(old);
	SSL_CTX_set_security_level(old, 0);
	SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
	ck_assert_ptr_null(tls_try_connect(old, port));
	SSL_CTX_free(old);
	ck_assert(test_server_wait_stat(&server, "tls_handshake_failures", 1,
	    now_ms() + 20000));
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 2);
	free(log);
}
END_TEST

/* --- half-close: everything comes back ------------------------------------ */

static void check_half_close(enum stream_close how, size_t total)
{
	int port = start_tls_server("echo", NULL);
	struct stream s;
	char *log;

	pattern_init();
	stream_init(&s, tls_connect(port), total, how);
	stream_run(&s, now_ms() + 120000);
	ck_assert_uint_eq(s.recvd, total);
	/* The server ended its stream properly, not with a bare FIN. */
	ck_assert_msg(s.close_notified, "no close_notify from the server");
	tls_close(s.ssl);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "bytes_in"), (long)total);
	ck_assert_int_eq(exit_stat(log, "bytes_out"), (long)total);
	ck_assert_int_eq(exit_stat(log, "dropped_bytes"), 0);
	/* A close without close_notify is a normal close (fact T1). */
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}

START_TEST(test_64_mib_half_closed_with_close_notify_all_comes_back)
{
	check_half_close(CLOSE_NOTIFY, scaled(64 * MIB, MIB));
}
END_TEST

START_TEST(test_half_closed_without_close_notify_all_comes_back)
{
	check_half_close(CLOSE_TCP, scaled(16 * MIB, MIB));
}
END_TEST

START_TEST(test_short_streams_closed_right_behind_their_data_come_back)
{
	int port = start_tls_server("echo", NULL);
	int n = (int)scaled(300, 30);
	uint64_t rng = 0x2545f4914f6cdd1dULL, total = 0;
	char *log;

	pattern_init();
	/* Each client writes its stream and its close_notify at once, so
	 * the server often reads the end of the data and the EOF together
	 * (fact T3). */
	for (int i = 0; i < n; i++) {
		struct stream s;
		size_t len;

		fill_random(&rng, &len, sizeof(len));
		len = len % 40000 + 1;
		stream_init(&s, tls_connect(port), len, CLOSE_NOTIFY);
		stream_run(&s, now_ms() + 30000);
		ck_assert_uint_eq(s.recvd, len);
		total += len;
		tls_close(s.ssl);
	}
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "bytes_out"), (long)total);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

/* --- a slow reader: backpressure over TLS --------------------------------- */

START_TEST(test_slow_reader_is_paused_with_memory_bounded)
{
	const char *extra[] = { "--high-water", "1M", "--low-water", "256K",
		NULL };
	int port = start_tls_server("echo", extra);
	size_t cap = scaled(256 * MIB, 16 * MIB);
	struct stream s;
	SSL *other;
	long rss0, rss1;
	uint64_t last;
	char *log;

	pattern_init();
	other = tls_connect(port);
	ck_assert(tls_echo_once(other));
	rss0 = procstat_rss_kib(server.pid);
	stream_init(&s, tls_connect(port), cap, CLOSE_NOTIFY);
	/* Write without reading until the server has taken nothing for a
	 * second. */
	for (last = now_ms(); now_ms() - last < 1000 && s.sent < cap;) {
		struct pollfd pfd = { .fd = s.fd, .events = POLLOUT };

		if (stream_write(&s))
			last = now_ms();
		else
			poll(&pfd, 1, 100);
	}
	rss1 = procstat_rss_kib(server.pid);
	ck_assert_msg(s.sent < cap, "the server read all %zu bytes from a "
	    "client that reads nothing", cap);
	/* high-water + a read buffer + OpenSSL's records + slack */
	ck_assert_msg(!rss_is_meaningful() || rss1 - rss0 < 4096,
	    "server RSS grew %ld KiB for a stalled TLS client", rss1 - rss0);
	ck_assert(tls_echo_once(other));
	/* Then it reads: every byte comes back, including the record
	 * OpenSSL may still hold half-written. */
	s.total = s.sent + s.trying;
	stream_run(&s, now_ms() + 120000);
	ck_assert_uint_eq(s.recvd, s.sent);
	tls_close(s.ssl);
	tls_close(other);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "dropped_bytes"), 0);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

/* --- hostile handshakes --------------------------------------------------- */

/* The first bytes a real client sends: its ClientHello. */
static size_t client_hello(unsigned char *buf, size_t len)
{
	SSL *ssl = SSL_new(client_ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n;

	SSL_set_bio(ssl, rb, wb);
	SSL_set_connect_state(ssl);
	ck_assert_int_le(SSL_do_handshake(ssl), 0);	/* wants the reply */
	n = BIO_read(wb, buf, (int)len);
	ck_assert_int_gt(n, 100);
	SSL_free(ssl);
	return (size_t)n;
}

START_TEST(test_silent_and_half_hello_clients_time_out_and_are_counted)
{
	const char *extra[] = { "--tls-handshake-timeout", "0.5", NULL };
	int port = start_tls_server("echo", extra);
	unsigned char hello[4096];
	size_t len = client_hello(hello, sizeof(hello));
	int silent, half;
	uint64_t t0;
	SSL *good;
	char *log;

	t0 = now_ms();
	silent = test_connect(port);
	half = test_connect(port);
	write_all(half, hello, len / 2);
	good = tls_connect(port);
	ck_assert(wait_eof(silent, now_ms() + 20000));
	ck_assert(wait_eof(half, now_ms() + 20000));
	/* Not before the timeout. */
	ck_assert_uint_ge(now_ms() - t0, 400);
	ck_assert(tls_echo_once(good));
	close(silent);
	close(half);
	tls_close(good);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshake_timeouts"), 2);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 1);
	free(log);
}
END_TEST

START_TEST(test_a_hello_trickled_a_byte_at_a_time_is_cut_at_the_deadline)
{
	const char *extra[] = { "--tls-handshake-timeout", "1", NULL };
	int port = start_tls_server("echo", extra), fd;
	unsigned char hello[4096];
	size_t len = client_hello(hello, sizeof(hello)), sent = 0;
	uint64_t t0;
	char *log;

	fd = test_connect(port);
	t0 = now_ms();
	/* A byte every 100 ms: progress all the time, done never. */
	while (sent < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		write_all(fd, hello + sent++, 1);
		if (poll(&pfd, 1, 100) > 0)
			break;	/* closed (or an alert): the deadline */
		ck_assert_msg(now_ms() - t0 < 20000, "still open after 20 s");
	}
	ck_assert(wait_eof(fd, now_ms() + 20000));
	ck_assert_uint_ge(now_ms() - t0, 900);
	ck_assert_uint_lt(sent, len);
	close(fd);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshake_timeouts"), 1);
	free(log);
}
END_TEST

START_TEST(test_garbage_instead_of_a_hello_is_closed_and_counted)
{
	const char *extra[] = { "--tls-handshake-timeout", "1", NULL };
	int port = start_tls_server("echo", extra);
	const char http[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
	int n = (int)scaled(40, 10), fd;
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	SSL *good = tls_connect(port);
	char *log;

	/* Plain HTTP on the TLS port. */
	fd = test_connect(port);
	write_all(fd, http, sizeof(http) - 1);
	ck_assert(wait_eof(fd, now_ms() + 20000));
	close(fd);
	/* Random bytes of random lengths, and a record header that
	 * promises more than comes: each ends in a failure or a
	 * timeout, never a served connection. */
	for (int i = 0; i < n; i++) {
		unsigned char junk[2048];
		size_t len;

		fill_random(&rng, &len, sizeof(len));
		len = len % sizeof(junk) + 1;
		fill_random(&rng, junk, len);
		if (i % 4 == 0)
			memcpy(junk, "\x16\x03\x01\x40\x00", len < 5 ? len : 5);
		fd = test_connect(port);
		write_all(fd, junk, len);
		ck_assert_msg(wait_eof(fd, now_ms() + 20000),
		    "garbage client %d not closed", i);
		close(fd);
		ck_assert(tls_echo_once(good));
	}
	tls_close(good);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshake_failures") +
	    exit_stat(log, "tls_handshake_timeouts"), n + 1);
	ck_assert_int_ge(exit_stat(log, "tls_handshake_failures"), 1);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 1);
	ck_assert_int_eq(exit_stat(log, "conns_open"), 0);
	free(log);
}
END_TEST

/* --- certificates --------------------------------------------------------- */

/* Lines in @s. */
static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void check_refused(const char *crt, const char *k, const char *want)
{
	const char *args[] = { "-l", "tls+echo@127.0.0.1:0", "--tls-cert",
		crt, "--tls-key", k, NULL };
	char *err;
	int status = run_echoserver(args, &err);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %#x: %s", status, err);
	ck_assert_msg(count_lines(err) == 1, "not one line: %s", err);
	ck_assert_msg(strstr(err, want) != NULL, "no '%s' in: %s", want, err);
	free(err);
}

START_TEST(test_expired_or_bad_certificate_stops_start_up_with_one_line)
{
	char old_crt[128], old_key[128], b_key[128];

	make_cert("old", 0x01, true);
	make_cert("b", 0xb2, false);
	snprintf(old_crt, sizeof(old_crt), "%s/old.crt", dir);
	snprintf(old_key, sizeof(old_key), "%s/old.key", dir);
	snprintf(b_key, sizeof(b_key), "%s/b.key", dir);
	check_refused(old_crt, old_key, "expired on");
	check_refused(cert, b_key, "key values mismatch");
	check_refused("/nonexistent.crt", key, "No such file or directory");
}
END_TEST

/* Replaces the server's files with DIR/@name.*, each by a rename. */
static void install_cert(const char *name)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp %s/%s.key %s/new.key && mv %s/new.key "
	    "%s && cp %s/%s.crt %s/new.crt && mv %s/new.crt %s", dir, name,
	    dir, dir, key, dir, name, dir, dir, cert);
	shell_ok(cmd);
}

START_TEST(test_sighup_serves_the_new_certificate_and_keeps_connections)
{
	int port;
	SSL *before, *after, *later;
	char cmd[1024];
	char *log;

	/* The files the server reads are copies, so they can change. */
	make_cert("b", 0xb2, false);
	snprintf(cmd, sizeof(cmd), "cp %s %s/live.crt && cp %s %s/live.key",
	    cert, dir, key, dir);
	shell_ok(cmd);
	snprintf(cert, sizeof(cert), "%s/live.crt", dir);
	snprintf(key, sizeof(key), "%s/live.key", dir);
	port = start_tls_server("echo", NULL);

	before = tls_connect(port);
	ck_assert_int_eq(peer_serial(before), 0xa1);
	ck_assert(tls_echo_once(before));

	install_cert("b");
	kill(server.pid, SIGHUP);
	ck_assert(test_server_log_wait(&server, "reloaded the tls "
	    "certificate: subject '/CN=b', serial B2", now_ms() + 20000));
	after = tls_connect(port);
	ck_assert_int_eq(peer_serial(after), 0xb2);
	/* The connection from before the reload is served as ever. */
	ck_assert(tls_echo_once(before));
	ck_assert(tls_echo_once(after));

	/* A bad new certificate changes nothing. */
	snprintf(cmd, sizeof(cmd), "echo garbage > %s", cert);
	shell_ok(cmd);
	kill(server.pid, SIGHUP);
	ck_assert(test_server_log_wait(&server, "keeping the old tls "
	    "certificate", now_ms() + 20000));
	later = tls_connect(port);
	ck_assert_int_eq(peer_serial(later), 0xb2);
	/* (Reading also takes in the session tickets: closing with them
	 * unread would reset the connection, an error at the server.) */
	ck_assert(tls_echo_once(later));
	ck_assert(tls_echo_once(before));
	tls_close(before);
	tls_close(after);
	tls_close(later);
	log = test_server_stop_clean(&server);
	ck_assert_int_eq(exit_stat(log, "tls_handshakes"), 3);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

/* --- echobench --tls ------------------------------------------------------ */

START_TEST(test_echobench_tls_checks_every_byte_in_each_mode)
{
	const char *modes[] = { "pingpong -c 20 -D 4", "bulk -c 4",
		"churn -c 4" };
	const char *bench = getenv("ECHOBENCH");
	int port = start_tls_server("echo", NULL), status;
	char cmd[512], *out, *log;
	long handshakes;

	/* Long enough for a sanitized server on a loaded machine to echo
	 * something: a run with no message is a failure. */
	const char *secs = TEST_SANITIZED ? "-d 2 -w 0.5" : "-d 0.5 -w 0.2";

	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), "%s --tls -p %d -m %s %s --json -q "
		    "2>&1", bench ? bench : "./echobench", port, modes[i],
		    secs);
		out = test_shell(cmd, &status);
		ck_assert_msg(status == 0, "'%s': %s", cmd, out);
		ck_assert_msg(strstr(out, "\"tls\":true") &&
		    strstr(out, "\"errors\":0}") && !strstr(out,
		    "\"msgs\":0,"), "'%s': %s", cmd, out);
		free(out);
	}
	log = test_server_stop_clean(&server);
	/* Churn reconnects: more handshakes than connections. */
	handshakes = exit_stat(log, "tls_handshakes");
	ck_assert_int_gt(handshakes, 20 + 4 + 4);
	ck_assert_int_eq(exit_stat(log, "tls_handshake_failures"), 0);
	ck_assert_int_eq(exit_stat(log, "errors"), 0);
	free(log);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	const char *why = no_openssl();
	TCase *tc;

	tc = tcase_create("s_client");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc, test_echo_over_tls_with_s_client, why);
	test_add_or_skip(tc, test_line_over_tls_1_2_and_1_3_with_s_client,
	    why);
	test_add_or_skip(tc,
	    test_proxy_header_then_tls_is_served_with_its_client, why);
	test_add_or_skip(tc, test_resp_over_tls_with_redis_cli,
	    why ? why : no_redis_cli_tls());
	suite_add_tcase(s, tc);

	tc = tcase_create("versions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc, test_tls_1_2_and_1_3_served_and_1_1_refused, why);
	suite_add_tcase(s, tc);

	tc = tcase_create("half-close");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	test_add_or_skip(tc,
	    test_64_mib_half_closed_with_close_notify_all_comes_back, why);
	test_add_or_skip(tc,
	    test_half_closed_without_close_notify_all_comes_back, why);
	test_add_or_skip(tc,
	    test_short_streams_closed_right_behind_their_data_come_back, why);
	suite_add_tcase(s, tc);

	tc = tcase_create("backpressure");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	test_add_or_skip(tc, test_slow_reader_is_paused_with_memory_bounded,
	    why);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshakes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	test_add_or_skip(tc,
	    test_silent_and_half_hello_clients_time_out_and_are_counted, why);
	test_add_or_skip(tc,
	    test_a_hello_trickled_a_byte_at_a_time_is_cut_at_the_deadline,
	    why);
	test_add_or_skip(tc,
	    test_garbage_instead_of_a_hello_is_closed_and_counted, why);
	suite_add_tcase(s, tc);

	tc = tcase_create("certificates");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc,
	    test_expired_or_bad_certificate_stops_start_up_with_one_line, why);
	test_add_or_skip(tc,
	    test_sighup_serves_the_new_certificate_and_keeps_connections, why);
	suite_add_tcase(s, tc);

	tc = tcase_create("echobench");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	test_add_or_skip(tc, test_echobench_tls_checks_every_byte_in_each_mode,
	    why);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(tls_suite());
}
