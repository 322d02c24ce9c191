/*
 * UDP echo (RFC 862): every datagram that passes the guards goes back to
 * its sender unchanged, zero-length ones included.  Because echo reflects
 * whatever source address a datagram claims, it ships with guards on by
 * default: a minimum source port (the echo/chargen loop of CERT
 * CA-1996-01), a ban on broadcast, multicast and "this network" sources,
 * and a per-source-address rate limit (docs/operations.md, "UDP echo").
 *
 * DESIGN
 * Threads: each worker owns one socket per --udp address, all bound to the
 * same address with SO_REUSEPORT, so the kernel spreads datagrams over the
 * workers by a hash of the 4-tuple (one sender stays on one socket:
 * docs/design.md, fact U3).  The server binds the group with
 * udp_bind_group() on the main thread before the workers start and hands
 * each worker its socket (worker_add_udp(), worker.h); from then on only
 * that worker touches the socket, its event, the batch buffers and the
 * rate table, all in one struct udp_worker.
 *
 * I/O: a readable socket is drained with recvmmsg in batches of
 * UDP_BATCH into per-worker buffers of UDP_MAX_DATAGRAM each, and the
 * accepted datagrams are echoed with one sendmmsg per batch.  UDP has no
 * backpressure: when the socket's send buffer is full (EAGAIN) the rest
 * of the batch is dropped and counted, and the reactor never blocks
 * (fact U5 says how sendmmsg reports a failure mid-batch).
 *
 * Memory: the rate table is a fixed-size set-associative hash per worker;
 * a flood of spoofed sources evicts entries instead of growing it.
 *
 * Errors: functions return 0 or a negative errno and never log, except
 * where a comment says so.
 */
#ifndef UDP_H
#define UDP_H

#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct udp_worker;

/* Datagrams per recvmmsg and sendmmsg call. */
#define UDP_BATCH 32
/* The largest datagram the buffers take: a UDP length field's maximum.
 * IPv4 carries at most 65507 bytes of payload, IPv6 65527 (without
 * jumbograms, which loopback and Ethernet do not use; fact U4). */
#define UDP_MAX_DATAGRAM 65536

/* The guards and their limits; owned by the server, read-only while the
 * workers run. */
struct udp_config {
	unsigned min_src_port;	/* drop sources below it; 0: off */
	bool allow_broadcast;	/* accept broadcast, multicast, 0/8 */
	uint64_t rate_pkts;	/* per source address, per second; 0: off */
	uint64_t rate_bytes;	/* the same in bytes; 0: off */
	unsigned rate_table;	/* entries per worker, a multiple of 4 */
};

/* The defaults: the guards on. */
#define UDP_DEFAULT_MIN_SRC_PORT 1024
#define UDP_DEFAULT_RATE_PKTS 1000
#define UDP_DEFAULT_RATE_BYTES (1024 * 1024)
#define UDP_DEFAULT_RATE_TABLE 4096

/* Fills @cfg with the defaults. */
void udp_config_init(struct udp_config *cfg);

/* Why a guard drops a datagram. */
enum udp_verdict {
	UDP_PASS,
	UDP_DROP_PORT,		/* source port below min_src_port */
	UDP_DROP_ADDR,		/* broadcast, multicast or 0/8 source */
};

/*
 * The source guards for the sender @sa (borrowed), as @cfg says.  IPv4
 * sources, and IPv4-mapped IPv6 ones (::ffff:a.b.c.d, as a dual-stack
 * socket reports IPv4 senders), are dropped when they are 0.0.0.0/8,
 * 224.0.0.0/4 (multicast) or 240.0.0.0/4 (which holds 255.255.255.255);
 * IPv6 sources when multicast (ff00::/8) or unspecified (::).  Linux
 * drops most of these itself (docs/design.md, fact U2); this is the
 * second line.
 */
enum udp_verdict udp_guard_source(const struct udp_config *cfg,
    const struct sockaddr *sa);

/*
 * Binds @n non-blocking sockets to @sa (borrowed) with SO_REUSEPORT and
 * stores them in @fds (caller's array of @n; caller closes them, or hands
 * them to workers).  Port 0 binds the first socket to a port the kernel
 * picks and the others to that port.  IPv6 addresses are v6-only unless
 * @dual_stack.  The bound address goes to @bound (caller's).  Returns 0,
 * or a negative errno with nothing left open.
 */
int udp_bind_group(const struct sockaddr *sa, socklen_t len, int dual_stack,
    int n, int *fds, struct sockaddr_storage *bound);

/*
 * A worker's UDP state on @base (borrowed, the worker's), as @cfg says
 * (borrowed, must outlive it), counting into @stats (borrowed, the
 * worker's).  Returns NULL on out-of-memory.  Caller frees with
 * udp_worker_free().  Only the owning worker's thread may use it once
 * that thread runs.
 */
struct udp_worker *udp_worker_new(struct event_base *base,
    const struct udp_config *cfg, struct worker_stats *stats);

/* Starts echoing on the bound socket @fd, which @uw takes over, also on
 * failure (-errno). */
int udp_worker_add(struct udp_worker *uw, int fd);

/* Stops reading and closes every socket of @uw (shutdown).  Idempotent. */
void udp_worker_close(struct udp_worker *uw);

/* Closes the sockets and frees @uw.  NULL is a no-op. */
void udp_worker_free(struct udp_worker *uw);

#endif
