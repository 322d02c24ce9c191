/*
 * echobench: a load generator for any TCP echo server.  It parses the
 * options, starts one loadgen per thread, moves them through the opening,
 * warm-up, measuring and drain phases, prints a progress line once a second
 * on a terminal, and prints the summary (or JSON) at the end: messages and
 * megabytes per second, latency percentiles and, given the server's pid,
 * the server's CPU time per message and RSS per connection from /proc.
 * Every echoed byte is checked; any error makes the exit status 1.
 */
#include "histogram.h"
#include "loadgen.h"
#include "udpgen.h"
#include "common/fdlimit.h"
#include "common/parse.h"
#include "common/procstat.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

struct bench_options {
	enum loadgen_mode mode;
	const char *addr;
	unsigned port;
	unsigned conns;
	unsigned size;
	unsigned depth;
	unsigned threads;
	unsigned sources;
	double duration;
	double warmup;
	double open_timeout;	/* < 0: scaled with the connection count */
	long pid;
	int json;
	int quiet;
	int udp;		/* --udp: flows of datagrams (udpgen.h) */
	double loss_timeout;	/* --udp: seconds until counted lost */
	int reconnect;		/* --reconnect: a close between messages
				 * reopens */
	int tls;
};

/* What the main thread measures around the measuring phase. */
struct bench_result {
	struct loadgen_counters start, end;
	double seconds;			/* measured wall time */
	double client_cpu;		/* seconds */
	double server_cpu;		/* seconds; < 0 without --pid */
	long rss_before, rss_after;	/* KiB; < 0 unknown */
	double open_seconds;		/* time to open every connection */
	unsigned opened;
	struct histogram hist;
};

static const char *const mode_names[] = {
	[LOADGEN_PINGPONG] = "pingpong",
	[LOADGEN_BULK] = "bulk",
	[LOADGEN_CHURN] = "churn",
	[LOADGEN_HOLD] = "hold",
};

static int phase = LOADGEN_OPENING;
static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
"usage: echobench [options]\n"
"Drives a TCP echo server and checks every byte it echoes.\n"
"\n"
"  -m, --mode MODE       pingpong, bulk, churn or hold (default pingpong)\n"
"  -a, --addr ADDR       server IPv4 address (default 127.0.0.1)\n"
"  -p, --port PORT       server port (default 5555)\n"
"  -c, --conns N         connections (default 100; churn: 8 at a time)\n"
"  -s, --size BYTES      message size, k/m/g suffixes (default 64;\n"
"                        bulk 64k)\n"
"  -D, --depth N         messages in flight per connection (default 1;\n"
"                        bulk 4)\n"
"  -d, --duration SECS   measuring time (default 5; hold: time held)\n"
"  -w, --warmup SECS     unmeasured time first (default 1; hold: time\n"
"                        to settle before reading the server's RSS)\n"
"  -t, --threads N       client threads (default 1)\n"
"      --open-timeout SECS  give up on connections not open and echoing\n"
"                        by then (default 30 plus 2 per 1000 connections)\n"
"      --sources N       spread over source addresses 127.0.0.1..N\n"
"                        (default: move on when one runs out of ports)\n"
"      --pid PID         the server's pid: report its CPU per message\n"
"                        and RSS per connection from /proc\n"
"      --udp             UDP echo instead: -c flows (default 4), each\n"
"                        keeping -D datagrams (default 16) of -s bytes\n"
"                        (8 to 65507) in flight; reports datagrams/s and\n"
"                        the datagrams lost\n"
"      --loss-timeout SECS  --udp: a datagram not echoed by then is lost\n"
"                        (default 0.2)\n"
"      --reconnect       a connection the server closes between messages\n"
"                        is opened again and counted, not an error (for\n"
"                        servers stopped mid-run behind a balancer)\n"
"      --tls             speak TLS (1.2 or 1.3; the server's certificate\n"
"                        is not verified)\n"
"      --json            print the summary as JSON\n"
"  -q, --quiet           no progress line\n"
"  -h, --help            this help\n"
"  -V, --version         print the version\n"
"\n"
"Exit status: 0 if every byte came back, 1 on any error, 64 on bad usage.\n");
}

static void bad_value(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "echobench: invalid value '%s' for '%s': %s\n", val,
	    opt, why);
	exit(EX_USAGE);
}

static void bad_range(const char *opt, const char *val,
    unsigned long long min, unsigned long long max)
{
	char why[96];

	snprintf(why, sizeof(why), "must be from %llu to %llu", min, max);
	bad_value(opt, val, why);
}

/* An unsigned integer in [@min, @max]; @max must fit an unsigned. */
static unsigned parse_unsigned(const char *opt, const char *val,
    unsigned long long min, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	end = (char *)val;
	v = 0;
	/* strtoull would take "-1" as a huge number. */
	if (*val != '-')
		v = strtoull(val, &end, 10);
	if (end == val || *end != '\0' || errno)
		bad_value(opt, val, "not a number");
	if (v < min || v > max)
		bad_range(opt, val, min, max);
	return (unsigned)v;
}

/* A byte count in [@min, @max], with an optional k, m or g suffix
 * (parse.h); @max must fit an unsigned. */
static unsigned parse_bytes(const char *opt, const char *val,
    unsigned long long min, unsigned long long max)
{
	uint64_t v;
	int rc = parse_size(val, min, max, &v);

	if (rc == -EINVAL)
		bad_value(opt, val, "not a number");
	if (rc)
		bad_range(opt, val, min, max);
	return (unsigned)v;
}

static double parse_seconds(const char *opt, const char *val, double min)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (end == val || *end != '\0' || errno || !isfinite(v))
		bad_value(opt, val, "not a number of seconds");
	if (v < min || v > 86400)
		bad_value(opt, val, min > 0 ? "must be above 0 and at most "
		    "86400" : "must be from 0 to 86400");
	return v;
}

static void parse_options(int argc, char **argv, struct bench_options *o)
{
	enum { OPT_SOURCES = 256, OPT_PID, OPT_JSON, OPT_OPEN_TIMEOUT,
		OPT_UDP, OPT_LOSS_TIMEOUT, OPT_RECONNECT, OPT_TLS };
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "depth", required_argument, NULL, 'D' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "open-timeout", required_argument, NULL,
		    OPT_OPEN_TIMEOUT },
		{ "sources", required_argument, NULL, OPT_SOURCES },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "udp", no_argument, NULL, OPT_UDP },
		{ "loss-timeout", required_argument, NULL,
		    OPT_LOSS_TIMEOUT },
		{ "reconnect", no_argument, NULL, OPT_RECONNECT },
		{ "tls", no_argument, NULL, OPT_TLS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, size_set = 0, depth_set = 0, conns_set = 0;
	struct in_addr ia;
	unsigned i;

	memset(o, 0, sizeof(*o));
	o->mode = LOADGEN_PINGPONG;
	o->addr = "127.0.0.1";
	o->port = 5555;
	o->conns = 100;
	o->size = 64;
	o->depth = 1;
	o->threads = 1;
	o->duration = 5;
	o->warmup = 1;
	o->open_timeout = -1;
	o->pid = -1;
	o->loss_timeout = 0.2;
	while ((ch = getopt_long(argc, argv, "m:a:p:c:s:D:d:w:t:qhV",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			for (i = 0; i < 4; i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == 4)
				bad_value("--mode", optarg, "must be pingpong, "
				    "bulk, churn or hold");
			o->mode = (enum loadgen_mode)i;
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, &ia) != 1)
				bad_value("--addr", optarg,
				    "not an IPv4 address");
			o->addr = optarg;
			break;
		case 'p':
			o->port = parse_unsigned("--port", optarg, 1,
			    65535);
			break;
		case 'c':
			o->conns = parse_unsigned("--conns", optarg, 1,
			    1000000);
			conns_set = 1;
			break;
		case 's':
			o->size = parse_bytes("--size", optarg, 1, 16 << 20);
			size_set = 1;
			break;
		case 'D':
			o->depth = parse_unsigned("--depth", optarg, 1,
			    65536);
			depth_set = 1;
			break;
		case 'd':
			o->duration = parse_seconds("--duration", optarg,
			    1e-9);
			break;
		case 'w':
			o->warmup = parse_seconds("--warmup", optarg, 0);
			break;
		case 't':
			o->threads = parse_unsigned("--threads", optarg, 1,
			    64);
			break;
		case OPT_OPEN_TIMEOUT:
			o->open_timeout = parse_seconds("--open-timeout",
			    optarg, 1e-9);
			break;
		case OPT_SOURCES:
			o->sources = parse_unsigned("--sources", optarg, 1,
			    254);
			break;
		case OPT_PID:
			o->pid = (long)parse_unsigned("--pid", optarg, 1,
			    INT_MAX);
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_UDP:
			o->udp = 1;
			break;
		case OPT_LOSS_TIMEOUT:
			o->loss_timeout = parse_seconds("--loss-timeout",
			    optarg, 0.001);
			break;
		case OPT_RECONNECT:
			o->reconnect = 1;
			break;
		case OPT_TLS:
			o->tls = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("echobench %s\n", VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(EX_USAGE);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "echobench: unexpected argument '%s'\n",
		    argv[optind]);
		exit(EX_USAGE);
	}
	if (o->udp) {
		if (o->mode != LOADGEN_PINGPONG) {
			fprintf(stderr, "echobench: '--udp' takes no "
			    "'--mode'\n");
			exit(EX_USAGE);
		}
		if (!conns_set)
			o->conns = 4;
		if (!depth_set)
			o->depth = 16;
		if (o->size < UDPGEN_MIN_SIZE || o->size > UDPGEN_MAX_SIZE) {
			fprintf(stderr, "echobench: invalid value '%u' for "
			    "'--size': a UDP datagram here is %d to %d "
			    "bytes\n", o->size, UDPGEN_MIN_SIZE,
			    UDPGEN_MAX_SIZE);
			exit(EX_USAGE);
		}
	}
	if (o->mode == LOADGEN_BULK) {
		if (!size_set)
			o->size = 64 * 1024;
		if (!depth_set)
			o->depth = 4;
	}
	if (o->mode == LOADGEN_CHURN && !conns_set)
		o->conns = 8;
	if ((unsigned long long)o->size * o->depth > 256ull << 20) {
		fprintf(stderr, "echobench: '--size' %u times '--depth' %u is "
		    "over 256 MiB per connection\n", o->size, o->depth);
		exit(EX_USAGE);
	}
	inet_pton(AF_INET, o->addr, &ia);
	if (o->sources && ntohl(ia.s_addr) >> 24 != 127) {
		fprintf(stderr, "echobench: '--sources' needs a 127.x.x.x "
		    "target, not '%s'\n", o->addr);
		exit(EX_USAGE);
	}
	if (o->open_timeout < 0)
		o->open_timeout = 30 + o->conns / 500.0;
	if (o->threads > o->conns)
		o->threads = o->conns;
}

/*
 * Raises the soft fd limit to the hard one and checks that @conns
 * connections fit, with room for stdio, epoll sets and /proc reads.
 */
static void fit_fd_limit(unsigned conns, unsigned threads)
{
	long limit = fdlimit_raise();
	long long need = (long long)conns + threads + 16;

	if (limit >= 0 && need > limit) {
		fprintf(stderr, "echobench: invalid value '%u' for '--conns': "
		    "needs %lld fds, but the limit is %ld\n", conns, need,
		    limit);
		exit(EX_USAGE);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sum_counters(struct loadgen **lgs, unsigned n,
    struct loadgen_counters *sum)
{
	struct loadgen_counters c;
	unsigned i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		loadgen_counters(lgs[i], &c);
		sum->msgs += c.msgs;
		sum->bytes += c.bytes;
		sum->errors += c.errors;
		sum->reconnects += c.reconnects;
		sum->unanswered += c.unanswered;
		sum->open += c.open;
		sum->ready += c.ready;
		sum->failed += c.failed;
	}
}

static void set_phase(enum loadgen_phase p)
{
	__atomic_store_n(&phase, (int)p, __ATOMIC_RELEASE);
}

static void on_signal(int sig)
{
	interrupted = 1;
}

/* The progress line, rewritten in place on a terminal. */
static void progress(const struct bench_options *o, const char *what,
    const struct loadgen_counters *now, const struct loadgen_counters *prev,
    double dt)
{
	if (o->quiet || !isatty(STDERR_FILENO) || dt <= 0)
		return;
	fprintf(stderr, "\r%-8s %10.0f msgs/s %9.2f MB/s %7llu open "
	    "%5llu errors ", what, (double)(now->msgs - prev->msgs) / dt,
	    (double)(now->bytes - prev->bytes) / dt / 1e6,
	    (unsigned long long)now->open, (unsigned long long)now->errors);
}

static void progress_end(const struct bench_options *o)
{
	if (!o->quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\r%-78s\r", "");
}

/*
 * Waits in steps of at most a second until @until (now_s() based) or, when
 * @all_ready, until every connection is ready or failed, printing progress.
 */
static void run_phase(const struct bench_options *o, struct loadgen **lgs,
    const char *what, double until, int all_ready)
{
	struct loadgen_counters prev, cur;
	double last = now_s();

	sum_counters(lgs, o->threads, &prev);
	while (!interrupted) {
		double t = now_s(), step;
		struct timespec ts;

		if (all_ready) {
			sum_counters(lgs, o->threads, &cur);
			if (cur.ready + cur.failed >= o->conns)
				return;
			step = 0.01;
		} else {
			if (t >= until)
				return;
			step = until - t < 0.1 ? until - t : 0.1;
		}
		if (t >= until)
			return;
		ts.tv_sec = (time_t)step;
		ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		if (now_s() - last >= 1.0) {
			sum_counters(lgs, o->threads, &cur);
			progress(o, what, &cur, &prev, now_s() - last);
			prev = cur;
			last = now_s();
		}
	}
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_summary(const struct bench_options *o,
    const struct bench_result *r)
{
	uint64_t msgs = r->end.msgs - r->start.msgs;
	uint64_t bytes = r->end.bytes - r->start.bytes;
	double secs = r->seconds > 0 ? r->seconds : 1;
	double mps = (double)msgs / secs;
	double mbps = (double)bytes / secs / 1e6;
	const struct histogram *h = &r->hist;
	long rss_per_conn = -1;

	if (r->rss_before >= 0 && r->rss_after >= 0 && r->opened)
		rss_per_conn = (r->rss_after - r->rss_before) * 1024 /
		    (long)r->opened;
	if (o->json) {
		printf("{\"mode\":\"%s\",\"tls\":%s,\"conns\":%u,\"size\":%u,"
		    "\"depth\":%u,\"threads\":%u,\"duration\":%.3f,"
		    "\"opened\":%u,\"open_seconds\":%.3f,"
		    "\"msgs\":%llu,\"bytes\":%llu,\"msgs_per_sec\":%.1f,"
		    "\"mb_per_sec\":%.3f,\"latency_us\":{\"mean\":%.2f,"
		    "\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
		    "\"max\":%.2f},\"client_cpu_s\":%.3f,",
		    mode_names[o->mode], o->tls ? "true" : "false", o->conns,
		    o->size, o->depth, o->threads, r->seconds, r->opened,
		    r->open_seconds,
		    (unsigned long long)msgs, (unsigned long long)bytes, mps,
		    mbps, histogram_mean(h) / 1000.0,
		    us(histogram_percentile(h, 50)),
		    us(histogram_percentile(h, 90)),
		    us(histogram_percentile(h, 99)),
		    us(histogram_percentile(h, 99.9)),
		    us(histogram_percentile(h, 100)), r->client_cpu);
		if (r->server_cpu >= 0)
			printf("\"server_cpu_s\":%.3f,"
			    "\"server_cpu_s_per_mmsg\":%.4f,", r->server_cpu,
			    msgs ? r->server_cpu / ((double)msgs / 1e6) : 0);
		if (r->rss_before >= 0)
			printf("\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
			    "\"rss_per_conn_bytes\":%ld,", r->rss_before,
			    r->rss_after, rss_per_conn);
		printf("\"reconnects\":%llu,\"unanswered_bytes\":%llu,",
		    (unsigned long long)r->end.reconnects,
		    (unsigned long long)r->end.unanswered);
		printf("\"errors\":%llu}\n",
		    (unsigned long long)r->end.errors);
		return;
	}
	printf("echobench: %s%s, %u connections, %u B messages, depth %u, "
	    "%u thread%s\n", mode_names[o->mode], o->tls ? " over tls" : "",
	    o->conns, o->size,
	    o->depth, o->threads, o->threads == 1 ? "" : "s");
	printf("  opened      %u connections in %.2f s\n", r->opened,
	    r->open_seconds);
	if (o->mode != LOADGEN_HOLD) {
		printf("  measured    %.2f s after %.2f s of warm-up\n",
		    r->seconds, o->warmup);
		printf("  %-11s %.0f\n", o->mode == LOADGEN_CHURN ?
		    "conns/s" : "msgs/s", mps);
		printf("  MB/s        %.2f (echoed bytes, one direction)\n",
		    mbps);
		printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  "
		    "p99.9 %.1f  max %.1f\n",
		    us(histogram_percentile(h, 50)),
		    us(histogram_percentile(h, 90)),
		    us(histogram_percentile(h, 99)),
		    us(histogram_percentile(h, 99.9)),
		    us(histogram_percentile(h, 100)));
		printf("  client cpu  %.2f s\n", r->client_cpu);
		if (r->server_cpu >= 0)
			printf("  server cpu  %.2f s, %.3f s per million "
			    "messages\n", r->server_cpu, msgs ?
			    r->server_cpu / ((double)msgs / 1e6) : 0.0);
	}
	if (r->rss_before >= 0)
		printf("  server rss  %ld KiB before, %ld KiB after: %ld bytes "
		    "per connection\n", r->rss_before, r->rss_after,
		    rss_per_conn);
	if (o->reconnect)
		printf("  reconnects  %llu, after the server closed between "
		    "messages; %llu bytes sent were not answered\n",
		    (unsigned long long)r->end.reconnects,
		    (unsigned long long)r->end.unanswered);
	printf("  errors      %llu\n", (unsigned long long)r->end.errors);
}

/* The sum of every udpgen's counters. */
static void sum_udp(struct udpgen **ugs, unsigned n,
    struct udpgen_counters *sum)
{
	struct udpgen_counters c;

	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < n; i++) {
		udpgen_counters(ugs[i], &c);
		sum->sent += c.sent;
		sum->echoed += c.echoed;
		sum->lost += c.lost;
		sum->late += c.late;
		sum->errors += c.errors;
		sum->ready += c.ready;
	}
}

/* Sleeps until @until, or until every flow is ready when @flows > 0;
 * returns early on a signal. */
static void udp_wait(struct udpgen **ugs, unsigned n, double until,
    unsigned flows)
{
	struct udpgen_counters c;

	while (!interrupted && now_s() < until) {
		if (flows) {
			sum_udp(ugs, n, &c);
			if (c.ready >= flows)
				return;
		}
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
}

/*
 * --udp: the flows through the same phases as the TCP modes.  Loss is
 * the share of datagrams sent while measuring that were counted lost,
 * so a server that drops under load shows it next to its rate.
 */
static int run_udp(const struct bench_options *o)
{
	struct udpgen_config cfg = {
		.size = o->size,
		.window = o->depth,
		.loss_timeout = o->loss_timeout,
		.phase = &phase,
	};
	struct udpgen **ugs = xcalloc(o->threads, sizeof(*ugs));
	pthread_t *tids = xcalloc(o->threads, sizeof(*tids));
	struct udpgen_counters a, b, fin;
	struct histogram hist;
	double t0, t, secs, cpu0, scpu0 = -1, scpu = -1, pps, loss;
	unsigned i;

	cfg.target.sin_family = AF_INET;
	cfg.target.sin_port = htons((uint16_t)o->port);
	inet_pton(AF_INET, o->addr, &cfg.target.sin_addr);
	histogram_init(&hist);
	for (i = 0; i < o->threads; i++)
		ugs[i] = udpgen_new(&cfg, o->conns / o->threads +
		    (i < o->conns % o->threads ? 1 : 0));
	t0 = now_s();
	for (i = 0; i < o->threads; i++)
		if ((errno = pthread_create(&tids[i], NULL, udpgen_run,
		    ugs[i])) != 0) {
			fprintf(stderr, "echobench: pthread_create: %s\n",
			    strerror(errno));
			exit(1);
		}
	udp_wait(ugs, o->threads, t0 + o->open_timeout, o->conns);
	sum_udp(ugs, o->threads, &a);
	if (a.ready < o->conns && !interrupted)
		fprintf(stderr, "echobench: only %llu of %u flows echoed "
		    "within %.0f s\n", (unsigned long long)a.ready, o->conns,
		    now_s() - t0);
	if (a.ready == 0)
		interrupted = 1;
	set_phase(LOADGEN_WARMUP);
	udp_wait(ugs, o->threads, now_s() + o->warmup, 0);
	sum_udp(ugs, o->threads, &a);
	cpu0 = self_cpu_s();
	if (o->pid > 0)
		scpu0 = procstat_cpu_seconds((pid_t)o->pid);
	t = now_s();
	set_phase(LOADGEN_MEASURE);
	udp_wait(ugs, o->threads, t + o->duration, 0);
	/* Datagrams sent while measuring are still in flight now; their
	 * fate is known a loss timeout later, so wait for it before the
	 * second snapshot of lost and late, but not of echoed. */
	sum_udp(ugs, o->threads, &b);
	secs = now_s() - t;
	cpu0 = self_cpu_s() - cpu0;
	if (scpu0 >= 0) {
		double s1 = procstat_cpu_seconds((pid_t)o->pid);

		scpu = s1 >= 0 ? s1 - scpu0 : -1;
	}
	set_phase(LOADGEN_DRAIN);
	for (i = 0; i < o->threads; i++) {
		pthread_join(tids[i], NULL);
		histogram_merge(&hist, udpgen_histogram(ugs[i]));
	}
	sum_udp(ugs, o->threads, &fin);
	pps = (double)(b.echoed - a.echoed) / (secs > 0 ? secs : 1);
	loss = b.sent > a.sent ? (double)(fin.lost - a.lost) /
	    (double)(fin.sent - a.sent) : 0;
	if (o->json) {
		printf("{\"mode\":\"udp\",\"flows\":%u,\"size\":%u,"
		    "\"window\":%u,\"threads\":%u,\"duration\":%.3f,"
		    "\"sent\":%llu,\"echoed\":%llu,\"lost\":%llu,"
		    "\"late\":%llu,\"pkts_per_sec\":%.1f,\"loss\":%.6f,"
		    "\"latency_us\":{\"mean\":%.2f,\"p50\":%.2f,"
		    "\"p99\":%.2f,\"max\":%.2f},\"client_cpu_s\":%.3f,",
		    o->conns, o->size, o->depth, o->threads, secs,
		    (unsigned long long)(b.sent - a.sent),
		    (unsigned long long)(b.echoed - a.echoed),
		    (unsigned long long)(fin.lost - a.lost),
		    (unsigned long long)(fin.late - a.late), pps, loss,
		    histogram_mean(&hist) / 1000.0,
		    us(histogram_percentile(&hist, 50)),
		    us(histogram_percentile(&hist, 99)),
		    us(histogram_percentile(&hist, 100)), cpu0);
		if (scpu >= 0)
			printf("\"server_cpu_s\":%.3f,", scpu);
		printf("\"errors\":%llu}\n",
		    (unsigned long long)fin.errors);
	} else {
		printf("echobench: udp, %u flows, %u B datagrams, window %u, "
		    "%u thread%s\n", o->conns, o->size, o->depth, o->threads,
		    o->threads == 1 ? "" : "s");
		printf("  measured    %.2f s after %.2f s of warm-up\n", secs,
		    o->warmup);
		printf("  datagrams/s %.0f\n", pps);
		printf("  sent        %llu, lost %llu (%.4f%%), late %llu\n",
		    (unsigned long long)(b.sent - a.sent),
		    (unsigned long long)(fin.lost - a.lost), loss * 100,
		    (unsigned long long)(fin.late - a.late));
		printf("  latency us  p50 %.1f  p99 %.1f  max %.1f\n",
		    us(histogram_percentile(&hist, 50)),
		    us(histogram_percentile(&hist, 99)),
		    us(histogram_percentile(&hist, 100)));
		printf("  client cpu  %.2f s\n", cpu0);
		if (scpu >= 0)
			printf("  server cpu  %.2f s\n", scpu);
		printf("  errors      %llu\n", (unsigned long long)fin.errors);
	}
	for (i = 0; i < o->threads; i++)
		udpgen_free(ugs[i]);
	free(ugs);
	free(tids);
	if (interrupted && a.ready)
		return 130;
	return fin.errors || !a.ready ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct bench_options o;
	struct loadgen_config cfg;
	struct bench_result r;
	struct loadgen **lgs;
	pthread_t *tids;
	struct loadgen_counters fin;
	double t0, t, cpu0, scpu0 = -1;
	unsigned i, first = 0;

	parse_options(argc, argv, &o);
	fit_fd_limit(o.conns, o.threads);
	if (o.pid > 0 && procstat_rss_kib((pid_t)o.pid) < 0) {
		fprintf(stderr, "echobench: invalid value '%ld' for '--pid': "
		    "no such process\n", o.pid);
		exit(EX_USAGE);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (o.udp)
		return run_udp(&o);
	loadgen_pattern_init();

	memset(&cfg, 0, sizeof(cfg));
	cfg.mode = o.mode;
	cfg.target.sin_family = AF_INET;
	cfg.target.sin_port = htons((uint16_t)o.port);
	inet_pton(AF_INET, o.addr, &cfg.target.sin_addr);
	cfg.size = o.size;
	cfg.depth = o.depth;
	cfg.sources = o.sources;
	cfg.connect_window = 256;
	cfg.drain_timeout = 3.0;
	cfg.reconnect = o.reconnect;
	cfg.phase = &phase;
	if (o.tls) {
		/* A benchmark client: it measures the server, and trusts
		 * whatever certificate it shows. */
		cfg.tls = SSL_CTX_new(TLS_client_method());
		if (!cfg.tls || !SSL_CTX_set_min_proto_version(cfg.tls,
		    TLS1_2_VERSION)) {
			fprintf(stderr, "echobench: cannot create a tls "
			    "context\n");
			exit(1);
		}
		SSL_CTX_set_verify(cfg.tls, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(cfg.tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}

	memset(&r, 0, sizeof(r));
	histogram_init(&r.hist);
	r.server_cpu = -1;
	r.rss_before = r.rss_after = -1;
	if (o.pid > 0)
		r.rss_before = procstat_rss_kib((pid_t)o.pid);

	lgs = xcalloc(o.threads, sizeof(*lgs));
	tids = xcalloc(o.threads, sizeof(*tids));
	for (i = 0; i < o.threads; i++) {
		unsigned n = o.conns / o.threads +
		    (i < o.conns % o.threads ? 1 : 0);

		lgs[i] = loadgen_new(&cfg, n, first);
		first += n;
	}
	t0 = now_s();
	for (i = 0; i < o.threads; i++)
		if ((errno = pthread_create(&tids[i], NULL, loadgen_run,
		    lgs[i])) != 0) {
			fprintf(stderr, "echobench: pthread_create: %s\n",
			    strerror(errno));
			exit(1);
		}

	/* Open: wait for every connection's first echo, or its failure. */
	run_phase(&o, lgs, "opening", t0 + o.open_timeout, 1);
	sum_counters(lgs, o.threads, &fin);
	r.opened = (unsigned)(fin.ready > o.conns ? o.conns : fin.ready);
	r.open_seconds = now_s() - t0;
	if (fin.ready + fin.failed < o.conns && !interrupted)
		fprintf(stderr, "echobench: only %llu of %u connections "
		    "echoed within %.0f s\n", (unsigned long long)fin.ready,
		    o.conns, r.open_seconds);

	/* With nothing to measure, go straight to the summary. */
	if (fin.ready == 0)
		interrupted = 1;

	set_phase(LOADGEN_WARMUP);
	run_phase(&o, lgs, "warm-up", now_s() + o.warmup, 0);
	/* Every connection is open and has been busy for the warm-up. */
	if (o.pid > 0)
		r.rss_after = procstat_rss_kib((pid_t)o.pid);

	sum_counters(lgs, o.threads, &r.start);
	cpu0 = self_cpu_s();
	if (o.pid > 0)
		scpu0 = procstat_cpu_seconds((pid_t)o.pid);
	t = now_s();
	set_phase(LOADGEN_MEASURE);
	run_phase(&o, lgs, o.mode == LOADGEN_HOLD ? "holding" : "running",
	    t + o.duration, 0);
	sum_counters(lgs, o.threads, &r.end);
	r.seconds = now_s() - t;
	r.client_cpu = self_cpu_s() - cpu0;
	if (scpu0 >= 0) {
		double s1 = procstat_cpu_seconds((pid_t)o.pid);

		r.server_cpu = s1 >= 0 ? s1 - scpu0 : -1;
	}
	set_phase(LOADGEN_DRAIN);
	progress_end(&o);

	for (i = 0; i < o.threads; i++) {
		pthread_join(tids[i], NULL);
		histogram_merge(&r.hist, loadgen_histogram(lgs[i]));
	}
	/* Errors found while draining count too. */
	sum_counters(lgs, o.threads, &fin);
	r.end.errors = fin.errors;
	r.end.reconnects = fin.reconnects;
	r.end.unanswered = fin.unanswered;
	if (fin.ready + fin.failed < o.conns)
		r.end.errors += o.conns - fin.ready - fin.failed;
	print_summary(&o, &r);
	for (i = 0; i < o.threads; i++)
		loadgen_free(lgs[i]);
	free(lgs);
	free(tids);
	SSL_CTX_free(cfg.tls);
	if (interrupted && r.opened)
		return 130;
	return r.end.errors ? 1 : 0;
}
