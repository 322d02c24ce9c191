/*
 * Server lifecycle: listeners, the connection limit, round-robin dispatch,
 * signals and graceful shutdown.  See server.h for the design.
 */
#include "server.h"

#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "pubsub.h"
#include "store.h"
#include "udp.h"
#include "systemd.h"
#include "tls.h"
#include "common/fdlimit.h"
#include "common/xalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Descriptors kept back from the connection limit: stdio, the epoll fd and
 * notify pipe of each worker, listeners with their reserves, the port file
 * and a margin.
 */
#define SERVER_FD_RESERVE(threads) (32 + 3 * (threads))

/* Raises the soft fd limit to the hard one and derives the default
 * connection limit from it. */
static long default_max_conns(int threads)
{
	long limit = fdlimit_raise();

	if (limit < 0)
		return 1024;
	if (limit == LONG_MAX)		/* unlimited: fs.nr_open's default */
		limit = 1 << 20;
	limit -= SERVER_FD_RESERVE(threads);
	return limit > 1 ? limit : 1;
}

/*
 * Expired keys nobody reads again are removed by a sweep on the main
 * thread: at most SERVER_SWEEP_BUDGET keys every SERVER_SWEEP_MS, so one
 * tick stays short however many keys expire at once (store.h, "Expiry").
 */
#define SERVER_SWEEP_MS 100
#define SERVER_SWEEP_BUDGET 1000

static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* proto_config.stats: the figures resp's INFO reports.  Runs on a
 * worker; the counters are single-writer relaxed atomics (stats.h), and
 * the rest is read-only once the workers run. */
static void server_proto_stats(const struct proto_config *cfg,
    struct proto_stats *out)
{
	const struct server *s = (const struct server *)((const char *)cfg -
	    offsetof(struct server, proto_cfg));

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < s->n_workers; i++) {
		struct worker_stats *w = &s->workers[i].env.stats;

		out->conns_total += stat_get(&w->conns_opened);
		out->conns_open += stat_get(&w->conns_opened) -
		    stat_get(&w->conns_closed);
		out->requests += stat_get(&w->requests);
		out->bytes_in += stat_get(&w->bytes_in);
		out->bytes_out += stat_get(&w->bytes_out);
	}
	out->uptime = monotonic_seconds() - s->started;
	out->workers = s->n_workers;
	out->port = s->first_port;
}

/* pubsub's way to a worker: a message call (proto.h, msg_call()). */
static void server_pubsub_run(struct conn_env *env, void *arg)
{
	pubsub_msg_run(arg);
}

static int server_pubsub_post(void *ctx, int worker, struct pubsub_msg *m)
{
	struct server *s = ctx;

	return msg_call(&s->hub, worker, server_pubsub_run, m);
}

static void server_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	store_sweep(s->store, SERVER_SWEEP_BUDGET);
}

/* Over the limit: say so in one line and close.  Best effort; the socket
 * is new, so its send buffer is empty and the line fits. */
static void server_reject(struct server *s, int fd)
{
	const char *msg = s->opts->reject_message;

	stat_add(&s->lstats.rejected, 1);
	if (*msg && send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) <
	    0)
		log_debug("reject: %s", strerror(errno));
	close(fd);
}

static void server_accept(int fd, void *arg)
{
	struct server_port *port = arg;
	struct server *s = port->server;
	struct worker *w;
	int rc;

	if (atomic_load(&s->conns_now) >= s->max_conns) {
		server_reject(s, fd);
		return;
	}
	atomic_fetch_add(&s->conns_now, 1);
	w = &s->workers[s->next_worker];
	s->next_worker = (s->next_worker + 1) % s->n_workers;
	rc = worker_dispatch(w, fd, &port->cl);
	if (rc) {
		stat_add(&s->lstats.dispatch_errors, 1);
		log_warn("cannot hand a connection to worker %d: %s", w->id,
		    strerror(-rc));
		atomic_fetch_sub(&s->conns_now, 1);
		close(fd);
	}
}

static void server_log_stats(struct server *s, const char *when)
{
	struct worker_stats *ws[s->n_workers];

	for (int i = 0; i < s->n_workers; i++)
		ws[i] = &s->workers[i].env.stats;
	stats_log(when, ws, s->n_workers, &s->lstats);
}

static void server_stop(struct server *s, int sig)
{
	if (s->stopping)
		return;
	s->stopping = true;
	systemd_notify("STOPPING=1\nSTATUS=stopping: flushing clients");
	log_info("received SIG%s: stopping; flushing clients for up to %g s",
	    sigabbrev_np(sig), s->opts->grace);
	/* Deleting the signal events restores the default action, so a
	 * second signal ends the process at once. */
	event_del(s->sig_int);
	event_del(s->sig_term);
	event_del(s->sweep_timer);
	metrics_free(s->metrics);
	s->metrics = NULL;
	for (int i = 0; i < s->n_ports; i++) {
		listener_free(s->ports[i].listener);
		s->ports[i].listener = NULL;
	}
	s->n_ports = 0;
	for (int i = 0; i < s->n_workers; i++)
		if (worker_stop(&s->workers[i]))
			log_error("cannot stop worker %d", i);
	event_base_loopexit(s->base, NULL);
}

/* SIGHUP: new TLS connections get the certificate now in the files;
 * open ones keep theirs.  A bad new one changes nothing. */
static void server_reload_tls(struct server *s)
{
	char err[512], what[384];

	if (!s->tls) {
		log_info("received SIGHUP: no tls+ listener, nothing to "
		    "reload");
		return;
	}
	if (tls_ctx_reload(s->tls, err, sizeof(err))) {
		log_error("received SIGHUP: keeping the old tls certificate: "
		    "%s", err);
		return;
	}
	tls_ctx_describe(s->tls, what, sizeof(what));
	log_info("received SIGHUP: reloaded the tls certificate: %s", what);
}

static void server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;

	if (sig == SIGUSR1)
		server_log_stats(s, "now");
	else if (sig == SIGHUP)
		server_reload_tls(s);
	else
		server_stop(s, (int)sig);
}

static int server_listen(struct server *s, const struct sockaddr *sa,
    socklen_t len, int dual, const struct proto_ops *proto, unsigned flags)
{
	struct server_port *port = &s->ports[s->n_ports];
	char text[NETADDR_STRLEN];
	double pt = s->opts->proxy_timeout;

	port->server = s;
	port->cl.ops = proto;
	port->cl.flags = flags;
	port->cl.proxy_timeout.tv_sec = (time_t)pt;
	port->cl.proxy_timeout.tv_usec = (suseconds_t)((pt - (double)(time_t)pt)
	    * 1e6);
	port->listener = listener_new(s->base, sa, len,
	    (dual ? LISTENER_DUAL_STACK : 0) |
	    (s->opts->reuseport ? LISTENER_REUSEPORT : 0),
	    s->opts->backlog, server_accept, port, &s->lstats);
	if (!port->listener) {
		int err = errno;

		if (dual && err == EAFNOSUPPORT)
			return -EAFNOSUPPORT;
		netaddr_format(sa, text, sizeof(text));
		log_error("cannot listen on '%s': %s", text, strerror(err));
		return -1;
	}
	s->n_ports++;
	return 0;
}

/* All interfaces on --port with --protocol: one dual-stack socket, so
 * that port 0 gives one port; plain IPv4 where the kernel has no IPv6. */
static int server_listen_any(struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc;

	netaddr_parse("::", (uint16_t)s->opts->port, &ss, &len);
	rc = server_listen(s, (struct sockaddr *)&ss, len, 1,
	    s->opts->protocol, 0);
	if (rc != -EAFNOSUPPORT)
		return rc;
	netaddr_parse("0.0.0.0", (uint16_t)s->opts->port, &ss, &len);
	return server_listen(s, (struct sockaddr *)&ss, len, 0,
	    s->opts->protocol, 0);
}

/* The sockets systemd passed (socket activation), each with --protocol;
 * returns how many, or -1 after logging why. */
static int server_listen_inherited(struct server *s)
{
	int n = systemd_listen_fds();

	if (n > 0 && n + s->opts->n_listen > OPTIONS_MAX_LISTEN) {
		log_error("too many listeners: %d from systemd and %d from "
		    "'--listen' (at most %d)", n, s->opts->n_listen,
		    OPTIONS_MAX_LISTEN);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct server_port *port = &s->ports[s->n_ports];
		int fd = SYSTEMD_LISTEN_FDS_START + i;

		port->server = s;
		port->cl.ops = s->opts->protocol;
		port->listener = listener_adopt(s->base, fd, server_accept,
		    port, &s->lstats);
		if (!port->listener) {
			log_error("cannot listen on descriptor %d from "
			    "systemd: %s", fd, strerror(errno));
			return -1;
		}
		s->n_ports++;
	}
	return n;
}

/* Inherited sockets replace the default listener; -l ones still open. */
static int server_listen_all(struct server *s)
{
	const struct options *o = s->opts;
	int inherited = server_listen_inherited(s);

	if (inherited < 0)
		return -1;
	if (!o->n_listen && !inherited)
		return server_listen_any(s);
	for (int i = 0; i < o->n_listen; i++) {
		const struct options_listen *l = &o->listen[i];

		if (server_listen(s, (const struct sockaddr *)&l->addr,
		    l->addrlen, 0, l->proto, l->flags))
			return -1;
		if (l->flags & CONN_LISTEN_TLS)
			s->ports[s->n_ports - 1].cl.tls = s->tls;
	}
	return 0;
}

/* The TLS context, if a listener needs one: a bad or expired
 * certificate stops the start-up with one line. */
static int server_tls_init(struct server *s)
{
	const struct options *o = s->opts;
	char err[512], what[384];
	int need = 0;

	for (int i = 0; i < o->n_listen; i++)
		need |= o->listen[i].flags & CONN_LISTEN_TLS;
	if (!need)
		return 0;
	s->tls = tls_ctx_new(o->tls_cert, o->tls_key, err, sizeof(err));
	if (!s->tls) {
		log_error("%s", err);
		return -1;
	}
	tls_ctx_describe(s->tls, what, sizeof(what));
	log_verbose("tls certificate: %s", what);
	return 0;
}

/* Binds one socket per worker to the -u address @u and hands them out. */
static int server_listen_udp(struct server *s, const struct options_udp *u)
{
	int fds[s->n_workers];
	int rc = udp_bind_group((const struct sockaddr *)&u->addr,
	    u->addrlen, u->dual_stack, s->n_workers, fds,
	    &s->udp_bound[s->n_udp]);

	if (rc) {
		log_error("cannot listen on UDP '%s': %s", u->text,
		    strerror(-rc));
		return -1;
	}
	s->n_udp++;
	for (int i = 0; i < s->n_workers; i++) {
		rc = worker_add_udp(&s->workers[i], fds[i]);
		if (rc) {
			log_error("cannot give worker %d its UDP socket of "
			    "'%s': %s", i, u->text, strerror(-rc));
			while (++i < s->n_workers)
				close(fds[i]);
			return -1;
		}
	}
	return 0;
}

/* --metrics: the Prometheus endpoint on the main base (metrics.h). */
static int server_metrics(struct server *s)
{
	const struct options *o = s->opts;

	s->metrics = metrics_new(s->base,
	    (const struct sockaddr *)&o->metrics_addr, o->metrics_addrlen,
	    o->metrics_any, &(struct metrics_source){
		.workers = s->workers,
		.n_workers = s->n_workers,
		.listener = &s->lstats,
		.store = s->store,
		.max_memory = o->max_memory,
		.max_conns = s->max_conns,
	});
	return s->metrics ? 0 : -1;
}

int server_init(struct server *s, const struct options *o)
{
	struct event_config *ec;

	memset(s, 0, sizeof(*s));
	s->opts = o;
	s->max_conns = default_max_conns(o->threads);
	/* Every worker holds a socket of each -u address. */
	if (s->max_conns > (long)o->n_udp * o->threads)
		s->max_conns -= (long)o->n_udp * o->threads;
	if (o->max_conns)
		s->max_conns = o->max_conns;
	s->started = monotonic_seconds();
	s->store = store_new(&(struct store_options){
		.max_memory = o->max_memory,
	});
	if (!s->store) {
		log_error("cannot create the key-value store");
		return -1;
	}
	s->pubsub = pubsub_new(&(struct pubsub_options){
		.workers = o->threads,
		.post = server_pubsub_post,
		.post_ctx = s,
	});
	if (!s->pubsub) {
		log_error("cannot create the pub/sub registry");
		return -1;
	}
	s->proto_cfg = (struct proto_config){
		.banner = o->banner,
		.max_line = o->max_line,
		.max_bulk = o->max_bulk,
		.store = s->store,
		.max_memory = o->max_memory,
		.stats = server_proto_stats,
		.hub = &s->hub,
		.pubsub = s->pubsub,
		.pubsub_limit = {
			.hard = o->pubsub_hard,
			.soft = o->pubsub_soft,
			.seconds = o->pubsub_seconds,
		},
	};
	s->wcfg = (struct worker_config){
		.high_water = o->high_water,
		.low_water = o->low_water,
		.idle_timeout = o->idle_timeout,
		.write_timeout = o->write_timeout,
		.grace = o->grace,
		.tls_handshake_timeout = o->tls_handshake_timeout,
		.proto_cfg = &s->proto_cfg,
		.conns_now = &s->conns_now,
		.udp_cfg = &o->udp_cfg,
		.measure_latency = o->metrics != NULL,
	};

	ec = event_config_new();
	if (ec && !event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK))
		s->base = event_base_new_with_config(ec);
	if (ec)
		event_config_free(ec);
	if (!s->base) {
		log_error("cannot create the main event loop");
		return -1;
	}
	if (server_tls_init(s) || server_listen_all(s))
		return -1;
	/* Kept apart: the listeners close at shutdown while workers may
	 * still read this. */
	s->first_port = listener_port(s->ports[0].listener);
	s->sig_int = evsignal_new(s->base, SIGINT, server_signal_cb, s);
	s->sig_term = evsignal_new(s->base, SIGTERM, server_signal_cb, s);
	s->sig_usr1 = evsignal_new(s->base, SIGUSR1, server_signal_cb, s);
	s->sig_hup = evsignal_new(s->base, SIGHUP, server_signal_cb, s);
	if (!s->sig_int || !s->sig_term || !s->sig_usr1 || !s->sig_hup ||
	    event_add(s->sig_int, NULL) || event_add(s->sig_term, NULL) ||
	    event_add(s->sig_usr1, NULL) || event_add(s->sig_hup, NULL)) {
		log_error("cannot set up signal handling");
		return -1;
	}
	s->sweep_timer = event_new(s->base, -1, EV_PERSIST, server_sweep_cb,
	    s);
	if (!s->sweep_timer || event_add(s->sweep_timer, &(struct timeval){
	    0, SERVER_SWEEP_MS * 1000 })) {
		log_error("cannot set up the expiry sweep");
		return -1;
	}

	s->workers = xcalloc((size_t)o->threads, sizeof(*s->workers));
	s->hub = (struct msg_hub){ .workers = s->workers, .n = o->threads };
	if (o->offload) {
		int err = offload_init(&s->offload, &s->hub,
		    (unsigned)o->offload_threads, (size_t)o->offload_queue);

		if (err) {
			log_error("cannot start the offload pool: %s",
			    strerror(-err));
			return -1;
		}
		s->proto_cfg.offload = &s->offload;
	}
	for (; s->n_workers < o->threads; s->n_workers++)
		if (worker_init(&s->workers[s->n_workers], s->n_workers,
		    &s->wcfg))
			return -1;
	for (int i = 0; i < o->n_udp; i++)
		if (server_listen_udp(s, &o->udp[i]))
			return -1;
	if (o->metrics && server_metrics(s))
		return -1;
	return 0;
}

/* The bound ports, one line per listener in --listen order, then one
 * "udp PORT" line per -u in order (after the TCP lines, so that readers
 * of the plain numbers are unaffected).  The file appears atomically, so
 * a reader never sees it half written. */
static int write_port_file(struct server *s, const char *path)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		goto fail;
	for (int i = 0; i < s->n_ports; i++)
		fprintf(f, "%d\n", listener_port(s->ports[i].listener));
	/* The metrics port is the last plain number, and the UDP ports
	 * are marked, so that readers of either find theirs. */
	if (s->metrics)
		fprintf(f, "%d\n", metrics_port(s->metrics));
	for (int i = 0; i < s->n_udp; i++)
		fprintf(f, "udp %u\n", netaddr_port(
		    (const struct sockaddr *)&s->udp_bound[i]));
	if (fclose(f) || rename(tmp, path))
		goto fail;
	return 0;
fail:
	log_error("cannot write port file '%s': %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

static void log_startup(struct server *s)
{
	char line[2 * OPTIONS_MAX_LISTEN * (NETADDR_STRLEN + 32)] = "";
	size_t n = 0;

	for (int i = 0; i < s->n_ports; i++) {
		char addr[NETADDR_STRLEN], pre[32];

		listener_address(s->ports[i].listener, addr, sizeof(addr));
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s%s@%s",
		    i ? " " : "", options_listen_prefixes(s->ports[i].cl.flags,
		    pre, sizeof(pre)), s->ports[i].cl.ops->name, addr);
	}
	for (int i = 0; i < s->n_udp; i++) {
		char addr[NETADDR_STRLEN];

		netaddr_format((const struct sockaddr *)&s->udp_bound[i],
		    addr, sizeof(addr));
		n += (size_t)snprintf(line + n, sizeof(line) - n, " udp@%s",
		    addr);
	}
	log_info("echoserver %s listening on %s; %d worker%s; libevent %s "
	    "(%s); max %ld connections", VERSION, line, s->n_workers,
	    s->n_workers == 1 ? "" : "s",
	    event_get_version(), event_base_get_method(s->base),
	    s->max_conns);
	if (s->metrics) {
		char addr[NETADDR_STRLEN];

		metrics_address(s->metrics, addr, sizeof(addr));
		log_info("metrics on http://%s/metrics", addr);
	}
}

int server_run(struct server *s)
{
	int rc = 0;

	for (int i = 0; i < s->n_workers; i++) {
		int err = worker_start(&s->workers[i]);

		if (err) {
			log_error("cannot start worker %d: %s", i,
			    strerror(-err));
			server_stop(s, SIGTERM);
			rc = -1;
			goto join;
		}
	}
	/* The start-up line first: once the port file appears, a script may
	 * read the log for every bound address. */
	log_startup(s);
	if (s->opts->port_file && write_port_file(s, s->opts->port_file)) {
		server_stop(s, SIGTERM);
		rc = -1;
		goto join;
	}
	systemd_notify("READY=1\nSTATUS=serving");
	if (event_base_dispatch(s->base) < 0) {
		log_error("main event loop failed");
		rc = -1;
	}
	server_stop(s, SIGTERM);	/* no-op after a signal */
join:
	for (int i = 0; i < s->n_workers; i++)
		worker_join(&s->workers[i]);
	/* Only now: the workers' connections had their jobs run until
	 * they closed (offload.h, "Shutdown"). */
	offload_shutdown(&s->offload);
	server_log_stats(s, "at exit");
	offload_log_stats(&s->offload);
	return rc;
}

void server_release(struct server *s)
{
	metrics_free(s->metrics);
	/* Batches still queued run as the workers are released; they must
	 * not post credits to workers already gone. */
	if (s->pubsub)
		pubsub_stop(s->pubsub);
	for (int i = 0; i < s->n_ports; i++)
		listener_free(s->ports[i].listener);
	/* No pool thread may post into a queue being freed. */
	offload_shutdown(&s->offload);
	for (int i = 0; i < s->n_workers; i++)
		worker_release(&s->workers[i]);
	offload_release(&s->offload);
	free(s->workers);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_usr1)
		event_free(s->sig_usr1);
	if (s->sig_hup)
		event_free(s->sig_hup);
	/* After the workers: connections borrow it until they close. */
	tls_ctx_free(s->tls);
	if (s->sweep_timer)
		event_free(s->sweep_timer);
	if (s->store)
		store_free(s->store);
	pubsub_free(s->pubsub);
	if (s->base)
		event_base_free(s->base);
	memset(s, 0, sizeof(*s));
}
