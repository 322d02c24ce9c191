/*
 * echobench's UDP engine (--udp): one udpgen drives a share of the flows
 * from one thread.  A flow is one UDP socket keeping a window of
 * datagrams in flight to the server; each datagram names its slot in the
 * window and a generation, and carries a pattern derived from both, so an
 * echo is matched and checked byte for byte without a copy.  UDP may drop
 * datagrams anywhere, so a datagram not echoed within the loss timeout is
 * counted lost and its slot reused; an echo that turns up later is
 * counted late, not as an error.  Only a wrong echo (length or bytes) is
 * an error.
 *
 * DESIGN: as loadgen.h: the main thread creates the udpgens, runs each on
 * its own thread with udpgen_run(), moves the shared phase forward and
 * reads the published counters; everything else belongs to the thread.
 */
#ifndef UDPGEN_H
#define UDPGEN_H

#include "histogram.h"

#include <netinet/in.h>
#include <stdint.h>

/* Shared read-only by every udpgen once the threads start. */
struct udpgen_config {
	struct sockaddr_in target;
	unsigned size;		/* datagram size, 8 to 65507 bytes */
	unsigned window;	/* datagrams in flight per flow */
	double loss_timeout;	/* seconds until an echo is counted lost */
	int *phase;		/* enum loadgen_phase (loadgen.h), atomic */
};

/* The smallest datagram: the slot and generation it carries. */
#define UDPGEN_MIN_SIZE 8
#define UDPGEN_MAX_SIZE 65507

/* A snapshot of a udpgen's counters, safe to take from any thread. */
struct udpgen_counters {
	uint64_t sent;		/* datagrams sent */
	uint64_t echoed;	/* echoed in time and checked */
	uint64_t lost;		/* not echoed within the loss timeout */
	uint64_t late;		/* echoed after being counted lost */
	uint64_t errors;	/* wrong echoes, failed socket calls */
	uint64_t ready;		/* flows that had a first echo */
};

/* A udpgen for @nflows flows to @config (borrowed; must outlive it).
 * Aborts on out-of-memory or when a socket cannot be made.  Caller frees
 * with udpgen_free(). */
struct udpgen *udpgen_new(const struct udpgen_config *config,
    unsigned nflows);

/* Closes the flows of @ug (taken; its thread must have returned) and
 * frees it.  NULL is a no-op. */
void udpgen_free(struct udpgen *ug);

/* Runs @ug (borrowed, the calling thread's until return) until the phase
 * reaches LOADGEN_DRAIN and every datagram is echoed or lost.  A thread
 * body. */
void *udpgen_run(void *ug);

/* Copies @ug's published counters into @out (caller's). */
void udpgen_counters(const struct udpgen *ug, struct udpgen_counters *out);

/* @ug's round-trip times in ns, recorded while measuring; read only after
 * udpgen_run() has returned.  Borrowed from @ug. */
const struct histogram *udpgen_histogram(const struct udpgen *ug);

#endif
