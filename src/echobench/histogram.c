/*
 * The log-linear histogram; see histogram.h.  Values below
 * HISTOGRAM_SUB_BUCKETS get one bucket each.  A larger value with its top
 * bit at position k (k >= HISTOGRAM_SUB_BITS) falls in group
 * k - HISTOGRAM_SUB_BITS + 1, and within it in the bucket given by the
 * HISTOGRAM_SUB_BITS bits below the top bit.
 */
#include "histogram.h"

#include <string.h>

static unsigned histogram_index(uint64_t v)
{
	unsigned top, shift;

	if (v < HISTOGRAM_SUB_BUCKETS)
		return (unsigned)v;
	top = 63 - (unsigned)__builtin_clzll(v);
	shift = top - HISTOGRAM_SUB_BITS;
	return (shift + 1) * HISTOGRAM_SUB_BUCKETS +
	    (unsigned)((v >> shift) - HISTOGRAM_SUB_BUCKETS);
}

/* The smallest value in bucket @i, and the bucket's width. */
static void histogram_bucket_range(unsigned i, uint64_t *low,
    uint64_t *width)
{
	unsigned group = i / HISTOGRAM_SUB_BUCKETS;
	uint64_t sub = i % HISTOGRAM_SUB_BUCKETS;

	if (group == 0) {
		*low = sub;
		*width = 1;
		return;
	}
	*width = (uint64_t)1 << (group - 1);
	*low = (sub + HISTOGRAM_SUB_BUCKETS) << (group - 1);
}

void histogram_init(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void histogram_record(struct histogram *h, uint64_t value)
{
	h->buckets[histogram_index(value)]++;
	h->count++;
	h->sum += (double)value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void histogram_merge(struct histogram *dst, const struct histogram *src)
{
	unsigned i;

	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t histogram_percentile(const struct histogram *h, double pct)
{
	uint64_t rank, seen = 0, low, width, mid;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	if (pct < 0.0)
		pct = 0.0;
	/* The rank-th smallest value, counting from 1, as nearest-rank. */
	rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.9999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	histogram_bucket_range(i, &low, &width);
	mid = low + width / 2;
	/* Never answer outside what was actually recorded. */
	if (mid < h->min)
		mid = h->min;
	if (mid > h->max)
		mid = h->max;
	return mid;
}

double histogram_mean(const struct histogram *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
