/*
 * Helpers shared by the Check suites: a runner that honours CK_* variables,
 * deadlines for polling (tests never sleep to synchronise), blocking socket
 * I/O with a deadline, and a real echoserver subprocess on a loopback port
 * chosen by the kernel.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include "common/procstat.h"	/* RSS and CPU time of the server under test */

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * 1 when this file is compiled with AddressSanitizer or ThreadSanitizer
 * (the tests and the server share the build flags, so then the server is
 * too).  GCC defines __SANITIZE_*__; clang (14, as Debian 12 ships it)
 * defines neither and answers through __has_feature, which GCC 12 lacks.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

/* Runs @s (taken over) with CK_ENV verbosity; returns a process exit code. */
int run_suite(Suite *s);

/*
 * Check has no "skipped" verdict, so a test that cannot run here is left
 * out of its suite and reported instead of passing without testing
 * anything (libuv's RETURN_SKIP).  test_skip() prints the one wording every
 * suite uses, "skip: @name: @why", on stdout; both strings are borrowed.
 */
void test_skip(const char *name, const char *why);

/* Adds the test @tf to @tc, or, when @why is not NULL, skips it for that
 * reason.  Decide @why at suite construction, e.g. test_no_ipv6_loopback(). */
#define test_add_or_skip(tc, tf, why) do {				\
		const char *why_ = (why);				\
									\
		if (why_)						\
			test_skip(#tf, why_);				\
		else							\
			tcase_add_test(tc, tf);				\
	} while (0)

/* NULL if a TCP socket can bind [::1]; otherwise why not, in a static
 * string. */
const char *test_no_ipv6_loopback(void);

/* Monotonic milliseconds. */
uint64_t now_ms(void);

/*
 * Test size multiplier from TEST_SCALE (default 1), so that valgrind and
 * sanitizer runs can shrink the big transfers.  Never returns below 0.01.
 */
double test_scale(void);

/* Scales @n by test_scale(), but never below @min. */
size_t scaled(size_t n, size_t min);

/* Monotonic microseconds, for latency figures. */
uint64_t now_us(void);

/* A blocking TCP connection to 127.0.0.1:@port; aborts the test on failure. */
int test_connect(int port);

/*
 * A blocking TCP connection to 127.0.0.1:@port from the source address
 * 127.0.0.@src (0: let the kernel choose), with TCP_NODELAY.  Spreading
 * many connections over sources gets past the ephemeral ports of one
 * address.  Returns the fd, or -1 with errno set; never fails the test, so
 * it is safe in helper threads and forked children.
 */
int test_connect_from(int port, int src);

/* Sends one byte and waits up to 20 s for it: 1 if echoed, 0 if the server
 * closed the connection instead.  Never fails the test. */
int test_echo_once(int fd);

/* Writes all of @buf or fails the test (blocking fd). */
void write_all(int fd, const void *buf, size_t len);

/*
 * Reads exactly @len bytes into @buf, waiting at most until @deadline
 * (now_ms() based).  Returns the number read: less than @len on EOF or
 * timeout.
 */
size_t read_exact(int fd, void *buf, size_t len, uint64_t deadline);

/* True once @fd reads EOF before @deadline (discarding any data). */
int wait_eof(int fd, uint64_t deadline);

/*
 * False when the server runs under a sanitizer (tests are built with the
 * same flags) or a TEST_WRAPPER such as valgrind: ASan's quarantine, TSan's
 * shadow memory and valgrind's own heap make RSS bounds meaningless there,
 * so memory bounds are checked in the plain build only.
 */
int rss_is_meaningful(void);


/* Open descriptors of @pid, from /proc; -1 if unknown. */
int proc_fd_count(pid_t pid);

/* Threads of @pid, from /proc; -1 if unknown. */
int proc_thread_count(pid_t pid);

/* Fills @buf with bytes from the xorshift stream *@state. */
void fill_random(uint64_t *state, void *buf, size_t len);

#define TEST_SERVER_MAX_PORTS 16

/* A spawned echoserver. */
struct test_server {
	pid_t pid;
	int port;		/* its first listener's: 127.0.0.1 */
	int ports[TEST_SERVER_MAX_PORTS];	/* every listener's, in
						 * --listen order */
	int n_ports;
	char dir[64];		/* private temp dir for the port and log files */
	char log_path[96];	/* the server's stderr */
	int udp_ports[TEST_SERVER_MAX_PORTS];	/* every -u's, in order */
	int n_udp_ports;
};

/*
 * Starts $ECHOSERVER (default ./echoserver) on 127.0.0.1 port 0 with the
 * NULL-terminated @args appended, under $TEST_WRAPPER if set, and waits for
 * its port file.  Fails the test if it does not come up.  Listeners that
 * @args add ("-l", "line@127.0.0.1") get their own ports, ts->ports[1] on.
 */
void test_server_start(struct test_server *ts, const char *const *args);

/*
 * Like test_server_start(), but runs the program at @path (NULL: as
 * above) with its fd limit set to @nofile (0: unchanged).
 */
void test_server_start_ex(struct test_server *ts, const char *const *args,
    const char *path, long nofile);

/* Sends @sig and reaps; returns the wait status.  Idempotent. */
int test_server_stop(struct test_server *ts, int sig);

/* Waits until @deadline for the server to exit by itself; returns the
 * wait status, or -1 if it is still running. */
int test_server_wait(struct test_server *ts, uint64_t deadline);

/* Removes the server's temp dir and log; call after test_server_stop(). */
void test_server_cleanup(struct test_server *ts);

/* Reads the server's stderr so far; caller frees. */
char *test_server_log(const struct test_server *ts);

/* Polls the server's stderr until it contains @needle; false if it does
 * not by @deadline. */
int test_server_log_wait(const struct test_server *ts, const char *needle,
    uint64_t deadline);

/*
 * The counter @name from the newest "stats @when: @who" line of @log
 * (@when is "now" for SIGUSR1, "at exit" at shutdown; @who is "total" or
 * "worker N"); -1 if absent.
 */
long test_stat(const char *log, const char *when, const char *who,
    const char *name);

/* Sends SIGUSR1 until the live total @name equals @want; false if it
 * does not by @deadline. */
int test_server_wait_stat(const struct test_server *ts, const char *name,
    long want, uint64_t deadline);

/* Waits up to 60 s for a server already told to stop to exit with status
 * 0 (failing the test otherwise); returns its log, which caller frees. */
char *test_server_wait_clean(struct test_server *ts);

/* Sends SIGTERM, then test_server_wait_clean(). */
char *test_server_stop_clean(struct test_server *ts);

/* Runs the shell command @cmd (borrowed) to completion; returns its
 * stdout, NUL-terminated (caller frees), and its wait status in
 * *@status.  For the real clients: nc, redis-cli, redis-benchmark. */
char *test_shell(const char *cmd, int *status);

/* Runs $ECHOSERVER to completion; returns its wait status and
 * stores its stderr in @err (caller frees). */
int run_echoserver(const char *const *args, char **err);

/* 1 if the program @tool (borrowed) is on $PATH.  Asks through system(),
 * not Check, so it is safe at suite construction, outside any test. */
int test_have_tool(const char *tool);

/*
 * A loopback port of socket @type (SOCK_STREAM, SOCK_DGRAM) that was free
 * a moment ago, for the real tools that cannot take port 0 and report
 * the port back (redis-server, systemd-socket-activate).  Another process
 * may take it before the tool binds it, so a caller must tolerate that.
 * Fails the test if no port can be bound.
 */
int test_free_port(int type);

/* A real redis-server, to compare replies with. */
struct test_redis {
	pid_t pid;		/* 0 when not running */
	int port;		/* on 127.0.0.1 */
};

/*
 * Starts redis-server on a test_free_port() without persistence (its
 * output to /dev/null) and waits up to 20 s (times CK_TIMEOUT_MULTIPLIER)
 * until it accepts a connection; fails the test otherwise.  @r is the
 * caller's storage; test_redis_stop() releases it.
 */
void test_redis_start(struct test_redis *r);

/* Kills (SIGKILL) and reaps the redis-server of @r, if it runs.
 * Idempotent, so teardowns may call it whether or not a test started one. */
void test_redis_stop(struct test_redis *r);

#endif
