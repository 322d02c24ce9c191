/*
 * Shared test helpers; see testutil.h.  Everything here talks to the real
 * kernel: real sockets, real subprocesses, real /proc.
 */
#include "testutil.h"

#include "common/procstat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	/* Tests write to sockets that the server may close. */
	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void test_skip(const char *name, const char *why)
{
	printf("skip: %s: %s\n", name, why);
	/* Before Check's own output, which may come from a forked child. */
	fflush(stdout);
}

const char *test_no_ipv6_loopback(void)
{
	static char why[128];
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(why, sizeof(why), "no IPv6 in this kernel: %s",
		    strerror(errno));
		return why;
	}
	/* IPv6 can be compiled in but disabled, which leaves no ::1. */
	sin6.sin6_addr = in6addr_loopback;
	if (bind(fd, (struct sockaddr *)&sin6, sizeof(sin6))) {
		snprintf(why, sizeof(why), "no IPv6 loopback here: "
		    "cannot bind [::1]: %s", strerror(errno));
		close(fd);
		return why;
	}
	close(fd);
	return NULL;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double test_scale(void)
{
	const char *s = getenv("TEST_SCALE");
	double v = s ? strtod(s, NULL) : 1.0;

	return v < 0.01 ? 0.01 : v;
}

size_t scaled(size_t n, size_t min)
{
	size_t v = (size_t)((double)n * test_scale());

	return v < min ? min : v;
}

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int test_connect(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	ck_assert_int_ge(fd, 0);
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect to port %d: %s", port, strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int test_connect_from(int port, int src)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, err;

	if (fd < 0)
		return -1;
	if (src > 0) {
		struct sockaddr_in from = { .sin_family = AF_INET };

		/* Choose the port at connect(), by the whole 4-tuple, rather
		 * than at bind(), which wants a port free of every peer. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		from.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
		if (bind(fd, (struct sockaddr *)&from, sizeof(from)))
			goto fail;
	}
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int test_echo_once(int fd)
{
	char c = 'e';

	if (write(fd, &c, 1) != 1)
		return 0;
	return read_exact(fd, &c, 1, now_ms() + 20000) == 1 && c == 'e';
}

void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

size_t read_exact(int fd, void *buf, size_t len, uint64_t deadline)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ms();
		ssize_t n;

		if (now >= deadline)
			break;
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(fd, p + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

int wait_eof(int fd, uint64_t deadline)
{
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ms();
		ssize_t n;

		if (now >= deadline)
			return 0;
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
}

int rss_is_meaningful(void)
{
	const char *w = getenv("TEST_WRAPPER");

	if (TEST_SANITIZED)
		return 0;
	return !(w && *w);
}

/* Entries in /proc/@pid/@dir, without "." and "..". */
static int proc_dir_count(pid_t pid, const char *dir)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, dir);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int proc_fd_count(pid_t pid)
{
	return proc_dir_count(pid, "fd");
}

int proc_thread_count(pid_t pid)
{
	return proc_dir_count(pid, "task");
}

void fill_random(uint64_t *state, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t x = *state;

	for (size_t i = 0; i < len; i++) {
		/* xorshift64: cheap, and every client gets its own stream. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
	*state = x;
}

static const char *server_path_override;

static const char *server_path(void)
{
	const char *p = getenv("ECHOSERVER");

	if (server_path_override)
		return server_path_override;
	return p ? p : "./echoserver";
}

/* argv for the server: the wrapper's words (split on spaces), then the
 * server, then @fixed and @args.  Static storage; tests are single-threaded
 * in the parent. */
static char **build_argv(const char *const *fixed, const char *const *args)
{
	static char *argv[128];
	static char wrapper[1024];
	const char *w = getenv("TEST_WRAPPER");
	int n = 0;

	if (w && *w) {
		snprintf(wrapper, sizeof(wrapper), "%s", w);
		for (char *tok = strtok(wrapper, " "); tok && n < 32;
		    tok = strtok(NULL, " "))
			argv[n++] = tok;
	}
	argv[n++] = (char *)server_path();
	for (; fixed && *fixed && n < 126; fixed++)
		argv[n++] = (char *)*fixed;
	for (; args && *args && n < 126; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return argv;
}

static pid_t spawn(char **argv, const char *err_path, long nofile)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDWR);
		struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };

		if (fd < 0 || null < 0)
			_exit(127);
		if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &rl))
			_exit(127);
		dup2(null, 0);
		dup2(null, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void test_server_start(struct test_server *ts, const char *const *args)
{
	test_server_start_ex(ts, args, NULL, 0);
}

void test_server_start_ex(struct test_server *ts, const char *const *args,
    const char *path, long nofile)
{
	char port_path[128];
	uint64_t deadline;
	const char *fixed[] = { "-l", "127.0.0.1", "-p", "0", "--port-file",
		port_path, NULL };

	memset(ts, 0, sizeof(*ts));
	snprintf(ts->dir, sizeof(ts->dir), "/tmp/echoserver-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(ts->dir));
	snprintf(port_path, sizeof(port_path), "%s/port", ts->dir);
	snprintf(ts->log_path, sizeof(ts->log_path), "%s/stderr", ts->dir);

	server_path_override = path;
	ts->pid = spawn(build_argv(fixed, args), ts->log_path, nofile);
	server_path_override = NULL;

	/* The server writes the port file atomically (rename) once it
	 * listens; valgrind start-up is slow, hence the long deadline. */
	deadline = now_ms() + 60000;
	while (now_ms() < deadline) {
		FILE *f = fopen(port_path, "r");
		int status;

		if (f) {
			while (ts->n_ports < TEST_SERVER_MAX_PORTS &&
			    fscanf(f, "%d", &ts->ports[ts->n_ports]) == 1)
				ts->n_ports++;
			/* The "udp PORT" lines follow the TCP ones. */
			while (ts->n_udp_ports < TEST_SERVER_MAX_PORTS &&
			    fscanf(f, " udp %d",
			    &ts->udp_ports[ts->n_udp_ports]) == 1)
				ts->n_udp_ports++;
			fclose(f);
			ck_assert_msg(ts->n_ports > 0, "unreadable port file");
			ts->port = ts->ports[0];
			unlink(port_path);
			return;
		}
		if (waitpid(ts->pid, &status, WNOHANG) == ts->pid) {
			char *log = test_server_log(ts);

			ts->pid = 0;
			ck_abort_msg("echoserver exited at start-up: %s", log);
		}
		poll(NULL, 0, 5);	/* a poll interval, bounded by deadline */
	}
	test_server_stop(ts, SIGKILL);
	ck_abort_msg("echoserver did not write its port file in time");
}

int test_server_stop(struct test_server *ts, int sig)
{
	int status = 0;

	if (ts->pid > 0) {
		kill(ts->pid, sig);
		while (waitpid(ts->pid, &status, 0) < 0 && errno == EINTR)
			;
		ts->pid = 0;
	}
	return status;
}

int test_server_wait(struct test_server *ts, uint64_t deadline)
{
	int status;

	while (ts->pid > 0 && now_ms() < deadline) {
		if (waitpid(ts->pid, &status, WNOHANG) == ts->pid) {
			ts->pid = 0;
			return status;
		}
		poll(NULL, 0, 5);	/* a poll interval, bounded by deadline */
	}
	return -1;
}

void test_server_cleanup(struct test_server *ts)
{
	if (!ts->dir[0])
		return;
	unlink(ts->log_path);
	rmdir(ts->dir);
	ts->dir[0] = '\0';
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	if (f) {
		while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
			len += n;
			if (cap - len < 2) {
				cap *= 2;
				buf = realloc(buf, cap);
				ck_assert_ptr_nonnull(buf);
			}
		}
		fclose(f);
	}
	buf[len] = '\0';
	return buf;
}

char *test_server_log(const struct test_server *ts)
{
	return slurp(ts->log_path);
}

int test_server_log_wait(const struct test_server *ts, const char *needle,
    uint64_t deadline)
{
	do {
		char *log = test_server_log(ts);
		int found = strstr(log, needle) != NULL;

		free(log);
		if (found)
			return 1;
		poll(NULL, 0, 10);	/* a poll interval, bounded by deadline */
	} while (now_ms() < deadline);
	return 0;
}

long test_stat(const char *log, const char *when, const char *who,
    const char *name)
{
	char tag[64], key[64];
	const char *line = NULL, *p, *end;

	snprintf(tag, sizeof(tag), "stats %s: %s ", when, who);
	for (p = log; (p = strstr(p, tag)); p++)
		line = p;
	if (!line)
		return -1;
	end = strchr(line, '\n');
	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(line, key);
	return p && (!end || p < end) ? strtol(p + strlen(key), NULL, 10) : -1;
}

int test_server_wait_stat(const struct test_server *ts, const char *name,
    long want, uint64_t deadline)
{
	while (now_ms() < deadline) {
		char *log;
		long v;

		kill(ts->pid, SIGUSR1);
		poll(NULL, 0, 50);	/* a poll interval, bounded above */
		log = test_server_log(ts);
		v = test_stat(log, "now", "total", name);
		free(log);
		if (v == want)
			return 1;
	}
	return 0;
}

char *test_server_stop_clean(struct test_server *ts)
{
	kill(ts->pid, SIGTERM);
	return test_server_wait_clean(ts);
}

char *test_server_wait_clean(struct test_server *ts)
{
	int status;
	char *log;

	status = test_server_wait(ts, now_ms() + 60000);
	log = test_server_log(ts);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "echoserver did not exit 0 (status %#x): %s", status, log);
	return log;
}

int run_echoserver(const char *const *args, char **err)
{
	char dir[] = "/tmp/echoserver-run.XXXXXX", path[64];
	int status;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/stderr", dir);
	pid = spawn(build_argv(NULL, args), path, 0);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*err = slurp(path);
	unlink(path);
	rmdir(dir);
	return status;
}

char *test_shell(const char *cmd, int *status)
{
	size_t cap = 1 << 16, n = 0, r;
	char *out = malloc(cap);
	FILE *p = popen(cmd, "r");

	ck_assert_ptr_nonnull(out);
	ck_assert_msg(p != NULL, "cannot run '%s'", cmd);
	while ((r = fread(out + n, 1, cap - 1 - n, p)) > 0) {
		n += r;
		if (n == cap - 1) {
			out = realloc(out, cap *= 2);
			ck_assert_ptr_nonnull(out);
		}
	}
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

int test_have_tool(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

int test_free_port(int type)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type, 0), port;

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

void test_redis_start(struct test_redis *r)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double k = m ? atof(m) : 1;
	uint64_t deadline = now_ms() + (uint64_t)(20000 * (k > 1 ? k : 1));
	char port[16];

	r->port = test_free_port(SOCK_STREAM);
	snprintf(port, sizeof(port), "%d", r->port);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", port,
		    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--dir", "/tmp", (char *)NULL);
		_exit(127);
	}
	while (now_ms() < deadline) {
		int fd = test_connect_from(r->port, 0);

		if (fd >= 0) {
			close(fd);
			return;
		}
		poll(NULL, 0, 10);	/* a poll interval, bounded above */
	}
	ck_abort_msg("redis-server did not start on port %d", r->port);
}

void test_redis_stop(struct test_redis *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	r->pid = 0;
}
