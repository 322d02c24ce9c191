/*
 * Publish/subscribe across workers: the server-wide registry, the
 * per-worker local maps, the batches that carry messages between
 * workers, and the credit that paces publishers.  See pubsub.h for the
 * design.
 */
#include "pubsub.h"

#include "common/glob.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- a small chained hash table of named nodes ------------------------- */

struct ps_node {
	struct ps_node *next;
	uint64_t hash;
	size_t len;
	char *name;		/* len bytes, owned with the node */
};

struct ps_table {
	struct ps_node **b;
	size_t mask;		/* buckets - 1; 0 with b NULL: empty */
	size_t n;
};

/* FNV-1a over a per-registry random seed, so that channel names chosen to
 * collide are hard to plan. */
static uint64_t ps_hash(uint64_t seed, const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static struct ps_node *table_find(const struct ps_table *t, uint64_t hash,
    const char *name, size_t len)
{
	struct ps_node *n;

	if (!t->b)
		return NULL;
	for (n = t->b[hash & t->mask]; n; n = n->next)
		if (n->hash == hash && n->len == len &&
		    memcmp(n->name, name, len) == 0)
			return n;
	return NULL;
}

/* Adds @n (taken over; hash, len and name set).  Returns 0, or -1 if the
 * table could not grow (then it is not added). */
static int table_add(struct ps_table *t, struct ps_node *n)
{
	if (t->n >= (t->b ? t->mask + 1 : 0)) {
		size_t size = t->b ? (t->mask + 1) * 2 : 16;
		struct ps_node **b = calloc(size, sizeof(*b));

		if (!b)
			return -1;
		for (size_t i = 0; t->b && i <= t->mask; i++)
			while (t->b[i]) {
				struct ps_node *x = t->b[i];

				t->b[i] = x->next;
				x->next = b[x->hash & (size - 1)];
				b[x->hash & (size - 1)] = x;
			}
		free(t->b);
		t->b = b;
		t->mask = size - 1;
	}
	n->next = t->b[n->hash & t->mask];
	t->b[n->hash & t->mask] = n;
	t->n++;
	return 0;
}

static void table_remove(struct ps_table *t, struct ps_node *n)
{
	struct ps_node **pp = &t->b[n->hash & t->mask];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->n--;
}

/* --- the registry -------------------------------------------------------- */

/* A channel or pattern with a subscriber somewhere. */
struct reg_entry {
	struct ps_node node;
	struct reg_entry *prev, *next;	/* patterns only: reg_patterns */
	size_t total;
	unsigned counts[];	/* subscriptions per worker; name follows */
};

/* A channel or pattern with a subscriber on this worker. */
struct local_entry {
	struct ps_node node;
	struct local_entry *prev, *next;	/* patterns only */
	struct pubsub_member *members;
	size_t n;
	bool pattern;
	/* name follows */
};

/* One subscription: @sub to @e, linked into both. */
struct pubsub_member {
	struct local_entry *e;
	struct pubsub_sub *sub;
	struct pubsub_member *eprev, *enext;
	/* In the sub's list, oldest first; the head's sprev is the tail. */
	struct pubsub_member *sprev, *snext;
};

/* Messages to run on one worker; the entries follow the header. */
struct ps_batch {
	struct pubsub_msg msg;
	struct pubsub_local *from;
	struct pubsub_local *to;
	size_t cost;		/* counted in from->inflight */
	size_t count;		/* messages */
	size_t len, cap;
	char data[];
};

/* An entry: the channel's and the message's lengths, then the bytes. */
struct ps_entry_head {
	size_t chlen, mlen;
};

struct pubsub_local {
	struct pubsub *ps;
	int worker;
	struct ps_table chans, pats;
	struct local_entry *pat_list;	/* oldest first */
	struct local_entry *pat_tail;
	struct ps_batch **out;		/* per destination worker */
	unsigned char *want;		/* publish scratch, per worker */
	struct pubsub_sub *touched;	/* served by the batch running */
	char *scratch;			/* pubsub_scratch() */
	size_t scratch_cap;
	struct pubsub_waiter *waiters;

	/* Shared with the other workers. */
	_Atomic size_t inflight;	/* bytes posted, not yet run */
	atomic_bool credit_wanted;	/* waiters need a credit post */
	struct pubsub_msg credit;
};

struct pubsub {
	struct pubsub_options o;
	uint64_t seed;
	pthread_rwlock_t lock;	/* guards the rest */
	struct ps_table chans, pats;
	struct reg_entry *patterns;	/* every pattern, for publish */
	struct pubsub_local *locals;
	atomic_ulong lost;
	atomic_bool stopped;	/* pubsub_stop(): post nothing */
};

/* Registers one more (@delta 1) or one less (-1) subscription of worker
 * @w to @name.  Returns 0, or -1 if memory ran out (nothing changed). */
static int reg_update(struct pubsub *ps, int w, bool pattern, uint64_t hash,
    const char *name, size_t len, int delta)
{
	struct ps_table *t = pattern ? &ps->pats : &ps->chans;
	struct reg_entry *r;
	int rc = 0;

	pthread_rwlock_wrlock(&ps->lock);
	r = (struct reg_entry *)table_find(t, hash, name, len);
	if (!r && delta > 0) {
		size_t counts = (size_t)ps->o.workers * sizeof(unsigned);

		r = calloc(1, sizeof(*r) + counts + len + 1);
		if (!r) {
			rc = -1;
			goto out;
		}
		r->node.hash = hash;
		r->node.len = len;
		r->node.name = (char *)&r->counts[ps->o.workers];
		memcpy(r->node.name, name, len);
		if (table_add(t, &r->node)) {
			free(r);
			rc = -1;
			goto out;
		}
		if (pattern) {
			r->next = ps->patterns;
			if (r->next)
				r->next->prev = r;
			ps->patterns = r;
		}
	}
	if (!r)
		goto out;
	if (delta > 0) {
		r->counts[w]++;
		r->total++;
	} else {
		r->counts[w]--;
		r->total--;
	}
	if (r->total == 0) {
		table_remove(t, &r->node);
		if (pattern) {
			if (r->prev)
				r->prev->next = r->next;
			else
				ps->patterns = r->next;
			if (r->next)
				r->next->prev = r->prev;
		}
		free(r);
	}
out:
	pthread_rwlock_unlock(&ps->lock);
	return rc;
}

size_t pubsub_numsub(struct pubsub *ps, const char *ch, size_t len)
{
	struct reg_entry *r;
	size_t n;

	pthread_rwlock_rdlock(&ps->lock);
	r = (struct reg_entry *)table_find(&ps->chans,
	    ps_hash(ps->seed, ch, len), ch, len);
	n = r ? r->total : 0;
	pthread_rwlock_unlock(&ps->lock);
	return n;
}

size_t pubsub_numpat(struct pubsub *ps)
{
	size_t n;

	pthread_rwlock_rdlock(&ps->lock);
	n = ps->pats.n;
	pthread_rwlock_unlock(&ps->lock);
	return n;
}

void pubsub_channels(struct pubsub *ps, const char *pat, size_t plen,
    void (*begin)(void *arg, size_t n),
    void (*each)(void *arg, const char *name, size_t len), void *arg)
{
	size_t n = 0;

	pthread_rwlock_rdlock(&ps->lock);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			begin(arg, n);
		for (size_t i = 0; ps->chans.b && i <= ps->chans.mask; i++)
			for (struct ps_node *x = ps->chans.b[i]; x;
			    x = x->next) {
				if (pat && !glob_match(pat, plen, x->name,
				    x->len, 0))
					continue;
				if (pass == 0)
					n++;
				else
					each(arg, x->name, x->len);
			}
	}
	pthread_rwlock_unlock(&ps->lock);
}

unsigned long pubsub_lost(struct pubsub *ps)
{
	return atomic_load(&ps->lost);
}

/* --- subscribers ----------------------------------------------------------- */

void pubsub_sub_init(struct pubsub_sub *sub, const struct pubsub_sub_ops *ops)
{
	memset(sub, 0, sizeof(*sub));
	sub->ops = ops;
}

static struct pubsub_member **sub_list(struct pubsub_sub *sub, bool pattern)
{
	return pattern ? &sub->psubs : &sub->subs;
}

/* @sub's subscription to @e, or NULL; walks the shorter of the lists. */
static struct pubsub_member *member_find(struct pubsub_sub *sub,
    struct local_entry *e)
{
	size_t mine = e->pattern ? sub->n_psubs : sub->n_subs;

	if (mine < e->n) {
		for (struct pubsub_member *m = *sub_list(sub, e->pattern); m;
		    m = m->snext)
			if (m->e == e)
				return m;
	} else {
		for (struct pubsub_member *m = e->members; m; m = m->enext)
			if (m->sub == sub)
				return m;
	}
	return NULL;
}

static void local_entry_free(struct pubsub_local *l, struct local_entry *e)
{
	table_remove(e->pattern ? &l->pats : &l->chans, &e->node);
	if (e->pattern) {
		if (e->prev)
			e->prev->next = e->next;
		else
			l->pat_list = e->next;
		if (e->next)
			e->next->prev = e->prev;
		else
			l->pat_tail = e->prev;
	}
	free(e);
}

/*
 * Removes the subscription @m, here and in the registry.  Returns its
 * entry if that now has no subscriber, for the caller to free with
 * local_entry_free() once done with its name; else NULL.
 */
static struct local_entry *member_remove(struct pubsub_local *l,
    struct pubsub_member *m)
{
	struct local_entry *e = m->e;
	struct pubsub_sub *sub = m->sub;
	struct pubsub_member **head = sub_list(sub, e->pattern);

	if (m->eprev)
		m->eprev->enext = m->enext;
	else
		e->members = m->enext;
	if (m->enext)
		m->enext->eprev = m->eprev;
	/* The sub's list keeps its tail in the head's sprev. */
	if (m == *head) {
		*head = m->snext;
		if (*head)
			(*head)->sprev = m->sprev;
	} else {
		m->sprev->snext = m->snext;
		if (m->snext)
			m->snext->sprev = m->sprev;
		else
			(*head)->sprev = m->sprev;
	}
	if (e->pattern)
		sub->n_psubs--;
	else
		sub->n_subs--;
	e->n--;
	free(m);
	/* Removing never allocates, so it cannot fail. */
	reg_update(l->ps, l->worker, e->pattern, e->node.hash, e->node.name,
	    e->node.len, -1);
	return e->n ? NULL : e;
}

int pubsub_subscribe(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, const char *name, size_t len)
{
	struct ps_table *t = pattern ? &l->pats : &l->chans;
	uint64_t hash = ps_hash(l->ps->seed, name, len);
	struct local_entry *e = (struct local_entry *)table_find(t, hash,
	    name, len);
	struct pubsub_member *m, **head;
	bool fresh = false;

	if (e && member_find(sub, e))
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	if (!e) {
		e = calloc(1, sizeof(*e) + len + 1);
		if (!e)
			goto fail;
		e->node.hash = hash;
		e->node.len = len;
		e->node.name = (char *)(e + 1);
		memcpy(e->node.name, name, len);
		e->pattern = pattern;
		if (table_add(t, &e->node)) {
			free(e);
			goto fail;
		}
		if (pattern) {
			/* Matched in subscription order, so a subscriber of
			 * several patterns gets its pmessages in that order. */
			e->prev = l->pat_tail;
			if (e->prev)
				e->prev->next = e;
			else
				l->pat_list = e;
			l->pat_tail = e;
		}
		fresh = true;
	}
	if (reg_update(l->ps, l->worker, pattern, hash, name, len, 1)) {
		if (fresh)
			local_entry_free(l, e);
		goto fail;
	}
	m->e = e;
	m->sub = sub;
	m->enext = e->members;
	if (m->enext)
		m->enext->eprev = m;
	e->members = m;
	e->n++;
	head = sub_list(sub, pattern);
	if (*head) {
		m->sprev = (*head)->sprev;
		m->sprev->snext = m;
		(*head)->sprev = m;
	} else {
		m->sprev = m;
		*head = m;
	}
	if (pattern)
		sub->n_psubs++;
	else
		sub->n_subs++;
	return 1;

fail:
	free(m);
	return -1;
}

int pubsub_unsubscribe(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, const char *name, size_t len)
{
	struct ps_table *t = pattern ? &l->pats : &l->chans;
	struct local_entry *e = (struct local_entry *)table_find(t,
	    ps_hash(l->ps->seed, name, len), name, len);
	struct pubsub_member *m = e ? member_find(sub, e) : NULL;

	if (!m)
		return 0;
	e = member_remove(l, m);
	if (e)
		local_entry_free(l, e);
	return 1;
}

size_t pubsub_unsubscribe_all(struct pubsub_local *l, struct pubsub_sub *sub,
    bool pattern, void (*each)(void *arg, const char *name, size_t len),
    void *arg)
{
	struct pubsub_member **head = sub_list(sub, pattern);
	size_t n = 0;

	while (*head) {
		struct local_entry *e = (*head)->e, *gone;

		gone = member_remove(l, *head);
		if (each)
			each(arg, e->node.name, e->node.len);
		if (gone)
			local_entry_free(l, gone);
		n++;
	}
	return n;
}

void pubsub_sub_release(struct pubsub_local *l, struct pubsub_sub *sub)
{
	pubsub_unsubscribe_all(l, sub, false, NULL, NULL);
	pubsub_unsubscribe_all(l, sub, true, NULL, NULL);
}

/* --- delivery ------------------------------------------------------------ */

char *pubsub_scratch(struct pubsub_local *l, size_t len)
{
	if (l->scratch_cap < len) {
		size_t cap = l->scratch_cap ? l->scratch_cap : 256;
		char *p;

		while (cap < len)
			cap *= 2;
		p = realloc(l->scratch, cap);
		if (!p)
			return NULL;
		l->scratch = p;
		l->scratch_cap = cap;
	}
	return l->scratch;
}

static void deliver(struct pubsub_local *l, struct pubsub_sub *sub,
    struct pubsub_delivery *d)
{
	if (sub->flags & PUBSUB_SUB_REFUSED)
		return;
	if (!(sub->flags & PUBSUB_SUB_TOUCHED)) {
		sub->flags |= PUBSUB_SUB_TOUCHED;
		sub->touched_next = l->touched;
		l->touched = sub;
	}
	if (d->wire_ops != sub->ops) {
		d->wire = NULL;		/* formatted for another protocol */
		d->wire_ops = sub->ops;
	}
	if (sub->ops->message(sub, d) < 0)
		sub->flags |= PUBSUB_SUB_REFUSED;
}

/* Serves @b's messages to this worker's subscribers, then gives each
 * subscriber it touched one flush() or drop(). */
static void batch_deliver(struct pubsub_local *l, const struct ps_batch *b)
{
	const char *p = b->data, *end = b->data + b->len;

	while (p < end) {
		struct ps_entry_head h;
		const char *ch, *msg;
		struct local_entry *e;

		memcpy(&h, p, sizeof(h));
		ch = p + sizeof(h);
		msg = ch + h.chlen;
		p = msg + h.mlen;
		struct pubsub_delivery d = { .ch = ch, .chlen = h.chlen,
		    .msg = msg, .mlen = h.mlen, .local = l };

		e = (struct local_entry *)table_find(&l->chans,
		    ps_hash(l->ps->seed, ch, h.chlen), ch, h.chlen);
		for (struct pubsub_member *m = e ? e->members : NULL; m;
		    m = m->enext)
			deliver(l, m->sub, &d);
		for (e = l->pat_list; e; e = e->next) {
			if (!glob_match(e->node.name, e->node.len, ch, h.chlen,
			    0))
				continue;
			d.pat = e->node.name;
			d.plen = e->node.len;
			d.wire = NULL;
			for (struct pubsub_member *m = e->members; m;
			    m = m->enext)
				deliver(l, m->sub, &d);
		}
	}
	/* Nothing can unsubscribe while the messages are queued; now
	 * drop() may free a subscriber, which is off the list by then. */
	while (l->touched) {
		struct pubsub_sub *sub = l->touched;

		l->touched = sub->touched_next;
		sub->touched_next = NULL;
		sub->flags &= ~PUBSUB_SUB_TOUCHED;
		if (sub->flags & PUBSUB_SUB_REFUSED) {
			sub->flags &= ~PUBSUB_SUB_REFUSED;
			sub->ops->drop(sub);
		} else {
			sub->ops->flush(sub);
		}
	}
}

static void post_credit(struct pubsub_local *from)
{
	struct pubsub *ps = from->ps;

	if (atomic_load(&ps->stopped))
		return;
	if (ps->o.post(ps->o.post_ctx, from->worker, &from->credit) < 0)
		atomic_store(&from->credit_wanted, true);	/* next time */
}

/* A batch, run on its destination. */
static void batch_run(struct pubsub_msg *m)
{
	struct ps_batch *b = (struct ps_batch *)m;
	struct pubsub_local *from = b->from;
	size_t before;

	batch_deliver(b->to, b);
	before = atomic_fetch_sub(&from->inflight, b->cost);
	if (before - b->cost <= PUBSUB_INFLIGHT_LOW &&
	    atomic_load(&from->credit_wanted) &&
	    atomic_exchange(&from->credit_wanted, false))
		post_credit(from);
	free(b);
}

static void resume_waiters(struct pubsub_local *l)
{
	while (l->waiters) {
		struct pubsub_waiter *w = l->waiters;

		l->waiters = w->next;
		if (l->waiters)
			l->waiters->prev = NULL;
		w->next = w->prev = NULL;
		w->waiting = false;
		w->resume(w);
	}
}

/* The in-flight bytes are back under the low mark: on the source. */
static void credit_run(struct pubsub_msg *m)
{
	struct pubsub_local *l = (struct pubsub_local *)((char *)m -
	    offsetof(struct pubsub_local, credit));

	resume_waiters(l);
}

void pubsub_msg_run(struct pubsub_msg *m)
{
	m->run(m);
}

void pubsub_wait(struct pubsub_local *l, struct pubsub_waiter *w)
{
	if (w->waiting)
		return;
	w->waiting = true;
	w->prev = NULL;
	w->next = l->waiters;
	if (w->next)
		w->next->prev = w;
	l->waiters = w;
	/* Say we want a credit, then look again: either a destination that
	 * brings inflight down sees the flag, or we see its decrement. */
	atomic_store(&l->credit_wanted, true);
	if (atomic_load(&l->inflight) <= PUBSUB_INFLIGHT_LOW &&
	    atomic_exchange(&l->credit_wanted, false))
		resume_waiters(l);
}

void pubsub_unwait(struct pubsub_local *l, struct pubsub_waiter *w)
{
	if (!w->waiting)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		l->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
	w->waiting = false;
}

/* --- publishing -------------------------------------------------------- */

/* Appends one message to the batch for worker @w.  Returns 0 or -1. */
static int batch_append(struct pubsub_local *l, int w, const char *ch,
    size_t chlen, const char *msg, size_t mlen)
{
	struct ps_batch *b = l->out[w];
	struct ps_entry_head h = { chlen, mlen };
	size_t need = sizeof(h) + chlen + mlen;

	if (!b || b->cap - b->len < need) {
		size_t cap = b ? b->cap * 2 : 4096;
		struct ps_batch *nb;

		while (cap - (b ? b->len : 0) < need)
			cap *= 2;
		nb = realloc(b, sizeof(*nb) + cap);
		if (!nb)
			return -1;
		if (!b) {
			memset(nb, 0, sizeof(*nb));
			nb->msg.run = batch_run;
			nb->from = l;
			nb->to = &l->ps->locals[w];
		}
		nb->cap = cap;
		b = l->out[w] = nb;
	}
	memcpy(b->data + b->len, &h, sizeof(h));
	memcpy(b->data + b->len + sizeof(h), ch, chlen);
	memcpy(b->data + b->len + sizeof(h) + chlen, msg, mlen);
	b->len += need;
	b->count++;
	return 0;
}

long long pubsub_publish(struct pubsub_local *l, const char *ch,
    size_t chlen, const char *msg, size_t mlen)
{
	struct pubsub *ps = l->ps;
	uint64_t hash = ps_hash(ps->seed, ch, chlen);
	struct reg_entry *r;
	long long n = 0;
	int failed = 0;

	pthread_rwlock_rdlock(&ps->lock);
	r = (struct reg_entry *)table_find(&ps->chans, hash, ch, chlen);
	if (r) {
		n += (long long)r->total;
		for (int w = 0; w < ps->o.workers; w++)
			l->want[w] |= r->counts[w] != 0;
	}
	for (r = ps->patterns; r; r = r->next) {
		if (!glob_match(r->node.name, r->node.len, ch, chlen, 0))
			continue;
		n += (long long)r->total;
		for (int w = 0; w < ps->o.workers; w++)
			l->want[w] |= r->counts[w] != 0;
	}
	pthread_rwlock_unlock(&ps->lock);
	for (int w = 0; w < ps->o.workers && n; w++) {
		if (!l->want[w])
			continue;
		l->want[w] = 0;
		if (batch_append(l, w, ch, chlen, msg, mlen)) {
			atomic_fetch_add(&ps->lost, 1);
			failed = 1;
		}
	}
	return failed ? -1 : n;
}

bool pubsub_flush(struct pubsub_local *l)
{
	struct pubsub *ps = l->ps;
	struct ps_batch *mine = NULL;

	for (int w = 0; w < ps->o.workers; w++) {
		struct ps_batch *b = l->out[w];

		if (!b)
			continue;
		l->out[w] = NULL;
		if (w == l->worker) {
			mine = b;
			continue;
		}
		/* Counted before posting, so the destination never
		 * subtracts what was not added. */
		b->cost = sizeof(*b) + b->cap;
		atomic_fetch_add(&l->inflight, b->cost);
		if (ps->o.post(ps->o.post_ctx, w, &b->msg) < 0) {
			atomic_fetch_sub(&l->inflight, b->cost);
			atomic_fetch_add(&ps->lost, b->count);
			free(b);
		}
	}
	/* The other workers are on their way; now serve our own. */
	if (mine) {
		batch_deliver(l, mine);
		free(mine);
	}
	return atomic_load(&l->inflight) > PUBSUB_INFLIGHT_HIGH;
}

/* --- lifecycle ------------------------------------------------------------ */

struct pubsub *pubsub_new(const struct pubsub_options *o)
{
	struct pubsub *ps = calloc(1, sizeof(*ps));
	pthread_rwlockattr_t attr;
	struct timespec ts;

	if (!ps)
		return NULL;
	ps->o = *o;
	clock_gettime(CLOCK_REALTIME, &ts);
	ps->seed = ps_hash((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)ps,
	    (const char *)&ts, sizeof(ts));
	/* Writers first, so that a stream of publishes cannot starve a
	 * SUBSCRIBE. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (pthread_rwlock_init(&ps->lock, &attr)) {
		pthread_rwlockattr_destroy(&attr);
		free(ps);
		return NULL;
	}
	pthread_rwlockattr_destroy(&attr);
	ps->locals = calloc((size_t)o->workers, sizeof(*ps->locals));
	if (!ps->locals)
		goto fail;
	for (int w = 0; w < o->workers; w++) {
		struct pubsub_local *l = &ps->locals[w];

		l->ps = ps;
		l->worker = w;
		l->credit.run = credit_run;
		l->out = calloc((size_t)o->workers, sizeof(*l->out));
		l->want = calloc((size_t)o->workers, 1);
		if (!l->out || !l->want)
			goto fail;
	}
	return ps;

fail:
	pubsub_free(ps);
	return NULL;
}

static void table_release(struct ps_table *t)
{
	for (size_t i = 0; t->b && i <= t->mask; i++)
		while (t->b[i]) {
			struct ps_node *n = t->b[i];

			t->b[i] = n->next;
			free(n);	/* the node is first in its entry */
		}
	free(t->b);
	memset(t, 0, sizeof(*t));
}

void pubsub_free(struct pubsub *ps)
{
	if (!ps)
		return;
	for (int w = 0; ps->locals && w < ps->o.workers; w++) {
		struct pubsub_local *l = &ps->locals[w];

		for (int d = 0; l->out && d < ps->o.workers; d++)
			free(l->out[d]);
		free(l->out);
		free(l->want);
		free(l->scratch);
		table_release(&l->chans);
		table_release(&l->pats);
	}
	free(ps->locals);
	table_release(&ps->chans);
	table_release(&ps->pats);
	pthread_rwlock_destroy(&ps->lock);
	free(ps);
}

void pubsub_stop(struct pubsub *ps)
{
	atomic_store(&ps->stopped, true);
}

struct pubsub_local *pubsub_local(struct pubsub *ps, int worker)
{
	return &ps->locals[worker];
}
