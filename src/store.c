/*
 * The striped key-value store; see store.h for the threads, the growth,
 * the expiry and the memory rules.  This file adds how: a seeded
 * multiply-fold hash picks the stripe from its top bits and the bucket
 * from its low ones, each stripe grows by moving a few buckets per call,
 * and each key is one allocation holding its header, key and value.
 *
 * DESIGN
 * Hash.  key_hash() reads the key eight bytes at a time and folds each
 * pair of words through a 64 x 64 -> 128 bit multiply (the high and low
 * halves xored), the mixing step of wyhash and friends, written here.  The
 * seed is random per store, which makes collisions hard to plan from
 * outside without claiming the hash is a keyed PRF.  Bits 48..63 choose
 * the stripe (so at most 65536 stripes) and bits 0..31 the bucket, so the
 * two never share bits; an entry keeps bits 0..31 so that it can move to
 * a bigger table without hashing its key again.
 *
 * Growth.  A stripe starts with INITIAL_BUCKETS buckets.  When an insert
 * takes its entries past one per bucket, a table twice the size is
 * allocated beside the old one; new keys go into the new table, lookups
 * look in both, and every key operation or sweep that locks the stripe
 * first moves GROW_STEP buckets of the old table across.  Moving the S
 * old buckets thus takes S / GROW_STEP calls, during which at most
 * S / GROW_STEP keys arrive, so the new table of 2S buckets is at most
 * 1.25 full when the old one is freed, and a migration never has to wait
 * for the previous one.  If the bigger table cannot be allocated, the
 * stripe keeps its chains longer and tries again at the next insert.
 * Tables never shrink, except that store_flush() starts them afresh.
 *
 * Memory.  A key costs ENTRY_OVERHEAD + key bytes + value bytes.  Each
 * stripe keeps its own total under its lock, so writes share no counter
 * and store_memory() is their exact sum.  Only with a max_memory does a
 * write that grows the total also reserve the growth in s->charged, one
 * relaxed atomic compare-and-swap, which is what makes the limit exact
 * across stripes; writes that shrink give bytes back to it.
 *
 * Sweeps.  The sweep cursor (stripe, bucket position) has its own mutex,
 * taken before a stripe lock and by nothing else, so it cannot deadlock;
 * two sweeps simply take turns.  A position names bucket i of the old
 * table and, while the stripe grows, bucket i of the new one.  A growing
 * stripe moves old bucket j to new buckets j and j + S, never below j, so
 * a pass from position 0 to the end still meets every key that was there
 * when it began, whatever grows meanwhile.
 */
#include "store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_STRIPES 64
#define MAX_STRIPES 65536	/* the stripe comes from hash bits 48..63 */
#define INITIAL_BUCKETS 16	/* per stripe; a power of two */
#define GROW_STEP 4		/* old buckets moved per call while growing */
/* Tables stop doubling here: the bucket comes from 32 hash bits. */
#define MAX_BUCKET_MASK ((size_t)UINT32_MAX >> 1)

/*
 * A sweep inspects at most SWEEP_POSITIONS_PER_KEY bucket positions per
 * key of its budget, and never more than one pass over the store, so
 * that a store of live keys costs a sweep a bounded walk, not the whole
 * table.  It drops the stripe lock every SWEEP_CHUNK positions, so that
 * a big budget does not keep workers off one stripe for long.
 */
#define SWEEP_POSITIONS_PER_KEY 16
#define SWEEP_CHUNK 64

/* Keys and values past this are refused as STORE_OOM, so that no size
 * sum below can overflow. */
#define MAX_PART (SIZE_MAX / 4)

struct entry {
	struct entry *next;	/* the bucket's chain */
	int64_t expire;		/* store_now_ms() deadline; 0: none */
	size_t vlen;		/* value bytes */
	size_t vcap;		/* value bytes the allocation has room for */
	uint32_t hash;		/* bits 0..31 of the key's hash */
	uint32_t klen;
	char data[];		/* key, value, NUL */
};

/* What a key costs beside its bytes: its header and the value's NUL,
 * rounded up to malloc's 16-byte granule. */
#define ENTRY_OVERHEAD ((sizeof(struct entry) + 1 + 15) & ~(size_t)15)

struct table {
	struct entry **bucket;	/* NULL: no table */
	size_t mask;		/* buckets - 1 */
	size_t used;		/* entries */
};

struct stripe {
	_Alignas(64) pthread_mutex_t lock;	/* guards all below; its own
						 * cache line(s) */
	struct table t[2];	/* t[1]: the bigger table while growing */
	size_t moved;		/* while growing: t[0] buckets below this
				 * are empty, moved to t[1] */
	size_t memory;		/* bytes accounted to this stripe's keys */
};

struct store {
	struct stripe *stripe;
	unsigned mask;		/* stripes - 1 */
	uint64_t seed;
	size_t max_memory;	/* 0: none; s->charged unused */
	atomic_size_t charged;	/* bytes reserved against max_memory */

	pthread_mutex_t sweep_lock;	/* guards the cursor */
	unsigned sweep_stripe;
	size_t sweep_pos;
};

int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- hashing ------------------------------------------------------------ */

/* Odd constants with well spread bits (the golden ratio and SplitMix64's
 * multipliers). */
#define HK0 UINT64_C(0x9e3779b97f4a7c15)
#define HK1 UINT64_C(0xbf58476d1ce4e5b9)
#define HK2 UINT64_C(0x94d049bb133111eb)
#define HK3 UINT64_C(0xd6e8feb86659fd93)

/* The 128-bit product of @a and @b, its halves xored: every output bit
 * depends on every input bit of both. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 p = (unsigned __int128)a * b;

	return (uint64_t)p ^ (uint64_t)(p >> 64);
#else
	uint64_t al = a & 0xffffffff, ah = a >> 32;
	uint64_t bl = b & 0xffffffff, bh = b >> 32;
	uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
	uint64_t mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff);
	uint64_t lo = (ll & 0xffffffff) | mid << 32;
	uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);

	return lo ^ hi;
#endif
}

/* Unaligned loads through memcpy, which compilers turn into one move. */
static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t load32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t key_hash(uint64_t seed, const char *key, size_t len)
{
	const unsigned char *p = (const unsigned char *)key;
	uint64_t h = seed ^ fold_mul((uint64_t)len ^ HK0, HK1);
	uint64_t a, b;

	while (len > 16) {
		h = fold_mul(load64(p) ^ HK2, load64(p + 8) ^ h);
		p += 16;
		len -= 16;
	}
	/* The last 1..16 bytes (or none), read as two words that may
	 * overlap; the length, folded in above, tells the cases apart. */
	if (len >= 8) {
		a = load64(p);
		b = load64(p + len - 8);
	} else if (len >= 4) {
		a = load32(p);
		b = load32(p + len - 4);
	} else if (len > 0) {
		a = (uint64_t)p[0] << 16 | (uint64_t)p[len / 2] << 8 |
		    p[len - 1];
		b = 0;
	} else {
		a = b = 0;
	}
	h = fold_mul(a ^ HK2, b ^ h ^ HK3);
	return fold_mul(h ^ HK0, HK1);
}

/* --- entries and memory ------------------------------------------------- */

static size_t entry_cost(size_t klen, size_t vlen)
{
	return ENTRY_OVERHEAD + klen + vlen;
}

static int entry_expired(const struct entry *e, int64_t now)
{
	return e->expire != 0 && e->expire <= now;
}

/* Only asks the clock for keys that have an expiry. */
static int entry_expired_now(const struct entry *e)
{
	return e->expire != 0 && e->expire <= store_now_ms();
}

static int key_equal(const struct entry *e, uint32_t h, const char *key,
    size_t klen)
{
	/* klen 0 may come with key NULL, which memcmp may not see. */
	return e->hash == h && e->klen == klen &&
	    (klen == 0 || memcmp(e->data, key, klen) == 0);
}

/* A new entry for @key with room for @vlen value bytes, the value not yet
 * written; NULL if malloc fails.  The allocation's rounding slack becomes
 * room for a longer value, so that an INCR that adds a digit stays in
 * place. */
static struct entry *entry_new(uint32_t h, const char *key, size_t klen,
    size_t vlen)
{
	size_t size = (sizeof(struct entry) + klen + vlen + 1 + 15) &
	    ~(size_t)15;
	struct entry *e = malloc(size);

	if (!e)
		return NULL;
	e->next = NULL;
	e->expire = 0;
	e->vlen = 0;
	e->vcap = size - sizeof(struct entry) - klen - 1;
	e->hash = h;
	e->klen = (uint32_t)klen;
	if (klen)
		memcpy(e->data, key, klen);
	return e;
}

/* Reserves @n more bytes against max_memory; 0 if that would pass it. */
static int charge(struct store *s, size_t n)
{
	size_t cur;

	if (!s->max_memory)
		return 1;
	/* Relaxed: the counter orders nothing; the entries are guarded by
	 * their stripe locks. */
	cur = atomic_load_explicit(&s->charged, memory_order_relaxed);
	do {
		if (n > s->max_memory - cur)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&s->charged, &cur,
	    cur + n, memory_order_relaxed, memory_order_relaxed));
	return 1;
}

static void uncharge(struct store *s, size_t n)
{
	if (s->max_memory && n)
		atomic_fetch_sub_explicit(&s->charged, n,
		    memory_order_relaxed);
}

/* --- tables ------------------------------------------------------------- */

static int growing(const struct stripe *st)
{
	return st->t[1].bucket != NULL;
}

static void table_insert(struct table *t, struct entry *e)
{
	struct entry **b = &t->bucket[e->hash & t->mask];

	e->next = *b;
	*b = e;
	t->used++;
}

/* Moves the next GROW_STEP buckets of a growing stripe; the last move
 * frees the old table and makes the new one the only one. */
static void grow_step(struct stripe *st)
{
	struct table *old = &st->t[0], *big = &st->t[1];

	if (!growing(st))
		return;
	for (int n = 0; n < GROW_STEP && st->moved <= old->mask; n++) {
		struct entry *e = old->bucket[st->moved], *next;

		old->bucket[st->moved++] = NULL;
		for (; e; e = next) {
			next = e->next;
			old->used--;
			table_insert(big, e);
		}
	}
	if (st->moved > old->mask) {
		free(old->bucket);
		*old = *big;
		*big = (struct table){ 0 };
		st->moved = 0;
	}
}

/* Starts growing a stripe loaded past one entry per bucket. */
static void grow_maybe(struct stripe *st)
{
	struct table *t = &st->t[0];
	struct entry **bucket;

	if (growing(st) || t->used <= t->mask + 1 ||
	    t->mask >= MAX_BUCKET_MASK)
		return;
	bucket = calloc((t->mask + 1) * 2, sizeof(*bucket));
	if (!bucket)
		return;		/* longer chains; retried at the next insert */
	st->t[1] = (struct table){ bucket, t->mask * 2 + 1, 0 };
	st->moved = 0;
}

/* The link that points at @key's entry, and in *@tp its table; NULL if
 * absent.  Expired entries are found too. */
static struct entry **find(struct stripe *st, uint32_t h, const char *key,
    size_t klen, struct table **tp)
{
	for (int i = 0; i < 2 && st->t[i].bucket; i++) {
		struct table *t = &st->t[i];
		struct entry **link = &t->bucket[h & t->mask];

		for (; *link; link = &(*link)->next) {
			if (key_equal(*link, h, key, klen)) {
				*tp = t;
				return link;
			}
		}
	}
	return NULL;
}

/* Unlinks and frees the entry at *@link of @t. */
static void entry_remove(struct store *s, struct stripe *st,
    struct table *t, struct entry **link)
{
	struct entry *e = *link;
	size_t cost = entry_cost(e->klen, e->vlen);

	*link = e->next;
	t->used--;
	st->memory -= cost;
	uncharge(s, cost);
	free(e);
}

/* Like find(), but an expired entry is removed and reported absent. */
static struct entry **lookup(struct store *s, struct stripe *st,
    uint32_t h, const char *key, size_t klen, struct table **tp)
{
	struct entry **link = find(st, h, key, klen, tp);

	if (link && entry_expired_now(*link)) {
		entry_remove(s, st, *tp, link);
		return NULL;
	}
	return link;
}

/* Hashes @key, locks its stripe and does the stripe's share of growing;
 * the caller unlocks. */
static struct stripe *stripe_lock(struct store *s, const char *key,
    size_t klen, uint32_t *h)
{
	uint64_t full = key_hash(s->seed, key, klen);
	struct stripe *st = &s->stripe[(full >> 48) & s->mask];

	*h = (uint32_t)full;
	pthread_mutex_lock(&st->lock);
	grow_step(st);
	return st;
}

/*
 * Sets @key to @value with @expire on a locked stripe, where @link (from
 * lookup(), NULL: absent) is the key's entry.  The old allocation is
 * kept when the value fits it without wasting more than about half.
 */
static enum store_result put(struct store *s, struct stripe *st, uint32_t h,
    struct entry **link, const char *key, size_t klen, const char *value,
    size_t vlen, int64_t expire)
{
	struct entry *old = link ? *link : NULL, *e;
	size_t old_cost = old ? entry_cost(old->klen, old->vlen) : 0, cost;

	if (klen > UINT32_MAX || klen > MAX_PART || vlen > MAX_PART)
		return STORE_OOM;
	cost = entry_cost(klen, vlen);
	if (cost > old_cost && !charge(s, cost - old_cost))
		return STORE_OOM;
	if (old && vlen <= old->vcap && old->vcap - vlen <= vlen + 16) {
		e = old;
	} else {
		e = entry_new(h, key, klen, vlen);
		if (!e) {
			if (cost > old_cost)
				uncharge(s, cost - old_cost);
			return STORE_OOM;
		}
		if (old) {
			e->next = old->next;
			*link = e;
			free(old);
		} else {
			table_insert(&st->t[growing(st)], e);
		}
	}
	if (vlen)
		memcpy(e->data + klen, value, vlen);
	e->data[klen + vlen] = '\0';
	e->vlen = vlen;
	e->expire = expire;
	st->memory = st->memory - old_cost + cost;
	if (cost < old_cost)
		uncharge(s, old_cost - cost);
	if (!old)
		grow_maybe(st);
	return STORE_OK;
}

/* --- the store ---------------------------------------------------------- */

static void chain_free(struct entry *e)
{
	while (e) {
		struct entry *next = e->next;

		free(e);
		e = next;
	}
}

static void table_free(struct table *t)
{
	if (!t->bucket)
		return;
	for (size_t i = 0; i <= t->mask; i++)
		chain_free(t->bucket[i]);
	free(t->bucket);
	*t = (struct table){ 0 };
}

static uint64_t random_seed(const struct store *s)
{
	uint64_t seed;

	/* Never blocks; early in boot it falls back to a weaker seed. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == sizeof(seed))
		return seed;
	return fold_mul((uint64_t)(uintptr_t)s ^ HK2,
	    (uint64_t)store_now_ms() ^ HK3);
}

struct store *store_new(const struct store_options *o)
{
	unsigned want = o && o->stripes ? o->stripes : DEFAULT_STRIPES, n = 1;
	struct store *s = calloc(1, sizeof(*s));
	void *mem;
	unsigned i = 0;

	if (!s)
		return NULL;
	/* Not a power of two: the next one up, rather than a failure that
	 * store_new()'s callers would read as out of memory. */
	while (n < want && n < MAX_STRIPES)
		n *= 2;
	if (posix_memalign(&mem, 64, n * sizeof(struct stripe)))
		goto fail;
	s->stripe = mem;
	memset(s->stripe, 0, n * sizeof(struct stripe));
	s->mask = n - 1;
	s->max_memory = o ? o->max_memory : 0;
	atomic_init(&s->charged, 0);
	for (; i < n; i++) {
		struct stripe *st = &s->stripe[i];

		st->t[0].bucket = calloc(INITIAL_BUCKETS,
		    sizeof(struct entry *));
		if (!st->t[0].bucket)
			goto fail;
		st->t[0].mask = INITIAL_BUCKETS - 1;
		if (pthread_mutex_init(&st->lock, NULL)) {
			free(st->t[0].bucket);
			goto fail;
		}
	}
	if (pthread_mutex_init(&s->sweep_lock, NULL))
		goto fail;
	s->seed = random_seed(s);
	return s;
fail:
	while (i-- > 0) {
		free(s->stripe[i].t[0].bucket);
		pthread_mutex_destroy(&s->stripe[i].lock);
	}
	free(s->stripe);
	free(s);
	return NULL;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i <= s->mask; i++) {
		table_free(&s->stripe[i].t[0]);
		table_free(&s->stripe[i].t[1]);
		pthread_mutex_destroy(&s->stripe[i].lock);
	}
	pthread_mutex_destroy(&s->sweep_lock);
	free(s->stripe);
	free(s);
}

enum store_result store_get(struct store *s, const char *key, size_t klen,
    store_value_fn *fn, void *arg)
{
	struct table *t;
	struct entry **link;
	uint32_t h;
	struct stripe *st = stripe_lock(s, key, klen, &h);

	link = lookup(s, st, h, key, klen, &t);
	if (link && fn)
		fn(arg, (*link)->data + klen, (*link)->vlen);
	pthread_mutex_unlock(&st->lock);
	return link ? STORE_OK : STORE_MISSING;
}

enum store_result store_set(struct store *s, const char *key, size_t klen,
    const char *value, size_t vlen, unsigned flags, int64_t expire_ms)
{
	struct table *t;
	struct entry **link;
	enum store_result r;
	uint32_t h;
	struct stripe *st = stripe_lock(s, key, klen, &h);

	link = lookup(s, st, h, key, klen, &t);
	if (link && (flags & STORE_NX))
		r = STORE_EXISTS;
	else if (!link && (flags & STORE_XX))
		r = STORE_MISSING;
	else
		r = put(s, st, h, link, key, klen, value, vlen, expire_ms);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int store_del(struct store *s, const char *key, size_t klen)
{
	struct table *t;
	struct entry **link;
	uint32_t h;
	struct stripe *st = stripe_lock(s, key, klen, &h);

	link = lookup(s, st, h, key, klen, &t);
	if (link)
		entry_remove(s, st, t, link);
	pthread_mutex_unlock(&st->lock);
	return link != NULL;
}

int store_exists(struct store *s, const char *key, size_t klen)
{
	struct table *t;
	struct entry **link;
	uint32_t h;
	struct stripe *st = stripe_lock(s, key, klen, &h);

	link = lookup(s, st, h, key, klen, &t);
	pthread_mutex_unlock(&st->lock);
	return link != NULL;
}

/*
 * Redis's rule for a string that is an integer (string2ll): 1 to 20
 * bytes, an optional '-', then "0" alone or a first digit 1..9, only
 * digits, and within int64.  So "+1", " 1", "01", "-0" and "1.0" are not.
 */
static int parse_int64(const char *p, size_t len, int64_t *out)
{
	uint64_t v = 0, limit = INT64_MAX;
	size_t i = 0;

	if (len == 0 || len > 20)
		return 0;
	if (len == 1 && p[0] == '0') {
		*out = 0;
		return 1;
	}
	if (p[0] == '-') {
		limit = (uint64_t)INT64_MAX + 1;
		i = 1;
	}
	if (i == len || p[i] < '1' || p[i] > '9')
		return 0;
	for (; i < len; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (p[i] < '0' || p[i] > '9' || v > (limit - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (p[0] != '-')
		*out = (int64_t)v;
	else if (v == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)v;
	return 1;
}

/* Writes @v in decimal to @buf (room for 20 bytes); returns the length. */
static size_t format_int64(char *buf, int64_t v)
{
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	char digits[20];
	size_t n = 0, len = 0;

	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = digits[--n];
	return len;
}

enum store_result store_incrby(struct store *s, const char *key,
    size_t klen, int64_t delta, int64_t *result)
{
	struct table *t;
	struct entry **link;
	enum store_result r = STORE_OK;
	int64_t cur = 0, expire = 0;
	char buf[20];
	uint32_t h;
	struct stripe *st = stripe_lock(s, key, klen, &h);

	link = lookup(s, st, h, key, klen, &t);
	if (link) {
		struct entry *e = *link;

		expire = e->expire;
		if (!parse_int64(e->data + e->klen, e->vlen, &cur))
			r = STORE_NOT_INTEGER;
	}
	if (r == STORE_OK && ((delta > 0 && cur > INT64_MAX - delta) ||
	    (delta < 0 && cur < INT64_MIN - delta)))
		r = STORE_OVERFLOW;
	if (r == STORE_OK) {
		cur += delta;
		r = put(s, st, h, link, key, klen, buf, format_int64(buf, cur),
		    expire);
	}
	pthread_mutex_unlock(&st->lock);
	if (r == STORE_OK)
		*result = cur;
	return r;
}

uint64_t store_count(struct store *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= s->mask; i++) {
		struct stripe *st = &s->stripe[i];

		pthread_mutex_lock(&st->lock);
		n += st->t[0].used + st->t[1].used;
		pthread_mutex_unlock(&st->lock);
	}
	return n;
}

size_t store_memory(struct store *s)
{
	size_t n = 0;

	for (unsigned i = 0; i <= s->mask; i++) {
		struct stripe *st = &s->stripe[i];

		pthread_mutex_lock(&st->lock);
		n += st->memory;
		pthread_mutex_unlock(&st->lock);
	}
	return n;
}

void store_flush(struct store *s)
{
	for (unsigned i = 0; i <= s->mask; i++) {
		struct stripe *st = &s->stripe[i];
		struct entry **fresh = calloc(INITIAL_BUCKETS, sizeof(*fresh));
		struct table old[2];

		pthread_mutex_lock(&st->lock);
		old[0] = st->t[0];
		old[1] = st->t[1];
		if (fresh) {
			/* Swap in an empty table, and free the old keys
			 * after unlocking, so that workers wait for a swap
			 * rather than for a million free() calls. */
			st->t[0] = (struct table){ fresh, INITIAL_BUCKETS - 1,
			    0 };
			st->t[1] = (struct table){ 0 };
		} else {
			/* No room for a fresh table: empty this one. */
			for (size_t b = 0; b <= st->t[0].mask; b++) {
				chain_free(st->t[0].bucket[b]);
				st->t[0].bucket[b] = NULL;
			}
			st->t[0].used = 0;
			table_free(&st->t[1]);
		}
		st->moved = 0;
		uncharge(s, st->memory);
		st->memory = 0;
		pthread_mutex_unlock(&st->lock);
		if (fresh) {
			table_free(&old[0]);
			table_free(&old[1]);
		}
	}
}

/* Removes up to @left expired entries of bucket @i of @t; sets *@partial
 * if it stopped with expired entries left there. */
static size_t sweep_bucket(struct store *s, struct stripe *st,
    struct table *t, size_t i, int64_t now, size_t left, int *partial)
{
	struct entry **link;
	size_t n = 0;

	if (!t->bucket || i > t->mask)
		return 0;
	for (link = &t->bucket[i]; *link;) {
		if (!entry_expired(*link, now)) {
			link = &(*link)->next;
		} else if (n == left) {
			*partial = 1;
			break;
		} else {
			entry_remove(s, st, t, link);
			n++;
		}
	}
	return n;
}

size_t store_sweep(struct store *s, size_t budget)
{
	size_t removed = 0, visits;
	/* At most one pass: every stripe, and again the one it began in. */
	unsigned si, stripes_left = s->mask + 2;
	int64_t now = store_now_ms();
	size_t pos;

	if (!budget)
		return 0;
	visits = budget > SIZE_MAX / SWEEP_POSITIONS_PER_KEY ? SIZE_MAX :
	    budget * SWEEP_POSITIONS_PER_KEY;
	pthread_mutex_lock(&s->sweep_lock);
	si = s->sweep_stripe;
	pos = s->sweep_pos;
	while (removed < budget && visits > 0 && stripes_left > 0) {
		struct stripe *st = &s->stripe[si];
		size_t chunk = SWEEP_CHUNK, end;
		int partial = 0;

		pthread_mutex_lock(&st->lock);
		grow_step(st);
		end = (growing(st) ? st->t[1].mask : st->t[0].mask) + 1;
		for (; chunk > 0 && visits > 0 && pos < end && !partial &&
		    removed < budget; chunk--, visits--) {
			removed += sweep_bucket(s, st, &st->t[0], pos, now,
			    budget - removed, &partial);
			if (!partial)
				removed += sweep_bucket(s, st, &st->t[1], pos,
				    now, budget - removed, &partial);
			if (!partial)
				pos++;
		}
		pthread_mutex_unlock(&st->lock);
		/* A position past the end (the stripe was flushed to a
		 * smaller table) also ends the stripe. */
		if (pos >= end) {
			pos = 0;
			si = (si + 1) & s->mask;
			stripes_left--;
		}
	}
	s->sweep_stripe = si;
	s->sweep_pos = pos;
	pthread_mutex_unlock(&s->sweep_lock);
	return removed;
}
