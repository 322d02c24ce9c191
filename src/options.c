/*
 * Option parsing; see options.h.  Every numeric value is checked for
 * trailing junk, range and overflow, because a typo in a limit should stop
 * the server at start-up, not surface as odd behaviour under load.
 */
#include "options.h"

#include "conn.h"
#include "log.h"
#include "netaddr.h"
#include "common/cpus.h"
#include "common/parse.h"
#include "proto/proto.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
	OPT_IDLE_TIMEOUT = 256,
	OPT_WRITE_TIMEOUT,
	OPT_GRACE,
	OPT_HIGH_WATER,
	OPT_LOW_WATER,
	OPT_PORT_FILE,
	OPT_REJECT_MESSAGE,
	OPT_PROTOCOL,
	OPT_PROTOCOLS,
	OPT_BANNER,
	OPT_MAX_LINE,
	OPT_MAX_BULK,
	OPT_MAX_MEMORY,
	OPT_UDP_MIN_PORT,
	OPT_UDP_ALLOW_BROADCAST,
	OPT_UDP_RATE,
	OPT_UDP_RATE_BYTES,
	OPT_UDP_RATE_TABLE,
	OPT_PROXY_TIMEOUT,
	OPT_REUSEPORT,
	OPT_LOG_FORMAT,
	OPT_METRICS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_HANDSHAKE_TIMEOUT,
	OPT_PUBSUB_LIMIT,
	OPT_OFFLOAD,
	OPT_OFFLOAD_THREADS,
	OPT_OFFLOAD_QUEUE,
};

static const struct option long_options[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "listen", required_argument, NULL, 'l' },
	{ "threads", required_argument, NULL, 't' },
	{ "backlog", required_argument, NULL, 'b' },
	{ "max-conns", required_argument, NULL, 'c' },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT },
	{ "grace", required_argument, NULL, OPT_GRACE },
	{ "high-water", required_argument, NULL, OPT_HIGH_WATER },
	{ "low-water", required_argument, NULL, OPT_LOW_WATER },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "reject-message", required_argument, NULL, OPT_REJECT_MESSAGE },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "protocols", no_argument, NULL, OPT_PROTOCOLS },
	{ "banner", required_argument, NULL, OPT_BANNER },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "max-bulk", required_argument, NULL, OPT_MAX_BULK },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "udp", required_argument, NULL, 'u' },
	{ "udp-min-port", required_argument, NULL, OPT_UDP_MIN_PORT },
	{ "udp-allow-broadcast", no_argument, NULL, OPT_UDP_ALLOW_BROADCAST },
	{ "udp-rate", required_argument, NULL, OPT_UDP_RATE },
	{ "udp-rate-bytes", required_argument, NULL, OPT_UDP_RATE_BYTES },
	{ "udp-rate-table", required_argument, NULL, OPT_UDP_RATE_TABLE },
	{ "proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT },
	{ "reuseport", no_argument, NULL, OPT_REUSEPORT },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-handshake-timeout", required_argument, NULL,
	    OPT_TLS_HANDSHAKE_TIMEOUT },
	{ "pubsub-limit", required_argument, NULL, OPT_PUBSUB_LIMIT },
	{ "offload", no_argument, NULL, OPT_OFFLOAD },
	{ "offload-threads", required_argument, NULL, OPT_OFFLOAD_THREADS },
	{ "offload-queue", required_argument, NULL, OPT_OFFLOAD_QUEUE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};
static const char short_options[] = ":p:l:t:b:c:u:vqhV";

void options_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->port = 5555;
	o->threads = cpus_usable();
	o->backlog = 1024;
	o->grace = 5.0;
	o->high_water = 1024 * 1024;
	o->low_water = 256 * 1024;
	o->reject_message = "ERROR too many connections\r\n";
	o->protocol = proto_handlers[0];
	o->max_line = 8 * 1024;
	o->offload_queue = 1024;
	o->max_bulk = PROTO_MAX_BULK_LIMIT;
	o->tls_handshake_timeout = 10.0;
	/* redis's client-output-buffer-limit pubsub 32mb 8mb 60. */
	o->pubsub_hard = (size_t)32 << 20;
	o->pubsub_soft = (size_t)8 << 20;
	o->pubsub_seconds = 60;
	o->log_level = LL_INFO;
	udp_config_init(&o->udp_cfg);
	o->proxy_timeout = 5.0;
}

void options_usage(FILE *out)
{
	fputs(
"usage: echoserver [options]\n"
"\n"
"A multi-reactor TCP echo server: every byte a client sends comes back.\n"
"\n"
"  -p, --port N            port for listeners that name none (default 5555;\n"
"                          0 picks one)\n"
"  -l, --listen [proxy+][tls+][PROTO@]ADDR[:PORT]\n"
"                          listen on a numeric IPv4 or IPv6 address\n"
"                          (\"127.0.0.1:5556\", \"[::1]:5557\") with the\n"
"                          handler PROTO; repeatable (default: all\n"
"                          interfaces, on --port, with --protocol);\n"
"                          proxy+ takes a PROXY protocol v1 or v2 header\n"
"                          first on each connection (from HAProxy), tls+\n"
"                          serves it over TLS\n"
"      --proxy-timeout SECS  time a proxy+ connection has to send its\n"
"                          whole header (default 5)\n"
"      --reuseport         set SO_REUSEPORT, so that several processes\n"
"                          can listen on one port\n"
"      --tls-cert FILE     certificate chain (PEM) for tls+ listeners\n"
"      --tls-key FILE      its private key (PEM)\n"
"      --tls-handshake-timeout SECS  close clients whose handshake is not\n"
"                          done this long after they connect (default 10)\n"
"      --protocol NAME     handler for listeners that name none\n"
"                          (default echo)\n"
"      --protocols         list the handlers\n"
"      --banner TEXT       line the line and reverse handlers send on\n"
"                          connect (default: none)\n"
"      --max-line BYTES    longest line they take (default 8K; K, M)\n"
"      --max-bulk BYTES    longest bulk string resp takes (default and\n"
"                          most 512M)\n"
"      --max-memory BYTES  resp's key space: writes past it get -OOM\n"
"                          (default 0: no limit)\n"
"  -u, --udp [ADDR:]PORT   also echo UDP datagrams (RFC 862) on PORT, of\n"
"                          all interfaces or of ADDR (\"127.0.0.1:7\",\n"
"                          \"[::1]:7\"); repeatable; 0 picks a port\n"
"      --udp-min-port N    drop datagrams from source ports below N, the\n"
"                          echo/chargen loop (default 1024; 0: off)\n"
"      --udp-allow-broadcast  echo to broadcast, multicast and 0.0.0.0/8\n"
"                          sources too (default: drop them)\n"
"      --udp-rate N        echo at most N datagrams per second to one\n"
"                          source address (default 1000; 0: no limit)\n"
"      --udp-rate-bytes BYTES  and at most BYTES per second (default 1M;\n"
"                          0: no limit)\n"
"      --udp-rate-table N  source addresses tracked per worker (default\n"
"                          4096; more are evicted, oldest first)\n"
"      --pubsub-limit HARD[:SOFT:SECS]\n"
"                          close a resp subscriber whose pending output\n"
"                          passes HARD, or stays past SOFT for SECS\n"
"                          (default 32M:8M:60, as redis; 0: no limit)\n"
"  -t, --threads N         worker threads (default: the CPUs this process\n"
"                          may run on)\n"
"      --offload           run slow requests (sha256 lines, resp's DEBUG\n"
"                          SLEEP) on a thread pool, not on the workers\n"
"                          (default: off, inline)\n"
"      --offload-threads N with --offload, the pool's threads (default:\n"
"                          the CPUs this process may run on)\n"
"      --offload-queue N   with --offload, jobs queued for the pool before\n"
"                          a connection must wait for room (default 1024)\n"
"  -b, --backlog N         listen backlog (default 1024)\n"
"  -c, --max-conns N       connection limit (default: fd limit less a\n"
"                          reserve)\n"
"      --idle-timeout SECS close connections idle this long (default 0: off)\n"
"      --write-timeout SECS close clients that read none of their pending\n"
"                          output this long (default 0: off)\n"
"      --high-water BYTES  stop reading a client whose pending output\n"
"                          passes this (default 1M; K, M, G suffixes)\n"
"      --low-water BYTES   resume reading at or below this (default 256K)\n"
"      --grace SECS        shutdown flush period (default 5)\n"
"      --reject-message TEXT  line sent to clients over the limit\n"
"                          (default \"ERROR too many connections\")\n"
"      --port-file FILE    write the bound ports to FILE (for scripts):\n"
"                          one line per listener, the --metrics port,\n"
"                          then \"udp PORT\" per -u\n"
"      --metrics [ADDR:]PORT\n"
"                          serve Prometheus metrics at GET /metrics on\n"
"                          PORT (default ADDR: all interfaces)\n"
"  -v, --verbose           more logging; repeatable\n"
"  -q, --quiet             less logging\n"
"      --log-format FORMAT text (default) or json: one JSON object a line\n"
"  -h, --help              this text\n"
"  -V, --version           the version\n"
"\n"
"SIGINT or SIGTERM: stop accepting, flush, exit 0; a second one exits at\n"
"once.  SIGUSR1: log the statistics.  SIGHUP: reload the TLS certificate.\n"
"Under systemd, the sockets it passes replace the default listener;\n"
"--version says whether this build can (see echoserver(1)).\n", out);
}

void options_list_protocols(FILE *out)
{
	for (const struct proto_ops *const *p = proto_handlers; *p; p++)
		fprintf(out, "%-10s %s\n", (*p)->name, (*p)->summary);
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The option as the user spelled it, for error messages. */
static void option_name(int c, char *buf, size_t len)
{
	for (const struct option *lo = long_options; lo->name; lo++)
		if (lo->val == c) {
			snprintf(buf, len, "--%s", lo->name);
			return;
		}
	snprintf(buf, len, "-%c", c);
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A byte count with an optional K, M or G suffix (parse.h), from @min to
 * @max.  For the water marks anything past 1 TiB is refused: it is a
 * slipped suffix rather than a plan.
 */
static int parse_bytes(const char *s, uint64_t min, uint64_t max,
    size_t *out)
{
	uint64_t v;

	if (parse_size(s, min, max, &v))
		return -1;
	*out = (size_t)v;
	return 0;
}

#define WATER_MAX ((uint64_t)1 << 40)

/* --pubsub-limit HARD[:SOFT:SECONDS]; HARD alone has no soft limit. */
static int parse_pubsub_limit(struct options *o, const char *arg)
{
	char hard[32], soft[32];
	const char *c1 = strchr(arg, ':'), *c2 = c1 ? strchr(c1 + 1, ':') :
	    NULL;
	size_t h, sf = 0;
	double secs = 0;

	if (!c1) {
		if (parse_bytes(arg, 0, WATER_MAX, &h))
			return -1;
	} else {
		if (!c2 || (size_t)(c1 - arg) >= sizeof(hard) ||
		    (size_t)(c2 - c1 - 1) >= sizeof(soft))
			return -1;
		snprintf(hard, sizeof(hard), "%.*s", (int)(c1 - arg), arg);
		snprintf(soft, sizeof(soft), "%.*s", (int)(c2 - c1 - 1),
		    c1 + 1);
		if (parse_bytes(hard, 0, WATER_MAX, &h) ||
		    parse_bytes(soft, 0, WATER_MAX, &sf) ||
		    parse_seconds(c2 + 1, 86400 * 365, &secs))
			return -1;
	}
	o->pubsub_hard = h;
	o->pubsub_soft = sf;
	o->pubsub_seconds = secs;
	return 0;
}


/*
 * "[ADDR:]PORT", for -u and --metrics: a bare port is every interface,
 * dual-stack as the default TCP listener is (*@any set); an address needs
 * its port.  netaddr_parse() fills a missing port with its default, so
 * parsing with two defaults tells whether one was given.
 */
static int parse_addr_port(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, int *any)
{
	struct sockaddr_storage probe;
	socklen_t plen;
	size_t digits = strspn(text, "0123456789");

	*any = digits && !text[digits];
	if (*any) {
		long port;

		if (parse_long(text, 0, 65535, &port))
			return -1;
		return netaddr_parse("::", (uint16_t)port, ss, len);
	}
	if (netaddr_parse(text, 0, ss, len) ||
	    netaddr_parse(text, 1, &probe, &plen))
		return -1;
	return memcmp(ss, &probe, plen) ? -1 : 0;
}

/*
 * The -l prefixes, in the order the grammar puts them:
 * [proxy+][tls+]PROTO@ADDR.  Each one sets a flag of struct conn_listen,
 * so a new layer is one line here and one flag in conn.h.
 */
static const struct {
	const char *prefix;
	unsigned flag;		/* enum conn_listen_flags */
} listen_prefixes[] = {
	{ "proxy+", CONN_LISTEN_PROXY },
	{ "tls+", CONN_LISTEN_TLS },
};

#define N_PREFIXES (sizeof(listen_prefixes) / sizeof(listen_prefixes[0]))

char *options_listen_prefixes(unsigned flags, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_PREFIXES; i++)
		if (flags & listen_prefixes[i].flag)
			n += (size_t)snprintf(buf + n, n < size ? size - n : 0,
			    "%s", listen_prefixes[i].prefix);
	return buf;
}

/* Splits "[proxy+][tls+][PROTO@]ADDR[:PORT]" now that --protocol and --port
 * are known. */
static int resolve_listen(const struct options *o, struct options_listen *l,
    char *err, size_t errlen)
{
	const char *spec = l->text, *at, *addr;
	char name[32];

	l->flags = 0;
	for (size_t i = 0; i < N_PREFIXES; i++) {
		size_t n = strlen(listen_prefixes[i].prefix);

		if (strncmp(spec, listen_prefixes[i].prefix, n) == 0) {
			l->flags |= listen_prefixes[i].flag;
			spec += n;
		}
	}
	if ((l->flags & CONN_LISTEN_TLS) && (!o->tls_cert || !o->tls_key)) {
		fail(err, errlen, "listener '%s' needs '--tls-cert' and "
		    "'--tls-key'", l->text);
		return -1;
	}
	at = strchr(spec, '@');
	addr = spec;
	l->proto = o->protocol;
	if (at) {
		size_t n = (size_t)(at - spec);

		snprintf(name, sizeof(name), "%.*s", (int)n, spec);
		l->proto = n < sizeof(name) ? proto_find(name) : NULL;
		if (!l->proto) {
			fail(err, errlen, "unknown protocol '%.*s' in '%s' for "
			    "option '--listen' (see 'echoserver --protocols')",
			    (int)n, spec, l->text);
			return -1;
		}
		addr = at + 1;
	}
	if (netaddr_parse(addr, (uint16_t)o->port, &l->addr, &l->addrlen)) {
		fail(err, errlen, "invalid value '%s' for option '--listen'",
		    l->text);
		return -1;
	}
	return 0;
}

enum options_result options_parse(struct options *o, int argc, char **argv,
    char *err, size_t errlen)
{
	char name[32];
	long v;
	int c;

	optind = 0;		/* reset getopt, so tests can parse repeatedly */
	opterr = 0;		/* we print our own, uniform messages */
	while ((c = getopt_long(argc, argv, short_options, long_options,
	    NULL)) != -1) {
		const char *arg = optarg;

		option_name(c, name, sizeof(name));
		switch (c) {
		case 'p':
			if (parse_long(arg, 0, 65535, &v))
				goto bad_value;
			o->port = (int)v;
			break;
		case 'l':
			if (o->n_listen == OPTIONS_MAX_LISTEN) {
				fail(err, errlen, "too many '--listen' "
				    "addresses (at most %d)",
				    OPTIONS_MAX_LISTEN);
				return OPTIONS_ERROR;
			}
			o->listen[o->n_listen++].text = arg;
			break;
		case 't':
			if (parse_long(arg, 1, 1024, &v))
				goto bad_value;
			o->threads = (int)v;
			break;
		case 'b':
			if (parse_long(arg, 1, INT_MAX, &v))
				goto bad_value;
			o->backlog = (int)v;
			break;
		case 'c':
			if (parse_long(arg, 1, 100000000, &v))
				goto bad_value;
			o->max_conns = v;
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_seconds(arg, 86400 * 365, &o->idle_timeout))
				goto bad_value;
			break;
		case OPT_WRITE_TIMEOUT:
			if (parse_seconds(arg, 86400 * 365, &o->write_timeout))
				goto bad_value;
			break;
		case OPT_GRACE:
			if (parse_seconds(arg, 86400, &o->grace))
				goto bad_value;
			break;
		case OPT_HIGH_WATER:
			if (parse_bytes(arg, 1, WATER_MAX, &o->high_water))
				goto bad_value;
			break;
		case OPT_LOW_WATER:
			if (parse_bytes(arg, 1, WATER_MAX, &o->low_water))
				goto bad_value;
			break;
		case OPT_PORT_FILE:
			if (!*arg)
				goto bad_value;
			o->port_file = arg;
			break;
		case OPT_REJECT_MESSAGE:
			o->reject_message = arg;
			break;
		case OPT_PROTOCOL:
			o->protocol = proto_find(arg);
			if (!o->protocol) {
				fail(err, errlen, "unknown protocol '%s' for "
				    "option '--protocol' (see 'echoserver "
				    "--protocols')", arg);
				return OPTIONS_ERROR;
			}
			break;
		case OPT_PROTOCOLS:
			return OPTIONS_PROTOCOLS;
		case OPT_BANNER:
			o->banner = *arg ? arg : NULL;
			break;
		case OPT_MAX_LINE:
			if (parse_bytes(arg, 1, PROTO_MAX_LINE_LIMIT,
			    &o->max_line))
				goto bad_value;
			break;
		case OPT_MAX_BULK:
			if (parse_bytes(arg, 1, PROTO_MAX_BULK_LIMIT,
			    &o->max_bulk))
				goto bad_value;
			break;
		case OPT_MAX_MEMORY:
			if (parse_bytes(arg, 0, WATER_MAX, &o->max_memory))
				goto bad_value;
			break;
		case 'u':
			if (o->n_udp == OPTIONS_MAX_LISTEN) {
				fail(err, errlen, "too many '--udp' "
				    "addresses (at most %d)",
				    OPTIONS_MAX_LISTEN);
				return OPTIONS_ERROR;
			}
			o->udp[o->n_udp].text = arg;
			if (parse_addr_port(arg, &o->udp[o->n_udp].addr,
			    &o->udp[o->n_udp].addrlen,
			    &o->udp[o->n_udp].dual_stack))
				goto bad_value;
			o->n_udp++;
			break;
		case OPT_UDP_MIN_PORT:
			if (parse_long(arg, 0, 65535, &v))
				goto bad_value;
			o->udp_cfg.min_src_port = (unsigned)v;
			break;
		case OPT_UDP_ALLOW_BROADCAST:
			o->udp_cfg.allow_broadcast = true;
			break;
		case OPT_UDP_RATE:
			if (parse_size(arg, 0, 1000000000, &o->udp_cfg.rate_pkts))
				goto bad_value;
			break;
		case OPT_UDP_RATE_BYTES:
			if (parse_size(arg, 0, WATER_MAX,
			    &o->udp_cfg.rate_bytes))
				goto bad_value;
			break;
		case OPT_UDP_RATE_TABLE:
			if (parse_long(arg, 4, 1 << 24, &v))
				goto bad_value;
			o->udp_cfg.rate_table = (unsigned)v;
			break;
		case OPT_PROXY_TIMEOUT:
			/* No "0: off": a proxy+ port without a header
			 * deadline would hold idle sockets forever. */
			if (parse_seconds(arg, 3600, &o->proxy_timeout) ||
			    o->proxy_timeout < 0.001)
				goto bad_value;
			break;
		case OPT_REUSEPORT:
			o->reuseport = 1;
			break;
		case OPT_METRICS:
			if (parse_addr_port(arg, &o->metrics_addr,
			    &o->metrics_addrlen, &o->metrics_any))
				goto bad_value;
			o->metrics = arg;
			break;
		case OPT_TLS_CERT:
			if (!*arg)
				goto bad_value;
			o->tls_cert = arg;
			break;
		case OPT_TLS_KEY:
			if (!*arg)
				goto bad_value;
			o->tls_key = arg;
			break;
		case OPT_TLS_HANDSHAKE_TIMEOUT:
			if (parse_seconds(arg, 86400, &o->tls_handshake_timeout)
			    || o->tls_handshake_timeout <= 0)
				goto bad_value;
			break;
		case OPT_PUBSUB_LIMIT:
			if (parse_pubsub_limit(o, arg))
				goto bad_value;
			break;
		case OPT_OFFLOAD:
			o->offload = 1;
			break;
		case OPT_OFFLOAD_THREADS:
			if (parse_long(arg, 1, 1024, &v))
				goto bad_value;
			o->offload_threads = (int)v;
			break;
		case OPT_OFFLOAD_QUEUE:
			if (parse_long(arg, 1, 1 << 20, &v))
				goto bad_value;
			o->offload_queue = (int)v;
			break;
		case 'v':
			if (o->log_level < LL_DEBUG)
				o->log_level++;
			break;
		case 'q':
			if (o->log_level > LL_ERROR)
				o->log_level--;
			break;
		case OPT_LOG_FORMAT:
			if (log_format_parse(arg) < 0)
				goto bad_value;
			o->log_format = log_format_parse(arg);
			break;
		case 'h':
			return OPTIONS_HELP;
		case 'V':
			return OPTIONS_VERSION;
		case ':':
			option_name(optopt, name, sizeof(name));
			fail(err, errlen, "option '%s' needs a value",
			    optopt ? name : argv[optind - 1]);
			return OPTIONS_ERROR;
		default:
			if (optopt)
				fail(err, errlen, "unknown option '-%c'",
				    optopt);
			else
				fail(err, errlen, "unknown option '%s'",
				    argv[optind - 1]);
			return OPTIONS_ERROR;
		}
		continue;
bad_value:
		fail(err, errlen, "invalid value '%s' for option '%s'", arg,
		    name);
		return OPTIONS_ERROR;
	}
	if (optind < argc) {
		fail(err, errlen, "unexpected argument '%s'", argv[optind]);
		return OPTIONS_ERROR;
	}
	for (int i = 0; i < o->n_listen; i++)
		if (resolve_listen(o, &o->listen[i], err, errlen))
			return OPTIONS_ERROR;
	if (o->low_water >= o->high_water) {
		fail(err, errlen, "invalid value '%zu' for option "
		    "'--low-water': must be below --high-water (%zu)",
		    o->low_water, o->high_water);
		return OPTIONS_ERROR;
	}
	return OPTIONS_OK;
}
