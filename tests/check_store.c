/*
 * Unit tests for the key-value store: binary-safe round trips, NX and XX,
 * overwrites, lazy and swept expiry, incremental growth to a million
 * keys, the exact memory formula and the max_memory cap, INCRBY's parsing
 * and overflow rules, and exact results under concurrent threads.  No
 * test sleeps to synchronise: expiry uses deadlines already past, or polls
 * for the clock with a deadline.
 */
#include "store.h"
#include "testutil.h"

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A literal's bytes and length, embedded NULs included. */
#define K(lit) (lit), (sizeof(lit) - 1)

/*
 * For assertions inside big loops: a passing ck_assert() reports its line
 * to the forked runner (_mark_point), which costs a write per check and
 * made a million-key test take seconds; this one costs nothing until it
 * fails.
 */
#define FAST_ASSERT(cond, fmt, ...) do {				\
		if (!(cond))						\
			ck_abort_msg("'%s' failed: " fmt, #cond,	\
			    ##__VA_ARGS__);				\
	} while (0)

/* Sizes for the big tests: @full in a plain build, @sanitized under ASan
 * or TSan, both times TEST_SCALE. */
static size_t test_size(size_t full, size_t sanitized)
{
	return scaled(TEST_SANITIZED ? sanitized : full, 1000);
}

struct expect {
	const char *v;
	size_t len;
	int calls;
	int equal;
};

static void compare_value(void *arg, const char *v, size_t len)
{
	struct expect *e = arg;

	e->calls++;
	e->equal = len == e->len && (len == 0 || memcmp(v, e->v, len) == 0);
}

/* 1 if @key is present with exactly the value @v (@vl bytes). */
static int has_value(struct store *s, const char *key, size_t klen,
    const char *v, size_t vl)
{
	struct expect e = { v, vl, 0, 0 };

	return store_get(s, key, klen, compare_value, &e) == STORE_OK &&
	    e.calls == 1 && e.equal;
}

/* A copy of a value of up to 63 bytes, NUL-terminated. */
struct got {
	char buf[64];
	size_t len;
	int calls;
};

static void copy_value(void *arg, const char *v, size_t len)
{
	struct got *g = arg;

	g->calls++;
	g->len = len;
	memcpy(g->buf, v, len < sizeof(g->buf) ? len : sizeof(g->buf) - 1);
	g->buf[len < sizeof(g->buf) ? len : sizeof(g->buf) - 1] = '\0';
}

static struct store *new_store(size_t max_memory, unsigned stripes)
{
	struct store_options o = { max_memory, stripes };
	struct store *s = store_new(&o);

	ck_assert_ptr_nonnull(s);
	return s;
}

/* What store_memory() counts per key beside its bytes, measured on one
 * key: the tests then hold every other change to that formula. */
static size_t entry_overhead(void)
{
	struct store *s = new_store(0, 0);
	size_t m;

	ck_assert_int_eq(store_set(s, K("k"), K("v"), 0, 0), STORE_OK);
	m = store_memory(s);
	store_free(s);
	ck_assert_uint_gt(m, 2);
	return m - 2;
}

/* --- basics ------------------------------------------------------------- */

START_TEST(test_store_round_trips_binary_keys_and_values)
{
	struct store *s = store_new(NULL);
	static const struct {
		const char *k;
		size_t kl;
		const char *v;
		size_t vl;
	} kv[] = {
		{ K("a\0b"), K("x\0y") },
		{ K("a\0c"), K("\r\n") },
		{ K("a"), K("\0") },
		{ K("\r\n"), K("line\r\nnext\nlast\r") },
		{ K(""), K("the empty key") },
		{ K("empty value"), K("") },
		{ K("\0"), K("\0\0\0") },
	};
	size_t n = sizeof(kv) / sizeof(kv[0]);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(store_set(s, kv[i].k, kv[i].kl, kv[i].v,
		    kv[i].vl, 0, 0), STORE_OK);
	ck_assert_uint_eq(store_count(s), n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(has_value(s, kv[i].k, kv[i].kl, kv[i].v,
		    kv[i].vl), "key %zu", i);
		ck_assert_int_eq(store_exists(s, kv[i].k, kv[i].kl), 1);
	}
	/* Keys that differ after a NUL, or only in length, are distinct. */
	ck_assert_int_eq(store_exists(s, K("a\0")), 0);
	ck_assert_int_eq(store_exists(s, K("a\0b\0")), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(store_del(s, kv[i].k, kv[i].kl), 1);
		ck_assert_int_eq(store_del(s, kv[i].k, kv[i].kl), 0);
		ck_assert_int_eq(store_exists(s, kv[i].k, kv[i].kl), 0);
		ck_assert_int_eq(store_get(s, kv[i].k, kv[i].kl, NULL, NULL),
		    STORE_MISSING);
		/* The others are untouched. */
		for (size_t j = i + 1; j < n; j++)
			ck_assert(has_value(s, kv[j].k, kv[j].kl, kv[j].v,
			    kv[j].vl));
		ck_assert_uint_eq(store_count(s), n - i - 1);
	}
	store_free(s);
}
END_TEST

START_TEST(test_store_get_of_a_missing_key_never_calls_back)
{
	struct store *s = store_new(NULL);
	struct got g = { .calls = 0 };

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_get(s, K("nope"), copy_value, &g),
	    STORE_MISSING);
	ck_assert_int_eq(g.calls, 0);
	ck_assert_int_eq(store_set(s, K("yes"), K("1"), 0, 0), STORE_OK);
	ck_assert_int_eq(store_get(s, K("yes"), copy_value, &g), STORE_OK);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_str_eq(g.buf, "1");
	store_free(s);
}
END_TEST

START_TEST(test_store_nx_sets_only_absent_keys_and_xx_only_present_ones)
{
	struct store *s = store_new(NULL);

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_set(s, K("k"), K("v1"), STORE_XX, 0),
	    STORE_MISSING);
	ck_assert_int_eq(store_exists(s, K("k")), 0);
	ck_assert_int_eq(store_set(s, K("k"), K("v1"), STORE_NX, 0),
	    STORE_OK);
	ck_assert(has_value(s, K("k"), K("v1")));
	ck_assert_int_eq(store_set(s, K("k"), K("v2"), STORE_NX, 0),
	    STORE_EXISTS);
	ck_assert(has_value(s, K("k"), K("v1")));
	ck_assert_int_eq(store_set(s, K("k"), K("v3"), STORE_XX, 0),
	    STORE_OK);
	ck_assert(has_value(s, K("k"), K("v3")));
	ck_assert_uint_eq(store_count(s), 1);
	/* An expired key counts as absent for both. */
	ck_assert_int_eq(store_set(s, K("e"), K("old"), 0,
	    store_now_ms() - 1), STORE_OK);
	ck_assert_int_eq(store_set(s, K("e"), K("x"), STORE_XX, 0),
	    STORE_MISSING);
	ck_assert_int_eq(store_set(s, K("e"), K("new"), STORE_NX, 0),
	    STORE_OK);
	ck_assert(has_value(s, K("e"), K("new")));
	store_free(s);
}
END_TEST

START_TEST(test_store_overwrites_with_bigger_and_smaller_values)
{
	static const size_t sizes[] = { 1, 100, 10, 5000, 0, 3, 4096, 4095,
		64, 7 };
	size_t ov = entry_overhead();
	struct store *s = store_new(NULL);
	char *v = malloc(5000);
	uint64_t rnd = 42;

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill_random(&rnd, v, sizes[i]);
		ck_assert_int_eq(store_set(s, K("key"), v, sizes[i], 0, 0),
		    STORE_OK);
		ck_assert_msg(has_value(s, K("key"), v, sizes[i]),
		    "after writing %zu bytes", sizes[i]);
		ck_assert_uint_eq(store_count(s), 1);
		ck_assert_uint_eq(store_memory(s), ov + 3 + sizes[i]);
	}
	free(v);
	store_free(s);
}
END_TEST

START_TEST(test_store_works_with_any_stripe_count)
{
	static const unsigned counts[] = { 1, 2, 3, 64, 100, 1u << 20 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct store *s = new_store(0, counts[i]);
		char key[16];

		for (int k = 0; k < 200; k++)
			ck_assert_int_eq(store_set(s, key, (size_t)snprintf(
			    key, sizeof(key), "k%d", k), K("v"), 0, 0),
			    STORE_OK);
		ck_assert_uint_eq(store_count(s), 200);
		for (int k = 0; k < 200; k++)
			ck_assert(has_value(s, key, (size_t)snprintf(key,
			    sizeof(key), "k%d", k), K("v")));
		store_free(s);
	}
}
END_TEST

/* --- expiry ------------------------------------------------------------- */

START_TEST(test_store_key_past_its_deadline_is_missing_and_removed)
{
	struct store *s = store_new(NULL);
	int64_t past = store_now_ms() - 1, r = -1;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_set(s, K("g"), K("v"), 0, past), STORE_OK);
	ck_assert_int_eq(store_set(s, K("e"), K("v"), 0, past), STORE_OK);
	ck_assert_int_eq(store_set(s, K("d"), K("v"), 0, past), STORE_OK);
	ck_assert_int_eq(store_set(s, K("i"), K("41"), 0, past), STORE_OK);
	ck_assert_int_eq(store_set(s, K("live"), K("v"), 0, 0), STORE_OK);
	/* Stored but not yet touched: counted, as store.h says. */
	ck_assert_uint_eq(store_count(s), 5);

	ck_assert_int_eq(store_get(s, K("g"), NULL, NULL), STORE_MISSING);
	ck_assert_uint_eq(store_count(s), 4);
	ck_assert_int_eq(store_exists(s, K("e")), 0);
	ck_assert_uint_eq(store_count(s), 3);
	ck_assert_int_eq(store_del(s, K("d")), 0);
	ck_assert_uint_eq(store_count(s), 2);
	/* INCR sees the expired value as absent: 0 + 1, not 41 + 1. */
	ck_assert_int_eq(store_incrby(s, K("i"), 1, &r), STORE_OK);
	ck_assert_int_eq(r, 1);
	ck_assert_uint_eq(store_count(s), 2);
	ck_assert(has_value(s, K("live"), K("v")));
	store_free(s);
}
END_TEST

START_TEST(test_store_key_expires_at_its_deadline_and_not_before)
{
	struct store *s = store_new(NULL);
	int64_t deadline = store_now_ms() + 100, before, after;
	uint64_t give_up = now_ms() + 10000;
	enum store_result r;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_set(s, K("k"), K("v"), 0, deadline), STORE_OK);
	do {
		before = store_now_ms();
		r = store_get(s, K("k"), NULL, NULL);
		after = store_now_ms();
		/* Present only before the deadline; gone only after it. */
		if (r == STORE_OK)
			ck_assert_int_lt(before, deadline);
		else
			ck_assert_int_ge(after, deadline);
		if (r == STORE_OK)
			poll(NULL, 0, 5);	/* bounded by give_up */
	} while (r == STORE_OK && now_ms() < give_up);
	ck_assert_int_eq(r, STORE_MISSING);
	ck_assert_uint_eq(store_count(s), 0);
	store_free(s);
}
END_TEST

START_TEST(test_store_set_replaces_the_old_expiry)
{
	struct store *s = store_new(NULL);
	int64_t soon = store_now_ms() + 50;
	uint64_t give_up = now_ms() + 10000;

	ck_assert_ptr_nonnull(s);
	/* No expiry, then one already past: gone. */
	ck_assert_int_eq(store_set(s, K("a"), K("v"), 0, 0), STORE_OK);
	ck_assert_int_eq(store_set(s, K("a"), K("v"), 0, store_now_ms() - 1),
	    STORE_OK);
	ck_assert_int_eq(store_exists(s, K("a")), 0);
	/* An expiry, then none: still there after the first deadline. */
	ck_assert_int_eq(store_set(s, K("b"), K("v"), 0, soon), STORE_OK);
	ck_assert_int_eq(store_set(s, K("b"), K("w"), 0, 0), STORE_OK);
	while (store_now_ms() <= soon && now_ms() < give_up)
		poll(NULL, 0, 5);	/* waiting for the clock, bounded */
	ck_assert_int_gt(store_now_ms(), soon);
	ck_assert(has_value(s, K("b"), K("w")));
	store_free(s);
}
END_TEST

static void set_numbered(struct store *s, const char *prefix, int i,
    int64_t expire)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "%s%d", prefix, i);

	ck_assert_int_eq(store_set(s, key, (size_t)n, K("value"), 0, expire),
	    STORE_OK);
}

static int has_numbered(struct store *s, const char *prefix, int i)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "%s%d", prefix, i);

	return has_value(s, key, (size_t)n, K("value"));
}

START_TEST(test_store_sweep_removes_at_most_budget_and_in_the_end_all)
{
	struct store *s = store_new(NULL);
	int64_t past = store_now_ms() - 1;
	size_t removed = 0, r;
	long calls = 0;

	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < 1000; i++) {
		set_numbered(s, "dead:", i, past);
		set_numbered(s, "live:", i, 0);
	}
	ck_assert_uint_eq(store_sweep(s, 0), 0);
	ck_assert_uint_eq(store_count(s), 2000);
	r = store_sweep(s, 10);
	ck_assert_uint_le(r, 10);
	ck_assert_uint_gt(r, 0);
	removed += r;
	ck_assert_uint_eq(store_count(s), 2000 - removed);
	while (removed < 1000 && calls++ < 100000) {
		r = store_sweep(s, 7);
		ck_assert_uint_le(r, 7);
		removed += r;
		ck_assert_uint_eq(store_count(s), 2000 - removed);
	}
	ck_assert_uint_eq(removed, 1000);
	/* Nothing expired is left, and every live key is. */
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(store_sweep(s, 1000), 0);
	ck_assert_uint_eq(store_count(s), 1000);
	for (int i = 0; i < 1000; i++)
		ck_assert(has_numbered(s, "live:", i));
	store_free(s);
}
END_TEST

START_TEST(test_store_sweep_finds_the_few_expired_keys_among_many_live)
{
	struct store *s = store_new(NULL);
	int live = (int)test_size(20000, 5000);
	int64_t past = store_now_ms() - 1;
	size_t removed = 0, r;
	long calls = 0;

	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < live; i++) {
		set_numbered(s, "live:", i, 0);
		if (i % (live / 50) == 0)
			set_numbered(s, "dead:", i, past);
	}
	/* Budget 1 per call: the cursor must move on between calls, or
	 * this never ends. */
	while (removed < 50 && calls++ < 1000000) {
		r = store_sweep(s, 1);
		FAST_ASSERT(r <= 1, "%zu removed", r);
		removed += r;
	}
	ck_assert_uint_eq(removed, 50);
	ck_assert_uint_eq(store_count(s), (uint64_t)live);
	store_free(s);
}
END_TEST

/* --- growth ------------------------------------------------------------- */

static int numbered_key(char *buf, size_t size, size_t i)
{
	return snprintf(buf, size, "key:%zu", i);
}

static void fill_and_read_back(unsigned stripes, size_t n)
{
	struct store *s = new_store(0, stripes);
	char key[32], val[32];

	for (size_t i = 0; i < n; i++) {
		int kl = numbered_key(key, sizeof(key), i);
		int vl = snprintf(val, sizeof(val), "v%zu", i * 7);

		FAST_ASSERT(store_set(s, key, (size_t)kl, val, (size_t)vl,
		    0, 0) == STORE_OK, "key %zu", i);
		/* Read an older key now and then, while tables grow. */
		if (i % 64 == 0) {
			size_t j = i / 2;

			kl = numbered_key(key, sizeof(key), j);
			vl = snprintf(val, sizeof(val), "v%zu", j * 7);
			FAST_ASSERT(has_value(s, key, (size_t)kl, val,
			    (size_t)vl), "key %zu lost by insert %zu", j, i);
		}
	}
	ck_assert_uint_eq(store_count(s), n);
	for (size_t i = 0; i < n; i++) {
		int kl = numbered_key(key, sizeof(key), i);
		int vl = snprintf(val, sizeof(val), "v%zu", i * 7);

		FAST_ASSERT(has_value(s, key, (size_t)kl, val, (size_t)vl),
		    "key %zu", i);
	}
	ck_assert_int_eq(store_exists(s, K("key:-1")), 0);
	for (size_t i = 0; i < n; i += 2) {
		int kl = numbered_key(key, sizeof(key), i);

		FAST_ASSERT(store_del(s, key, (size_t)kl) == 1, "key %zu", i);
	}
	ck_assert_uint_eq(store_count(s), n / 2);
	for (size_t i = 1; i < n; i += 2) {
		int kl = numbered_key(key, sizeof(key), i);

		FAST_ASSERT(store_exists(s, key, (size_t)kl) == 1, "key %zu",
		    i);
	}
	store_free(s);
}

START_TEST(test_store_holds_a_million_keys_and_reads_each_back)
{
	fill_and_read_back(0, test_size(1000000, 200000));
}
END_TEST

START_TEST(test_store_one_stripe_grows_through_many_doublings)
{
	fill_and_read_back(1, test_size(1000000, 200000));
}
END_TEST

/* --- memory ------------------------------------------------------------- */

START_TEST(test_store_memory_follows_the_per_entry_formula)
{
	size_t ov = entry_overhead(), want = 0;
	struct store *s = store_new(NULL);
	char big[3000];
	int64_t r;

	ck_assert_ptr_nonnull(s);
	/* At least a chain link and an expiry per key. */
	ck_assert_uint_ge(ov, sizeof(void *) + sizeof(int64_t));
	ck_assert_uint_eq(store_memory(s), 0);
	memset(big, 'x', sizeof(big));
	for (size_t i = 0; i < 100; i++) {
		char key[32];
		int kl = snprintf(key, sizeof(key), "mem:%zu", i);

		ck_assert_int_eq(store_set(s, key, (size_t)kl, big, i * 29,
		    0, 0), STORE_OK);
		want += ov + (size_t)kl + i * 29;
		ck_assert_uint_eq(store_memory(s), want);
	}
	/* Overwrites move the total by the difference. */
	ck_assert_int_eq(store_set(s, K("mem:5"), big, 3000, 0, 0), STORE_OK);
	want += 3000 - 5 * 29;
	ck_assert_uint_eq(store_memory(s), want);
	ck_assert_int_eq(store_set(s, K("mem:5"), big, 1, 0, 0), STORE_OK);
	want -= 3000 - 1;
	ck_assert_uint_eq(store_memory(s), want);
	/* INCR from "9" to "10" grows the value by a byte. */
	ck_assert_int_eq(store_set(s, K("n"), K("9"), 0, 0), STORE_OK);
	want += ov + 1 + 1;
	ck_assert_int_eq(store_incrby(s, K("n"), 1, &r), STORE_OK);
	want += 1;
	ck_assert_uint_eq(store_memory(s), want);
	/* Deletes, lazy expiry and sweeps give it back. */
	ck_assert_int_eq(store_del(s, K("mem:7")), 1);
	want -= ov + 5 + 7 * 29;
	ck_assert_uint_eq(store_memory(s), want);
	ck_assert_int_eq(store_set(s, K("gone"), K("abc"), 0,
	    store_now_ms() - 1), STORE_OK);
	ck_assert_uint_eq(store_memory(s), want + ov + 4 + 3);
	ck_assert_int_eq(store_exists(s, K("gone")), 0);
	ck_assert_uint_eq(store_memory(s), want);
	ck_assert_int_eq(store_set(s, K("swept"), K("abc"), 0,
	    store_now_ms() - 1), STORE_OK);
	ck_assert_uint_eq(store_memory(s), want + ov + 5 + 3);
	for (int i = 0; i < 100000 && store_sweep(s, 1) == 0; i++)
		;
	ck_assert_uint_eq(store_memory(s), want);
	store_flush(s);
	ck_assert_uint_eq(store_memory(s), 0);
	ck_assert_uint_eq(store_count(s), 0);
	/* Still usable after a flush. */
	ck_assert_int_eq(store_set(s, K("again"), K("v"), 0, 0), STORE_OK);
	ck_assert_uint_eq(store_memory(s), ov + 6);
	store_free(s);
}
END_TEST

START_TEST(test_store_memory_returns_to_zero_after_deleting_every_key)
{
	struct store *s = new_store(0, 4);
	size_t n = test_size(50000, 20000);
	char key[32];

	for (size_t i = 0; i < n; i++)
		FAST_ASSERT(store_set(s, key, (size_t)numbered_key(key,
		    sizeof(key), i), key, i % 20, 0, 0) == STORE_OK,
		    "key %zu", i);
	ck_assert_uint_gt(store_memory(s), 0);
	for (size_t i = 0; i < n; i++)
		FAST_ASSERT(store_del(s, key, (size_t)numbered_key(key,
		    sizeof(key), i)) == 1, "key %zu", i);
	ck_assert_uint_eq(store_memory(s), 0);
	ck_assert_uint_eq(store_count(s), 0);
	store_free(s);
}
END_TEST

START_TEST(test_store_max_memory_refuses_growth_only)
{
	size_t ov = entry_overhead(), max = 10 * (ov + 2 + 8);
	struct store *s = new_store(max, 4);
	char key[8];
	int64_t r = -1;

	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(store_set(s, key, (size_t)snprintf(key,
		    sizeof(key), "k%d", i), K("12345678"), 0, 0), STORE_OK);
	ck_assert_uint_eq(store_memory(s), max);
	/* Full: a new key, a bigger value, an INCR that creates a key. */
	ck_assert_int_eq(store_set(s, K("kx"), K("1"), 0, 0), STORE_OOM);
	ck_assert_int_eq(store_exists(s, K("kx")), 0);
	ck_assert_int_eq(store_set(s, K("k0"), K("123456789"), 0, 0),
	    STORE_OOM);
	ck_assert(has_value(s, K("k0"), K("12345678")));
	ck_assert_int_eq(store_incrby(s, K("kn"), 1, &r), STORE_OOM);
	ck_assert_int_eq(r, -1);
	ck_assert_uint_eq(store_count(s), 10);
	ck_assert_uint_eq(store_memory(s), max);
	/* A shrinking overwrite works and frees 4 bytes, which a growing
	 * one may then take exactly, and not one byte more. */
	ck_assert_int_eq(store_set(s, K("k0"), K("1234"), 0, 0), STORE_OK);
	ck_assert_uint_eq(store_memory(s), max - 4);
	ck_assert_int_eq(store_set(s, K("k1"), K("1234567890123"), 0, 0),
	    STORE_OOM);
	ck_assert_int_eq(store_set(s, K("k1"), K("123456789012"), 0, 0),
	    STORE_OK);
	ck_assert_uint_eq(store_memory(s), max);
	/* "12345678" + 1 is one byte longer: refused; - 1 is not. */
	ck_assert_int_eq(store_incrby(s, K("k2"), 100000000, &r), STORE_OOM);
	ck_assert_int_eq(store_incrby(s, K("k2"), -1, &r), STORE_OK);
	ck_assert_int_eq(r, 12345677);
	/* Reads work; a delete makes room for a new key. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(store_exists(s, key, (size_t)snprintf(key,
		    sizeof(key), "k%d", i)), 1);
	ck_assert_int_eq(store_del(s, K("k3")), 1);
	ck_assert_int_eq(store_set(s, K("kx"), K("abcdefgh"), 0, 0),
	    STORE_OK);
	ck_assert_uint_le(store_memory(s), max);
	store_flush(s);
	ck_assert_uint_eq(store_memory(s), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(store_set(s, key, (size_t)snprintf(key,
		    sizeof(key), "n%d", i), K("12345678"), 0, 0), STORE_OK);
	store_free(s);
}
END_TEST

START_TEST(test_store_impossible_sizes_are_refused_as_oom)
{
	struct store *s = store_new(NULL);
	char v[16] = "never read";

	ck_assert_ptr_nonnull(s);
	/* No allocation is even tried: the size sums would overflow.  (A
	 * key is hashed before anything else, so it cannot lie about its
	 * length.) */
	ck_assert_int_eq(store_set(s, K("k"), v, SIZE_MAX - 8, 0, 0),
	    STORE_OOM);
	ck_assert_int_eq(store_set(s, K("k"), v, SIZE_MAX / 4 + 1, 0, 0),
	    STORE_OOM);
	ck_assert_uint_eq(store_count(s), 0);
	ck_assert_uint_eq(store_memory(s), 0);
	store_free(s);
}
END_TEST

START_TEST(test_store_malloc_failure_is_oom_and_changes_nothing)
{
	struct store *s = store_new(NULL);
	char v[16] = "never read";

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_set(s, K("k"), K("small"), 0, 0), STORE_OK);
	/* 64 TiB: more than this machine can back, so malloc fails. */
	ck_assert_int_eq(store_set(s, K("k"), v, (size_t)1 << 46, 0, 0),
	    STORE_OOM);
	ck_assert_int_eq(store_set(s, K("k2"), v, (size_t)1 << 46, 0, 0),
	    STORE_OOM);
	ck_assert(has_value(s, K("k"), K("small")));
	ck_assert_uint_eq(store_count(s), 1);
	store_free(s);
}
END_TEST

/* Why the malloc-failure test cannot run here, or NULL. */
static const char *no_malloc_failure(void)
{
	FILE *f;
	int mode = -1;

	if (TEST_SANITIZED)
		return "sanitizer allocators abort on huge sizes";
	if (sizeof(size_t) < 8)
		return "needs a 64-bit size_t";
	f = fopen("/proc/sys/vm/overcommit_memory", "r");
	if (f) {
		if (fscanf(f, "%d", &mode) != 1)
			mode = -1;
		fclose(f);
	}
	/* Mode 1 would hand out 64 TiB and fault on the copy. */
	if (mode != 0 && mode != 2)
		return "vm.overcommit_memory is not 0 or 2";
	return NULL;
}

/* --- incrby ------------------------------------------------------------- */

START_TEST(test_store_incrby_of_a_missing_key_starts_at_zero)
{
	struct store *s = store_new(NULL);
	int64_t r = 99;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_incrby(s, K("n"), 5, &r), STORE_OK);
	ck_assert_int_eq(r, 5);
	ck_assert(has_value(s, K("n"), K("5")));
	ck_assert_int_eq(store_incrby(s, K("n"), -7, &r), STORE_OK);
	ck_assert_int_eq(r, -2);
	ck_assert(has_value(s, K("n"), K("-2")));
	ck_assert_int_eq(store_incrby(s, K("n"), 2, &r), STORE_OK);
	ck_assert_int_eq(r, 0);
	ck_assert(has_value(s, K("n"), K("0")));
	ck_assert_int_eq(store_incrby(s, K("z"), 0, &r), STORE_OK);
	ck_assert_int_eq(r, 0);
	ck_assert(has_value(s, K("z"), K("0")));
	store_free(s);
}
END_TEST

START_TEST(test_store_incrby_reads_integers_by_redis_rules)
{
	static const struct {
		const char *v;
		size_t len;
		int64_t want;
	} good[] = {
		{ K("0"), 0 },
		{ K("7"), 7 },
		{ K("-1"), -1 },
		{ K("10"), 10 },
		{ K("1234567890"), 1234567890 },
		{ K("9223372036854775807"), INT64_MAX },
		{ K("-9223372036854775808"), INT64_MIN },
	};
	static const struct {
		const char *v;
		size_t len;
	} bad[] = {
		{ K("") }, { K("+1") }, { K(" 1") }, { K("1 ") }, { K("01") },
		{ K("00") }, { K("-0") }, { K("-") }, { K("--1") },
		{ K("1.0") }, { K("1e3") }, { K("0x10") }, { K("12a") },
		{ K("1\0") }, { K("\0" "1") }, { K("1\r\n") },
		{ K("9223372036854775808") }, { K("-9223372036854775809") },
		{ K("18446744073709551616") }, { K("99999999999999999999") },
		{ K("00000000000000000001") }, { K("123456789012345678901") },
		{ K("-01") }, { K("abc") },
	};
	struct store *s = store_new(NULL);
	char buf[32];

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t r = 42;

		ck_assert_int_eq(store_set(s, K("n"), good[i].v, good[i].len,
		    0, 0), STORE_OK);
		ck_assert_msg(store_incrby(s, K("n"), 0, &r) == STORE_OK,
		    "'%s' refused", good[i].v);
		ck_assert_int_eq(r, good[i].want);
		/* Written back in the same, canonical, form. */
		ck_assert(has_value(s, K("n"), good[i].v, good[i].len));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t r = 42;

		ck_assert_int_eq(store_set(s, K("n"), bad[i].v, bad[i].len,
		    0, 0), STORE_OK);
		snprintf(buf, sizeof(buf), "%.*s", (int)bad[i].len, bad[i].v);
		ck_assert_msg(store_incrby(s, K("n"), 1, &r) ==
		    STORE_NOT_INTEGER, "'%s' taken", buf);
		ck_assert_int_eq(r, 42);
		ck_assert(has_value(s, K("n"), bad[i].v, bad[i].len));
	}
	store_free(s);
}
END_TEST

/* Sets "n" to @v, then expects INCRBY @delta to give @want. */
static void expect_incr(struct store *s, const char *v, size_t vl,
    int64_t delta, enum store_result want)
{
	int64_t r = 42;

	ck_assert_int_eq(store_set(s, K("n"), v, vl, 0, 0), STORE_OK);
	ck_assert_int_eq(store_incrby(s, K("n"), delta, &r), want);
	if (want != STORE_OK) {
		ck_assert_int_eq(r, 42);
		ck_assert(has_value(s, K("n"), v, vl));
	}
}

START_TEST(test_store_incrby_detects_overflow_at_both_ends)
{
	struct store *s = store_new(NULL);
	int64_t r;

	ck_assert_ptr_nonnull(s);
	expect_incr(s, K("9223372036854775807"), 1, STORE_OVERFLOW);
	expect_incr(s, K("9223372036854775807"), INT64_MAX, STORE_OVERFLOW);
	expect_incr(s, K("9223372036854775807"), 0, STORE_OK);
	expect_incr(s, K("9223372036854775806"), 1, STORE_OK);
	ck_assert(has_value(s, K("n"), K("9223372036854775807")));
	expect_incr(s, K("-9223372036854775808"), -1, STORE_OVERFLOW);
	expect_incr(s, K("-9223372036854775808"), INT64_MIN, STORE_OVERFLOW);
	expect_incr(s, K("-9223372036854775807"), -1, STORE_OK);
	ck_assert(has_value(s, K("n"), K("-9223372036854775808")));
	expect_incr(s, K("1"), INT64_MAX, STORE_OVERFLOW);
	expect_incr(s, K("-1"), INT64_MIN, STORE_OVERFLOW);
	expect_incr(s, K("-1"), INT64_MAX, STORE_OK);
	ck_assert(has_value(s, K("n"), K("9223372036854775806")));
	expect_incr(s, K("9223372036854775807"), INT64_MIN, STORE_OK);
	ck_assert(has_value(s, K("n"), K("-1")));
	/* From a missing key, the extremes themselves. */
	ck_assert_int_eq(store_incrby(s, K("lo"), INT64_MIN, &r), STORE_OK);
	ck_assert_int_eq(r, INT64_MIN);
	ck_assert(has_value(s, K("lo"), K("-9223372036854775808")));
	ck_assert_int_eq(store_incrby(s, K("lo"), -1, &r), STORE_OVERFLOW);
	ck_assert_int_eq(store_incrby(s, K("hi"), INT64_MAX, &r), STORE_OK);
	ck_assert_int_eq(r, INT64_MAX);
	ck_assert_int_eq(store_incrby(s, K("hi"), 1, &r), STORE_OVERFLOW);
	store_free(s);
}
END_TEST

START_TEST(test_store_incrby_keeps_the_expiry)
{
	struct store *s = store_new(NULL);
	int64_t deadline = store_now_ms() + 100, r = 0;
	uint64_t give_up = now_ms() + 10000;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(store_set(s, K("n"), K("5"), 0, deadline), STORE_OK);
	ck_assert_int_eq(store_incrby(s, K("n"), 1, &r), STORE_OK);
	if (store_now_ms() < deadline)
		ck_assert_int_eq(r, 6);
	/* "999" + 1 needs a bigger value: the expiry moves with it. */
	ck_assert_int_eq(store_set(s, K("m"), K("999"), 0, deadline),
	    STORE_OK);
	ck_assert_int_eq(store_incrby(s, K("m"), 1, &r), STORE_OK);
	while ((store_exists(s, K("n")) || store_exists(s, K("m"))) &&
	    now_ms() < give_up)
		poll(NULL, 0, 5);	/* waiting for the clock, bounded */
	ck_assert_int_eq(store_exists(s, K("n")), 0);
	ck_assert_int_eq(store_exists(s, K("m")), 0);
	ck_assert_int_ge(store_now_ms(), deadline);
	store_free(s);
}
END_TEST

/* --- concurrency -------------------------------------------------------- */

#define THREADS 4
#define MIXED_KEYS 1000

struct mixed {
	struct store *s;
	int id;
	size_t ops;
	atomic_int *errors;
};

static void *mixed_worker(void *arg)
{
	struct mixed *m = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(m->id + 1);

	for (size_t i = 0; i < m->ops; i++) {
		char key[32], val[64], prefix[40];
		struct got g = { .calls = 0 };
		unsigned char pick[4];
		int kl, vl, k, bad = 0;
		enum store_result r;
		int64_t n;

		fill_random(&rnd, pick, sizeof(pick));
		k = (pick[0] | pick[1] << 8) % MIXED_KEYS;
		kl = snprintf(key, sizeof(key), "key:%d", k);
		switch (pick[2] % 8) {
		case 0: case 1:
			vl = snprintf(val, sizeof(val), "v:%s:%d:%zu", key,
			    m->id, i);
			bad = store_set(m->s, key, (size_t)kl, val,
			    (size_t)vl, 0, pick[3] % 8 ? 0 :
			    store_now_ms() - 1) != STORE_OK;
			break;
		case 2: case 3: case 4:
			r = store_get(m->s, key, (size_t)kl, copy_value, &g);
			if (r == STORE_OK) {
				/* The key's own string, or a number. */
				snprintf(prefix, sizeof(prefix), "v:%s:", key);
				bad = g.calls != 1 || (strncmp(g.buf, prefix,
				    strlen(prefix)) != 0 &&
				    strspn(g.buf, "-0123456789") != g.len);
			} else {
				bad = r != STORE_MISSING || g.calls != 0;
			}
			break;
		case 5:
			store_del(m->s, key, (size_t)kl);
			break;
		default:
			r = store_incrby(m->s, key, (size_t)kl,
			    (int64_t)(pick[3] % 5) - 2, &n);
			bad = r != STORE_OK && r != STORE_NOT_INTEGER;
			break;
		}
		if (bad)
			atomic_fetch_add(m->errors, 1);
	}
	return NULL;
}

START_TEST(test_store_mixed_operations_from_threads_stay_consistent)
{
	/* Few stripes, so that threads meet on locks and tables grow while
	 * they do. */
	struct store *s = new_store(0, 4);
	size_t ov = entry_overhead(), want = 0;
	struct mixed m[THREADS];
	pthread_t t[THREADS];
	atomic_int errors = 0;
	uint64_t present = 0;

	for (int i = 0; i < THREADS; i++) {
		m[i] = (struct mixed){ s, i, test_size(200000, 50000),
			&errors };
		ck_assert_int_eq(pthread_create(&t[i], NULL, mixed_worker,
		    &m[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&errors), 0);
	/* Afterwards the count, the keys and the memory agree.  exists()
	 * first removes the expired keys that count() would include. */
	for (int k = 0; k < MIXED_KEYS; k++) {
		char key[32];
		int kl = snprintf(key, sizeof(key), "key:%d", k);
		struct got g = { .calls = 0 };

		if (!store_exists(s, key, (size_t)kl))
			continue;
		present++;
		ck_assert_int_eq(store_get(s, key, (size_t)kl, copy_value,
		    &g), STORE_OK);
		want += ov + (size_t)kl + g.len;
	}
	ck_assert_uint_gt(present, 0);
	ck_assert_uint_eq(store_count(s), present);
	ck_assert_uint_eq(store_memory(s), want);
	store_flush(s);
	ck_assert_uint_eq(store_count(s), 0);
	ck_assert_uint_eq(store_memory(s), 0);
	store_free(s);
}
END_TEST

struct incrs {
	struct store *s;
	size_t each;
	size_t total;
	atomic_uchar *seen;	/* per result value */
	atomic_int *errors;
};

static void *incr_worker(void *arg)
{
	struct incrs *c = arg;

	for (size_t i = 0; i < c->each; i++) {
		int64_t r;

		if (store_incrby(c->s, K("counter"), 1, &r) != STORE_OK ||
		    r < 1 || (uint64_t)r > c->total)
			atomic_fetch_add(c->errors, 1);
		else
			atomic_fetch_add(&c->seen[r], 1);
	}
	return NULL;
}

START_TEST(test_store_concurrent_incrs_on_one_key_are_exact)
{
	struct store *s = store_new(NULL);
	size_t each = test_size(1000000, 100000) / THREADS;
	struct incrs c = { s, each, each * THREADS, NULL, NULL };
	pthread_t t[THREADS];
	atomic_int errors = 0;
	char want[32];

	ck_assert_ptr_nonnull(s);
	c.seen = calloc(c.total + 1, sizeof(*c.seen));
	ck_assert_ptr_nonnull(c.seen);
	c.errors = &errors;
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, incr_worker, &c),
		    0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&errors), 0);
	/* Every value from 1 to the total was handed out exactly once. */
	for (size_t v = 1; v <= c.total; v++)
		FAST_ASSERT(c.seen[v] == 1, "result %zu seen %d times", v,
		    c.seen[v]);
	snprintf(want, sizeof(want), "%zu", c.total);
	ck_assert(has_value(s, K("counter"), want, strlen(want)));
	free(c.seen);
	store_free(s);
}
END_TEST

struct sweeping {
	struct store *s;
	int id;
	int keys;
	atomic_int *writers_left;
	atomic_size_t *removed;
};

static void *expired_writer(void *arg)
{
	struct sweeping *w = arg;
	int64_t past = store_now_ms() - 1;

	for (int i = 0; i < w->keys; i++) {
		char key[32];
		int kl = snprintf(key, sizeof(key), "w%d:%d", w->id, i);

		store_set(w->s, key, (size_t)kl, K("v"), 0, past);
	}
	atomic_fetch_sub(w->writers_left, 1);
	return NULL;
}

static void *sweeper(void *arg)
{
	struct sweeping *w = arg;

	while (atomic_load(w->writers_left) > 0) {
		size_t n = store_sweep(w->s, 5);

		if (n > 5)	/* over budget: make the total wrong */
			n += 1000000;
		atomic_fetch_add(w->removed, n);
	}
	return NULL;
}

START_TEST(test_store_concurrent_sweeps_remove_each_expired_key_once)
{
	struct store *s = new_store(0, 8);
	int keys = (int)test_size(50000, 10000);
	atomic_int writers_left = 2;
	atomic_size_t removed = 0;
	struct sweeping w[4];
	pthread_t t[4];
	long calls = 0;
	size_t total;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct sweeping){ s, i, keys, &writers_left,
			&removed };
		ck_assert_int_eq(pthread_create(&t[i], NULL,
		    i < 2 ? expired_writer : sweeper, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	while (store_count(s) > 0 && calls++ < 1000000)
		atomic_fetch_add(&removed, store_sweep(s, 100));
	total = atomic_load(&removed);
	ck_assert_uint_eq(store_count(s), 0);
	ck_assert_uint_eq(total, (size_t)keys * 2);
	ck_assert_uint_eq(store_memory(s), 0);
	store_free(s);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("basics");

	tcase_add_test(tc, test_store_round_trips_binary_keys_and_values);
	tcase_add_test(tc, test_store_get_of_a_missing_key_never_calls_back);
	tcase_add_test(tc,
	    test_store_nx_sets_only_absent_keys_and_xx_only_present_ones);
	tcase_add_test(tc,
	    test_store_overwrites_with_bigger_and_smaller_values);
	tcase_add_test(tc, test_store_works_with_any_stripe_count);
	suite_add_tcase(s, tc);

	tc = tcase_create("expiry");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc,
	    test_store_key_past_its_deadline_is_missing_and_removed);
	tcase_add_test(tc,
	    test_store_key_expires_at_its_deadline_and_not_before);
	tcase_add_test(tc, test_store_set_replaces_the_old_expiry);
	tcase_add_test(tc,
	    test_store_sweep_removes_at_most_budget_and_in_the_end_all);
	tcase_add_test(tc,
	    test_store_sweep_finds_the_few_expired_keys_among_many_live);
	suite_add_tcase(s, tc);

	tc = tcase_create("growth");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    test_store_holds_a_million_keys_and_reads_each_back);
	tcase_add_test(tc, test_store_one_stripe_grows_through_many_doublings);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_memory_follows_the_per_entry_formula);
	tcase_add_test(tc,
	    test_store_memory_returns_to_zero_after_deleting_every_key);
	tcase_add_test(tc, test_store_max_memory_refuses_growth_only);
	tcase_add_test(tc, test_store_impossible_sizes_are_refused_as_oom);
	test_add_or_skip(tc,
	    test_store_malloc_failure_is_oom_and_changes_nothing,
	    no_malloc_failure());
	suite_add_tcase(s, tc);

	tc = tcase_create("incrby");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_incrby_of_a_missing_key_starts_at_zero);
	tcase_add_test(tc, test_store_incrby_reads_integers_by_redis_rules);
	tcase_add_test(tc, test_store_incrby_detects_overflow_at_both_ends);
	tcase_add_test(tc, test_store_incrby_keeps_the_expiry);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    test_store_mixed_operations_from_threads_stay_consistent);
	tcase_add_test(tc, test_store_concurrent_incrs_on_one_key_are_exact);
	tcase_add_test(tc,
	    test_store_concurrent_sweeps_remove_each_expired_key_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(store_suite());
}
