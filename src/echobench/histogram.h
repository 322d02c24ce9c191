/*
 * A log-linear latency histogram, in the manner of HdrHistogram: every
 * power of two is split into HISTOGRAM_SUB_BUCKETS equal buckets, so a
 * recorded value is known to within 1/128 of itself (the bucket's width is
 * at most 1/64 of its lower bound and a query answers with its midpoint),
 * from 1 ns up to 2^64.  Recording is a few shifts and one increment, cheap
 * enough for every message of a load generator; each thread keeps its own
 * histogram and they are merged at the end.
 */
#ifndef HISTOGRAM_H
#define HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 6
#define HISTOGRAM_SUB_BUCKETS (1 << HISTOGRAM_SUB_BITS)
#define HISTOGRAM_BUCKETS ((64 - HISTOGRAM_SUB_BITS + 1) * \
	HISTOGRAM_SUB_BUCKETS)

struct histogram {
	uint64_t count;
	uint64_t min;		/* exact; UINT64_MAX while empty */
	uint64_t max;		/* exact */
	double sum;
	uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* Empties the caller-owned @h. */
void histogram_init(struct histogram *h);

/* Adds one @value to @h (borrowed). */
void histogram_record(struct histogram *h, uint64_t value);

/* Adds every value of @src (borrowed) to @dst (borrowed). */
void histogram_merge(struct histogram *dst, const struct histogram *src);

/*
 * The value at percentile @pct (0 to 100) of @h (borrowed), within 1/128 of
 * a value actually recorded at that rank; 0 if @h is empty.  Percentile 100
 * is the exact maximum.
 */
uint64_t histogram_percentile(const struct histogram *h, double pct);

/* The mean of @h (borrowed); 0 if empty. */
double histogram_mean(const struct histogram *h);

#endif
