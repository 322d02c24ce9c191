/*
 * Unit tests for the log-linear histogram behind echobench's latency
 * figures: exact small values, the promised error bound against a sorted
 * list of the same values, merging, and the empty case.
 */
#include "echobench/histogram.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

Suite *histogram_suite(void);

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of the sorted @v (borrowed). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double pct)
{
	size_t rank = (size_t)ceil(pct / 100.0 * (double)n);

	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

START_TEST(test_histogram_small_values_are_exact)
{
	static struct histogram h;
	uint64_t v;

	histogram_init(&h);
	for (v = 1; v <= 64; v++)
		histogram_record(&h, v);
	ck_assert_uint_eq(histogram_percentile(&h, 50), 32);
	ck_assert_uint_eq(histogram_percentile(&h, 0), 1);
	ck_assert_uint_eq(histogram_percentile(&h, 100), 64);
	ck_assert_uint_eq(h.count, 64);
	ck_assert(fabs(histogram_mean(&h) - 32.5) < 1e-9);
}
END_TEST

/*
 * Log-uniform values from 1 ns to about 100 s, so that every magnitude is
 * exercised: every percentile a report prints, and a dense sweep, must be
 * within 3% of the true nearest-rank value (the design bound is 1/128).
 */
START_TEST(test_histogram_percentiles_within_three_percent)
{
	static struct histogram h;
	static const double report[] = { 50, 90, 99, 99.9, 99.99 };
	size_t n = 200000, i;
	uint64_t *v = malloc(n * sizeof(*v)), state = 0x9e3779b97f4a7c15ULL;
	double pct, worst = 0;

	ck_assert_ptr_nonnull(v);
	histogram_init(&h);
	for (i = 0; i < n; i++) {
		uint64_t r;

		fill_random(&state, &r, sizeof(r));
		v[i] = (uint64_t)exp((double)(r >> 11) / 9007199254740992.0 *
		    log(1e11)) + 1;
		histogram_record(&h, v[i]);
	}
	qsort(v, n, sizeof(*v), compare_u64);
	for (i = 0; i < sizeof(report) / sizeof(report[0]); i++) {
		uint64_t want = exact_percentile(v, n, report[i]);
		uint64_t got = histogram_percentile(&h, report[i]);
		double err = fabs((double)got - (double)want) / (double)want;

		ck_assert_msg(err <= 0.03, "p%g: got %llu, want %llu", report[i],
		    (unsigned long long)got, (unsigned long long)want);
	}
	for (pct = 0.01; pct < 100; pct += 0.37) {
		uint64_t want = exact_percentile(v, n, pct);
		uint64_t got = histogram_percentile(&h, pct);
		double err = fabs((double)got - (double)want) / (double)want;

		if (err > worst)
			worst = err;
	}
	ck_assert_msg(worst <= 1.0 / 128 + 1e-12, "worst error %g", worst);
	ck_assert_uint_eq(histogram_percentile(&h, 100), v[n - 1]);
	ck_assert_uint_eq(h.min, v[0]);
	free(v);
}
END_TEST

START_TEST(test_histogram_merge_equals_recording_everything_once)
{
	static struct histogram a, b, all;
	uint64_t state = 42;
	int i;

	histogram_init(&a);
	histogram_init(&b);
	histogram_init(&all);
	for (i = 0; i < 10000; i++) {
		uint64_t r;

		fill_random(&state, &r, sizeof(r));
		r %= 10000000;
		histogram_record(i % 3 ? &a : &b, r);
		histogram_record(&all, r);
	}
	histogram_merge(&a, &b);
	ck_assert_uint_eq(a.count, all.count);
	ck_assert_uint_eq(a.min, all.min);
	ck_assert_uint_eq(a.max, all.max);
	ck_assert_uint_eq(histogram_percentile(&a, 99),
	    histogram_percentile(&all, 99));
	ck_assert_uint_eq(histogram_percentile(&a, 50),
	    histogram_percentile(&all, 50));
}
END_TEST

START_TEST(test_histogram_empty_and_huge_values)
{
	static struct histogram h;

	histogram_init(&h);
	ck_assert_uint_eq(histogram_percentile(&h, 99), 0);
	ck_assert(histogram_mean(&h) == 0.0);
	histogram_record(&h, UINT64_MAX);
	histogram_record(&h, 0);
	ck_assert_uint_eq(histogram_percentile(&h, 100), UINT64_MAX);
	ck_assert_uint_eq(histogram_percentile(&h, 50), 0);
}
END_TEST

Suite *histogram_suite(void)
{
	Suite *s = suite_create("histogram");
	TCase *tc = tcase_create("accuracy");

	tcase_add_test(tc, test_histogram_small_values_are_exact);
	tcase_add_test(tc, test_histogram_percentiles_within_three_percent);
	tcase_add_test(tc, test_histogram_merge_equals_recording_everything_once);
	tcase_add_test(tc, test_histogram_empty_and_huge_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(histogram_suite());
}
