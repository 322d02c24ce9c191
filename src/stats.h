/*
 * Server statistics.  Every counter has exactly one writer, the thread that
 * owns it (a worker, or the main thread for the listener counters), so the
 * hot path needs no lock and no atomic read-modify-write: the owner does a
 * relaxed load and store, which compiles to a plain add, and a reader on
 * another thread (SIGUSR1, shutdown) does a relaxed load.  The figures a
 * reader sees may be a moment old, never torn.
 */
#ifndef STATS_H
#define STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t stat_t;

/* Only the owning thread may call this on a counter. */
static inline void stat_add(stat_t *s, uint64_t n)
{
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed)
	    + n, memory_order_relaxed);
}

static inline uint64_t stat_get(stat_t *s)
{
	return atomic_load_explicit(s, memory_order_relaxed);
}

/*
 * Each counter is listed once, as X(field, label), and the lists generate
 * the structs, the summing over workers, the log lines and the Prometheus
 * metrics, echoserver_FIELD_total (metrics.c; memcached's
 * THREAD_STATS_FIELDS).  The label is the name in the log line, which
 * tests and scripts parse; NULL keeps a counter out of it.  The worker
 * line starts with conns_open, which is derived (opened - closed) rather
 * than counted, so that opening and closing each bump one counter.
 */

/* Owned by one worker. */
#define WORKER_STATS_FIELDS(X)						\
	X(conns_opened, "conns_total")	/* connections served */	\
	X(conns_closed, NULL)		/* of those, closed */		\
	X(bytes_in, "bytes_in")						\
	X(bytes_out, "bytes_out")					\
	X(idle_timeouts, "idle_timeouts")				\
	/* write stalls, including flush fallbacks */			\
	X(write_timeouts, "write_timeouts")				\
	/* I/O errors and failed set-ups */				\
	X(errors, "errors")						\
	/* pending output lost at close */				\
	X(dropped_bytes, "dropped_bytes")				\
	/* closed: unconsumed input over the handler's cap */		\
	X(input_overflows, "input_overflows")				\
	/* commands served, as the handlers count them */		\
	X(requests, "requests")						\
	/* UDP echo (udp.h); its bytes count in bytes_in/out too */	\
	X(udp_in, "udp_in")		/* datagrams received */	\
	X(udp_out, "udp_out")		/* datagrams echoed */		\
	/* echoes dropped: the send buffer was full (EAGAIN) */	\
	X(udp_send_drops, "udp_send_drops")				\
	/* dropped: longer than the buffer (MSG_TRUNC) */		\
	X(udp_truncated, "udp_truncated")				\
	/* dropped by the guards: source port, source address */	\
	X(udp_guard_port, "udp_guard_port")				\
	X(udp_guard_addr, "udp_guard_addr")				\
	/* dropped: over the per-source rate limit */			\
	X(udp_rate_limited, "udp_rate_limited")				\
	/* closed: a bad or truncated PROXY protocol header */		\
	X(proxy_errors, "proxy_errors")					\
	/* closed: no complete PROXY header in --proxy-timeout */	\
	X(proxy_timeouts, "proxy_timeouts")				\
	/* TLS handshakes completed */					\
	X(tls_handshakes, "tls_handshakes")				\
	/* closed: no TLS handshake progress within the timeout */	\
	X(tls_handshake_timeouts, "tls_handshake_timeouts")		\
	/* closed: a handshake that failed (not TLS, no common	\
	 * version or cipher, closed half-way) */			\
	X(tls_handshake_failures, "tls_handshake_failures")	\
	/* messages for a connection that had gone (msg.h) */		\
	X(msgs_dropped, "msgs_dropped")					\
	/* offloaded jobs whose result came back and went out */	\
	X(jobs_done, "jobs_done")					\
	/* offloaded jobs that never ran: their connection had gone */	\
	X(jobs_cancelled, "jobs_cancelled")				\
	/* submits deferred: the connection's limit or a full pool */	\
	X(jobs_deferred, "jobs_deferred")					\
	/* notify-pipe wake-ups; for tests, not logged */		\
	X(wakeups, NULL)						\
	/* closed: output over the handler's cap (pub/sub limit) */	\
	X(output_overflows, "output_overflows")

/* Owned by the main thread. */
#define LISTENER_STATS_FIELDS(X)					\
	X(accepted, "accepted")						\
	X(rejected, "rejected")		/* over --max-conns */		\
	X(accept_errors, "accept_errors") /* EMFILE and friends */	\
	X(shed, "shed")		/* accepted and closed at fd exhaustion */ \
	X(dispatch_errors, "dispatch_errors") /* hand-off failed */

#define STATS_DECLARE(field, label) stat_t field;

struct worker_stats {
	WORKER_STATS_FIELDS(STATS_DECLARE)
};

struct listener_stats {
	LISTENER_STATS_FIELDS(STATS_DECLARE)
};

#undef STATS_DECLARE

/* Logs one line per worker and a total, at info level.  Arrays borrowed. */
void stats_log(const char *when, struct worker_stats *const *workers,
    int n_workers, struct listener_stats *listener);

#endif
