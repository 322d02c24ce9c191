/*
 * TEST-ONLY: a deliberately simple implementation of src/store.h, one
 * mutex over one fixed hash table, so that the resp tests and the fuzz
 * target can run before the real store (src/store.c, on the store
 * branch) is merged.  The Makefile links it into tests only, and only
 * while src/store.c does not exist; it is never linked into echoserver.
 * It keeps store.h's semantics (expiry, NX/XX, INCR's rules, memory
 * accounting) but none of its design: no stripes, no incremental growth.
 */
#include "store.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIMPLE_BUCKETS 1024
#define SIMPLE_OVERHEAD 64	/* accounted per entry, as store.h says */

struct entry {
	struct entry *next;
	char *key, *value;
	size_t klen, vlen;
	int64_t expire_ms;	/* 0: none */
};

struct store {
	pthread_mutex_t lock;
	struct entry *bucket[SIMPLE_BUCKETS];
	size_t max_memory, memory;
	uint64_t count;
};

int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct store *store_new(const struct store_options *o)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->max_memory = o ? o->max_memory : 0;
	return s;
}

static size_t entry_size(size_t klen, size_t vlen)
{
	return klen + vlen + SIMPLE_OVERHEAD;
}

static void entry_free(struct store *s, struct entry *e)
{
	s->memory -= entry_size(e->klen, e->vlen);
	s->count--;
	free(e->key);
	free(e->value);
	free(e);
}

static void flush_locked(struct store *s)
{
	size_t i;

	for (i = 0; i < SIMPLE_BUCKETS; i++)
		while (s->bucket[i]) {
			struct entry *e = s->bucket[i];

			s->bucket[i] = e->next;
			entry_free(s, e);
		}
}

void store_free(struct store *s)
{
	if (!s)
		return;
	flush_locked(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static size_t hash(const char *key, size_t klen)
{
	size_t h = 5381, i;

	for (i = 0; i < klen; i++)
		h = h * 33 + (unsigned char)key[i];
	return h % SIMPLE_BUCKETS;
}

/* The live entry for @key, removing it if expired; *@link is where it
 * hangs. */
static struct entry *find(struct store *s, const char *key, size_t klen,
    struct entry ***link)
{
	struct entry **l = &s->bucket[hash(key, klen)];

	for (; *l; l = &(*l)->next) {
		struct entry *e = *l;

		if (e->klen != klen || (klen && memcmp(e->key, key, klen)))
			continue;
		if (e->expire_ms && e->expire_ms <= store_now_ms()) {
			*l = e->next;
			entry_free(s, e);
			break;
		}
		*link = l;
		return e;
	}
	*link = l;
	return NULL;
}

enum store_result store_get(struct store *s, const char *key, size_t klen,
    store_value_fn *fn, void *arg)
{
	struct entry **l, *e;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, klen, &l);
	if (e)
		fn(arg, e->value, e->vlen);
	pthread_mutex_unlock(&s->lock);
	return e ? STORE_OK : STORE_MISSING;
}

static void *dup_bytes(const char *p, size_t n)
{
	char *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* Sets @key's value with @s locked; @e is its entry or NULL. */
static enum store_result set_locked(struct store *s, struct entry *e,
    const char *key, size_t klen, const char *value, size_t vlen,
    int64_t expire_ms)
{
	size_t old = e ? entry_size(klen, e->vlen) : 0;
	size_t want = entry_size(klen, vlen);
	char *v;

	if (s->max_memory && want > old &&
	    s->memory - old + want > s->max_memory)
		return STORE_OOM;
	v = dup_bytes(value, vlen);
	if (!v)
		return STORE_OOM;
	if (!e) {
		struct entry **b = &s->bucket[hash(key, klen)];

		e = calloc(1, sizeof(*e));
		if (e)
			e->key = dup_bytes(key, klen);
		if (!e || !e->key) {
			free(e);
			free(v);
			return STORE_OOM;
		}
		e->klen = klen;
		e->next = *b;
		*b = e;
		s->count++;
	} else {
		free(e->value);
	}
	s->memory = s->memory - old + want;
	e->value = v;
	e->vlen = vlen;
	e->expire_ms = expire_ms;
	return STORE_OK;
}

enum store_result store_set(struct store *s, const char *key, size_t klen,
    const char *value, size_t vlen, unsigned flags, int64_t expire_ms)
{
	enum store_result r;
	struct entry **l, *e;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, klen, &l);
	if ((flags & STORE_NX) && e)
		r = STORE_EXISTS;
	else if ((flags & STORE_XX) && !e)
		r = STORE_MISSING;
	else
		r = set_locked(s, e, key, klen, value, vlen, expire_ms);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_del(struct store *s, const char *key, size_t klen)
{
	struct entry **l, *e;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, klen, &l);
	if (e) {
		*l = e->next;
		entry_free(s, e);
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

int store_exists(struct store *s, const char *key, size_t klen)
{
	struct entry **l, *e;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, klen, &l);
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

/* redis's rule for an integer value: decimal, no '+', no leading zeros
 * or blanks, within int64. */
static int parse_int64(const char *p, size_t n, int64_t *out)
{
	uint64_t v = 0, lim = INT64_MAX;
	size_t i = 0;
	int neg = 0;

	if (n == 0 || n > 20)
		return 0;
	if (n == 1 && p[0] == '0') {
		*out = 0;
		return 1;
	}
	if (p[0] == '-') {
		neg = 1;
		i = 1;
		lim = (uint64_t)INT64_MAX + 1;
	}
	if (i == n || p[i] < '1' || p[i] > '9')
		return 0;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' ||
		    v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

enum store_result store_incrby(struct store *s, const char *key,
    size_t klen, int64_t delta, int64_t *result)
{
	enum store_result r = STORE_OK;
	struct entry **l, *e;
	int64_t v = 0;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, klen, &l);
	if (e && !parse_int64(e->value, e->vlen, &v))
		r = STORE_NOT_INTEGER;
	else if ((delta > 0 && v > INT64_MAX - delta) ||
	    (delta < 0 && v < INT64_MIN - delta))
		r = STORE_OVERFLOW;
	if (r == STORE_OK) {
		char buf[24];
		int n;

		v += delta;
		n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
		r = set_locked(s, e, key, klen, buf, (size_t)n,
		    e ? e->expire_ms : 0);
		if (r == STORE_OK)
			*result = v;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint64_t store_count(struct store *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t store_memory(struct store *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->memory;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void store_flush(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

size_t store_sweep(struct store *s, size_t budget)
{
	int64_t now = store_now_ms();
	size_t removed = 0, i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < SIMPLE_BUCKETS && removed < budget; i++) {
		struct entry **l = &s->bucket[i];

		while (*l && removed < budget) {
			struct entry *e = *l;

			if (e->expire_ms && e->expire_ms <= now) {
				*l = e->next;
				entry_free(s, e);
				removed++;
			} else {
				l = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
	return removed;
}
