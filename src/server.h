/*
 * The whole server: the main thread's event_base with its listeners and
 * signals, and the worker threads it feeds round-robin.
 *
 * DESIGN
 * Threads: the main thread runs server_run(), which accepts, applies the
 * connection limit and dispatches; each worker runs its own loop
 * (worker.h).  The only state shared with workers is the open-connection
 * count (an atomic) and the statistics (single-writer counters, stats.h).
 *
 * UDP echo (-u): each worker gets its own socket of every UDP address,
 * bound here before the workers start (udp.h).
 * TLS: the main thread owns s->tls, reloads it on SIGHUP and frees it
 * after the workers are joined; workers only make connections from it
 * (tls.h says how that is safe).
 *
 * Shutdown: the first SIGINT or SIGTERM closes the listeners and sends every
 * worker a STOP item, on which it also closes its UDP sockets; each worker flushes its clients within the grace
 * period and leaves its loop; the main thread joins them all.  The signal
 * events are deleted first, which restores the default action, so a second
 * signal ends the process at once.
 */
#ifndef SERVER_H
#define SERVER_H

#include "msg.h"
#include "offload.h"
#include "options.h"
#include "proto/proto.h"
#include "stats.h"
#include "worker.h"

#include <stdbool.h>

struct event;
struct event_base;
struct listener;
struct metrics;
struct server;

/* A listening socket and how its connections are served.  It outlives
 * its listener: connections borrow @cl until the workers are joined. */
struct server_port {
	struct server *server;
	struct listener *listener;
	struct conn_listen cl;
};

struct server {
	const struct options *opts;	/* borrowed */
	struct event_base *base;
	struct server_port ports[OPTIONS_MAX_LISTEN];
	int n_ports;
	struct worker *workers;
	int n_workers;
	int next_worker;	/* round-robin cursor */
	struct worker_config wcfg;
	struct msg_hub hub;	/* the workers, for messages (msg.h) */
	struct offload offload;	/* --offload's pool; wq NULL when off */
	struct pubsub *pubsub;	/* resp's channels (pubsub.h) */
	struct proto_config proto_cfg;
	struct event *sig_int, *sig_term, *sig_usr1;
	struct event *sig_hup;	/* reloads the TLS certificate */
	struct tls_ctx *tls;	/* for tls+ listeners; NULL without */
	struct event *sweep_timer;	/* expires keys in the store */
	struct store *store;	/* resp's key space, shared by workers */
	struct metrics *metrics;	/* --metrics; NULL: off */
	double started;		/* monotonic seconds, for uptime */
	int first_port;		/* the first listener's, for INFO */
	_Atomic long conns_now;
	long max_conns;
	struct listener_stats lstats;
	bool stopping;
	struct sockaddr_storage udp_bound[OPTIONS_MAX_LISTEN];	/* per -u,
						 * as bound (udp.h) */
	int n_udp;
};

/*
 * Binds every listener and prepares the workers, without starting them.
 * @o is borrowed and must outlive @s.  Returns 0, or -1 after logging why.
 */
int server_init(struct server *s, const struct options *o);

/* Starts the workers and serves until a signal stops the server; returns
 * 0 after a clean shutdown, -1 on failure. */
int server_run(struct server *s);

/* Frees everything; every worker must have been joined. */
void server_release(struct server *s);

#endif
