/*
 * The reply-latency histogram: how long a worker takes from reading a
 * request to writing its reply.  conn.c records one observation per read
 * that produced a reply; metrics.c exports it as a Prometheus histogram.
 *
 * DESIGN
 * Each worker owns one histogram and is its only writer, like the other
 * counters (stats.h): an observation is two relaxed load-and-store pairs
 * on the worker's own cache lines, never an atomic read-modify-write, and
 * a reader on another thread (a scrape on the main thread) loads each
 * field once, relaxed, and may see figures a moment old, never torn.
 *
 * Buckets have power-of-two upper bounds, 1 us, 2 us, 4 us, ... so that
 * finding one is a count of leading zeros rather than a search, and the
 * bounds print exactly in seconds (6 decimals).  The last slot counts
 * what is over the largest bound; only +Inf includes it.
 */
#ifndef LATENCY_H
#define LATENCY_H

#include "stats.h"

#include <stdint.h>
#include <time.h>

/* Finite buckets: bucket i holds (2^(i-1), 2^i] microseconds (bucket 0:
 * up to 1 us), so the largest bound is 2^23 us, about 8.4 s. */
#define LATENCY_BUCKETS 24

struct latency_hist {
	stat_t bucket[LATENCY_BUCKETS + 1];	/* not cumulative; the last:
						 * over every bound */
	stat_t sum_ns;
};

/* The histogram's clock, in nanoseconds (monotonic). */
static inline uint64_t latency_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The slot for @ns nanoseconds: the first bucket whose bound is at least
 * @ns, or LATENCY_BUCKETS if none is. */
static inline unsigned latency_bucket(uint64_t ns)
{
	/* ns <= 2^i us  <=>  (ns - 1) / 1000 < 2^i */
	uint64_t us = ns ? (ns - 1) / 1000 : 0;
	unsigned i = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

	return i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS;
}

/* The upper bound of bucket @i (< LATENCY_BUCKETS), in microseconds. */
static inline uint64_t latency_bound_us(unsigned i)
{
	return (uint64_t)1 << i;
}

/* Records one observation of @ns.  Only the owning worker may call it. */
static inline void latency_observe(struct latency_hist *h, uint64_t ns)
{
	stat_add(&h->bucket[latency_bucket(ns)], 1);
	stat_add(&h->sum_ns, ns);
}

#endif
