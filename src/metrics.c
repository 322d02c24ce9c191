/*
 * The Prometheus endpoint on evhttp; see metrics.h for the design.  The
 * exposition text is generated from the stats field lists (stats.h) and
 * the latency buckets (latency.h), so it follows them without edits.
 */
#include "metrics.h"

#include "latency.h"
#include "log.h"
#include "netaddr.h"
#include "store.h"
#include "worker.h"
#include "common/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * evhttp's limits (docs/design.md, fact M1).  A scrape is one short GET:
 * Prometheus sends a few hundred bytes of headers and no body, and reads
 * the reply at once, so these leave it ample room while a client that
 * sends megabytes of headers, or trickles, is cut off.  The timeout is
 * per read or write (it restarts with each), as evhttp implements it.
 */
#define METRICS_MAX_HEADERS (8 * 1024)
#define METRICS_MAX_BODY 1024
#define METRICS_TIMEOUT_S 10
#define METRICS_BACKLOG 64

/* How long the listener rests after running out of descriptors. */
#define METRICS_BACKOFF_MS 50

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Every method evhttp 2.1 knows: let it hand them all to us, so that the
 * ones we refuse get 405 with an Allow header, not evhttp's 501. */
#define METRICS_ALL_METHODS (EVHTTP_REQ_GET | EVHTTP_REQ_POST | \
	EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | \
	EVHTTP_REQ_PATCH)

struct metrics {
	struct evhttp *http;
	struct evconnlistener *evl;	/* owned by @http once @bound */
	bool bound;
	struct event *backoff;
	struct metrics_source src;
	struct sockaddr_storage addr;	/* as bound */
	double start_time;	/* Unix time, for the start-time gauge */
};

/* --- the exposition text ---------------------------------------------- */

/* The worker counters, indexed from the field list. */
enum {
#define METRICS_INDEX(field, label) METRICS_W_##field,
	WORKER_STATS_FIELDS(METRICS_INDEX)
#undef METRICS_INDEX
	METRICS_W_N
};

static const char *const worker_fields[] = {
#define METRICS_NAME(field, label) #field,
	WORKER_STATS_FIELDS(METRICS_NAME)
#undef METRICS_NAME
};

static const char *const listener_fields[] = {
#define METRICS_NAME(field, label) #field,
	LISTENER_STATS_FIELDS(METRICS_NAME)
#undef METRICS_NAME
};

/*
 * HELP texts of the counters stats.h lists today (docs/operations.md has
 * the same words).  A counter added there later still appears, with a
 * generic text, until a line is added here.
 */
static const struct {
	const char *field, *help;
} counter_help[] = {
	{ "conns_opened", "Connections served since start." },
	{ "conns_closed", "Connections closed since start." },
	{ "bytes_in", "Bytes read from clients." },
	{ "bytes_out", "Bytes replied to clients (sent, or queued and sent "
	    "later)." },
	{ "idle_timeouts", "Connections closed by --idle-timeout." },
	{ "write_timeouts", "Connections closed for not reading their "
	    "output (write stall or flush timeout)." },
	{ "errors", "Connections closed by an I/O error or a failed "
	    "set-up." },
	{ "dropped_bytes", "Pending output lost at close." },
	{ "input_overflows", "Connections closed for unconsumed input over "
	    "their handler's cap." },
	{ "requests", "Commands served, as the handlers count them." },
	{ "accepted", "Connections accepted by the listeners." },
	{ "rejected", "Connections refused for --max-conns." },
	{ "accept_errors", "Failed accept calls (EMFILE and others)." },
	{ "shed", "Waiting clients accepted and closed at descriptor "
	    "exhaustion." },
	{ "dispatch_errors", "Connections closed because no worker could "
	    "be handed them." },
};

static const char *help_of(const char *field)
{
	for (size_t i = 0; i < sizeof(counter_help) / sizeof(counter_help[0]);
	    i++)
		if (!strcmp(counter_help[i].field, field))
			return counter_help[i].help;
	return "Counter of the stats module (src/stats.h).";
}

/* One worker's figures, each loaded once (relaxed), so that the total and
 * the per-worker series of a scrape agree. */
struct worker_snapshot {
	uint64_t v[METRICS_W_N];
	uint64_t bucket[LATENCY_BUCKETS + 1];
	uint64_t sum_ns;
};

static void snapshot_worker(struct worker *w, struct worker_snapshot *s)
{
	struct worker_stats *st = &w->env.stats;

	/* conns_closed is loaded before conns_opened: both only grow and a
	 * connection closes after it opened, so open = opened - closed
	 * can never come out negative. */
	s->v[METRICS_W_conns_closed] = stat_get(&st->conns_closed);
#define METRICS_LOAD(field, label) \
	if (METRICS_W_##field != METRICS_W_conns_closed) \
		s->v[METRICS_W_##field] = stat_get(&st->field);
	WORKER_STATS_FIELDS(METRICS_LOAD)
#undef METRICS_LOAD
	for (unsigned i = 0; i <= LATENCY_BUCKETS; i++)
		s->bucket[i] = stat_get(&w->env.latency.bucket[i]);
	s->sum_ns = stat_get(&w->env.latency.sum_ns);
}

/* The text being written; @failed once an append ran out of memory, so
 * that a truncated scrape is never answered 200. */
struct render {
	struct evbuffer *out;
	bool failed;
};

static void vput(struct render *r, const char *fmt, va_list ap)
{
	if (!r->failed && evbuffer_add_vprintf(r->out, fmt, ap) < 0)
		r->failed = true;
}

static void put(struct render *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct render *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vput(r, fmt, ap);
	va_end(ap);
}

static void put_family(struct render *out, const char *name,
    const char *type, const char *help)
{
	put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram's series, with @labels ("" or `worker="0"`) in each. */
static void put_histogram(struct render *out, const char *name,
    const char *labels, const uint64_t *bucket, uint64_t sum_ns)
{
	uint64_t cum = 0;
	const char *sep = *labels ? "," : "";

	for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
		uint64_t us = latency_bound_us(i);

		cum += bucket[i];
		put(out, "%s_bucket{%s%sle=\"%" PRIu64 ".%06" PRIu64 "\"} %"
		    PRIu64 "\n", name, labels, sep, us / 1000000, us % 1000000,
		    cum);
	}
	cum += bucket[LATENCY_BUCKETS];
	put(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n",
	    name, labels, sep, cum);
	put(out, "%s_sum%s%s%s %" PRIu64 ".%09" PRIu64 "\n",
	    name, *labels ? "{" : "", labels, *labels ? "}" : "",
	    sum_ns / 1000000000, sum_ns % 1000000000);
	put(out, "%s_count%s%s%s %" PRIu64 "\n", name,
	    *labels ? "{" : "", labels, *labels ? "}" : "", cum);
}

static void put_workers(struct render *out, const struct metrics_source *src,
    const struct worker_snapshot *snap)
{
	int n = src->n_workers;
	struct worker_snapshot total;
	char name[128], labels[32];

	memset(&total, 0, sizeof(total));
	for (int w = 0; w < n; w++) {
		for (int f = 0; f < METRICS_W_N; f++)
			total.v[f] += snap[w].v[f];
		for (unsigned i = 0; i <= LATENCY_BUCKETS; i++)
			total.bucket[i] += snap[w].bucket[i];
		total.sum_ns += snap[w].sum_ns;
	}

	for (int f = 0; f < METRICS_W_N; f++) {
		snprintf(name, sizeof(name), "echoserver_%s_total",
		    worker_fields[f]);
		put_family(out, name, "counter", help_of(worker_fields[f]));
		put(out, "%s %" PRIu64 "\n", name,
		    total.v[f]);
		snprintf(name, sizeof(name), "echoserver_worker_%s_total",
		    worker_fields[f]);
		put_family(out, name, "counter", help_of(worker_fields[f]));
		for (int w = 0; w < n; w++)
			put(out, "%s{worker=\"%d\"} %" PRIu64
			    "\n", name, w, snap[w].v[f]);
	}

	put_family(out, "echoserver_connections_open", "gauge",
	    "Connections the workers serve now.");
	put(out, "echoserver_connections_open %" PRIu64 "\n",
	    total.v[METRICS_W_conns_opened] - total.v[METRICS_W_conns_closed]);
	put_family(out, "echoserver_worker_connections_open", "gauge",
	    "Connections each worker serves now.");
	for (int w = 0; w < n; w++)
		put(out, "echoserver_worker_connections_open"
		    "{worker=\"%d\"} %" PRIu64 "\n", w,
		    snap[w].v[METRICS_W_conns_opened] -
		    snap[w].v[METRICS_W_conns_closed]);

	put_family(out, "echoserver_reply_latency_seconds", "histogram",
	    "Time from reading a request to writing its first reply.");
	put_histogram(out, "echoserver_reply_latency_seconds", "",
	    total.bucket, total.sum_ns);
	put_family(out, "echoserver_worker_reply_latency_seconds", "histogram",
	    "Time from reading a request to writing its first reply, per "
	    "worker.");
	for (int w = 0; w < n; w++) {
		snprintf(labels, sizeof(labels), "worker=\"%d\"", w);
		put_histogram(out, "echoserver_worker_reply_latency_seconds",
		    labels, snap[w].bucket, snap[w].sum_ns);
	}
}

static void put_listener(struct render *out, struct listener_stats *l)
{
	const uint64_t v[] = {
#define METRICS_LOAD(field, label) stat_get(&l->field),
		LISTENER_STATS_FIELDS(METRICS_LOAD)
#undef METRICS_LOAD
	};
	char name[128];

	for (size_t f = 0; f < sizeof(v) / sizeof(v[0]); f++) {
		snprintf(name, sizeof(name), "echoserver_%s_total",
		    listener_fields[f]);
		put_family(out, name, "counter", help_of(listener_fields[f]));
		put(out, "%s %" PRIu64 "\n", name, v[f]);
	}
}

static void put_gauge(struct render *out, const char *name,
    const char *help, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void put_gauge(struct render *out, const char *name,
    const char *help, const char *fmt, ...)
{
	va_list ap;

	put_family(out, name, "gauge", help);
	put(out, "%s ", name);
	va_start(ap, fmt);
	vput(out, fmt, ap);
	va_end(ap);
	put(out, "\n");
}

/* Appends the exposition text for @src to @buf (both borrowed).  Returns
 * 0, or -1 if memory ran out. */
static int metrics_render(const struct metrics_source *src,
    struct evbuffer *buf, double start_time)
{
	struct worker_snapshot *snap = calloc((size_t)src->n_workers,
	    sizeof(*snap));
	struct render r = { .out = buf }, *out = &r;

	if (!snap)
		return -1;
	for (int w = 0; w < src->n_workers; w++)
		snapshot_worker(&src->workers[w], &snap[w]);
	put_workers(out, src, snap);
	free(snap);
	put_listener(out, src->listener);
	put_gauge(out, "echoserver_connections_max", "The connection limit "
	    "(--max-conns).", "%ld", src->max_conns);
	put_gauge(out, "echoserver_workers", "Worker threads.", "%d",
	    src->n_workers);
	put_gauge(out, "echoserver_start_time_seconds", "When the server "
	    "started, in seconds since the Unix epoch.", "%.3f", start_time);
	if (src->store) {
		put_gauge(out, "echoserver_store_keys", "Keys in the resp "
		    "store, expired ones not yet removed included.",
		    "%" PRIu64, store_count(src->store));
		put_gauge(out, "echoserver_store_memory_bytes", "Bytes the "
		    "resp store accounts: keys, values and per-key overhead.",
		    "%zu", store_memory(src->store));
		put_gauge(out, "echoserver_store_max_memory_bytes", "The resp "
		    "store's limit (--max-memory); 0: none.", "%zu",
		    src->max_memory);
	}
	return r.failed ? -1 : 0;
}

/* --- HTTP ------------------------------------------------------------- */

static void metrics_scrape_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *body;

	body = evbuffer_new();
	if (body && cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		/* Not evhttp_send_error(): it drops our headers, and a 405
		 * must say what is allowed. */
		evhttp_add_header(headers, "Allow", "GET, HEAD");
		evhttp_add_header(headers, "Content-Type", "text/plain");
		evbuffer_add_printf(body, "405 method not allowed: use GET\n");
		evhttp_send_reply(req, 405, "Method Not Allowed", body);
	} else if (!body || metrics_render(&m->src, body, m->start_time)) {
		log_warn("metrics: out of memory for a scrape");
		evhttp_send_error(req, 500, NULL);
	} else {
		char len[24];

		evhttp_add_header(headers, "Content-Type",
		    METRICS_CONTENT_TYPE);
		/* evhttp 2.1 would send a body after HEAD too: the same
		 * headers as GET, and nothing after them. */
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(headers, "Content-Length", len);
		evhttp_send_reply(req, 200, "OK",
		    cmd == EVHTTP_REQ_HEAD ? NULL : body);
	}
	if (body)
		evbuffer_free(body);
}

/* Any other path. */
static void metrics_other_cb(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 404, NULL);
}

static void metrics_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;

	evconnlistener_enable(m->evl);
}

/*
 * The endpoint whose listener reports errors.  Binding the listener to
 * evhttp makes evhttp's server the listener's callback argument, so the
 * error callback cannot be handed ours; the program has one endpoint, and
 * only the main thread touches this.
 */
static struct metrics *metrics_listening;

/* evconnlistener stays enabled after EMFILE and would spin (fact 5):
 * rest instead, and try again.  The waiting scraper waits; the echo
 * listeners shed their own clients (listener.c). */
static void metrics_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct timeval tv = { 0, METRICS_BACKOFF_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	log_verbose("metrics: accept: %s; pausing for %d ms", strerror(err),
	    METRICS_BACKOFF_MS);
	evconnlistener_disable(evl);
	if (metrics_listening && metrics_listening->evl == evl)
		evtimer_add(metrics_listening->backoff, &tv);
}

/* A listening socket on @sa, or -1 with errno set. */
static int metrics_socket(const struct sockaddr *sa, socklen_t len,
    int dual_stack, struct sockaddr_storage *bound)
{
	socklen_t blen = sizeof(*bound);
	int one = 1, v6only = !dual_stack, err;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &v6only, sizeof(v6only))) ||
	    bind(fd, sa, len) ||
	    getsockname(fd, (struct sockaddr *)bound, &blen)) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

struct metrics *metrics_new(struct event_base *base,
    const struct sockaddr *sa, socklen_t len, int dual_stack,
    const struct metrics_source *src)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	char text[NETADDR_STRLEN];
	struct timeval now;
	int fd;

	m->src = *src;
	gettimeofday(&now, NULL);
	m->start_time = (double)now.tv_sec + (double)now.tv_usec / 1e6;
	fd = metrics_socket(sa, len, dual_stack, &m->addr);
	if (fd < 0 && dual_stack && errno == EAFNOSUPPORT) {
		/* No IPv6 in this kernel: every IPv4 interface instead. */
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		struct sockaddr_in any = {
			.sin_family = AF_INET,
			.sin_port = sin6->sin6_port,
			.sin_addr.s_addr = htonl(INADDR_ANY),
		};

		fd = metrics_socket((struct sockaddr *)&any, sizeof(any), 0,
		    &m->addr);
	}
	if (fd < 0) {
		netaddr_format(sa, text, sizeof(text));
		log_error("cannot serve metrics on '%s': %s", text,
		    strerror(errno));
		goto fail;
	}
	/* evconnlistener_new() calls listen() with the backlog. */
	m->evl = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE,
	    METRICS_BACKLOG, fd);
	if (!m->evl) {
		close(fd);
		goto fail_oom;
	}
	evconnlistener_set_error_cb(m->evl, metrics_accept_error_cb);
	m->backoff = evtimer_new(base, metrics_backoff_cb, m);
	m->http = evhttp_new(base);
	if (!m->backoff || !m->http)
		goto fail_oom;
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_MAX_BODY);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
	evhttp_set_allowed_methods(m->http, METRICS_ALL_METHODS);
	if (evhttp_set_cb(m->http, "/metrics", metrics_scrape_cb, m))
		goto fail_oom;
	evhttp_set_gencb(m->http, metrics_other_cb, m);
	/* The error callback set above stays: binding only replaces the
	 * accept callback and its argument.  From here @http owns the
	 * listener. */
	if (!evhttp_bind_listener(m->http, m->evl))
		goto fail_oom;
	m->bound = true;
	metrics_listening = m;
	return m;

fail_oom:
	log_error("cannot set up the metrics endpoint: out of memory");
fail:
	metrics_free(m);
	return NULL;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	if (metrics_listening == m)
		metrics_listening = NULL;
	if (m->http)
		evhttp_free(m->http);	/* and the listener, if bound */
	if (m->evl && !m->bound)
		evconnlistener_free(m->evl);
	if (m->backoff)
		event_free(m->backoff);
	free(m);
}

int metrics_port(const struct metrics *m)
{
	const struct sockaddr *sa = (const struct sockaddr *)&m->addr;

	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void metrics_address(const struct metrics *m, char *buf, size_t size)
{
	netaddr_format((const struct sockaddr *)&m->addr, buf, size);
}
