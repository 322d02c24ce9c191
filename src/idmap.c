/*
 * The id map; see idmap.h.  The ids a worker hands out are sequential, so
 * the hash only has to spread consecutive numbers: a multiply by the
 * golden-ratio constant (Fibonacci hashing) does, and its high bits are
 * the best mixed, so the slot comes from them.
 */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

#define IDMAP_MIN_SLOTS 16

static size_t idmap_home(const struct idmap *m, uint64_t id)
{
	return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & m->mask;
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->n = 0;
}

void idmap_release(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

static void idmap_insert(struct idmap *m, uint64_t id, void *value)
{
	size_t i = idmap_home(m, id);

	while (m->slots[i].id)
		i = (i + 1) & m->mask;
	m->slots[i].id = id;
	m->slots[i].value = value;
	m->n++;
}

static int idmap_grow(struct idmap *m)
{
	size_t count = m->slots ? (m->mask + 1) * 2 : IDMAP_MIN_SLOTS;
	struct idmap old = *m;

	m->slots = calloc(count, sizeof(*m->slots));
	if (!m->slots) {
		*m = old;
		return -ENOMEM;
	}
	m->mask = count - 1;
	m->n = 0;
	for (size_t i = 0; old.slots && i <= old.mask; i++)
		if (old.slots[i].id)
			idmap_insert(m, old.slots[i].id, old.slots[i].value);
	free(old.slots);
	return 0;
}

int idmap_put(struct idmap *m, uint64_t id, void *value)
{
	/* At most half full, so probes stay short. */
	if ((!m->slots || (m->n + 1) * 2 > m->mask + 1) && idmap_grow(m))
		return -ENOMEM;
	idmap_insert(m, id, value);
	return 0;
}

void *idmap_get(const struct idmap *m, uint64_t id)
{
	if (!m->slots || !id)
		return NULL;
	for (size_t i = idmap_home(m, id); m->slots[i].id;
	    i = (i + 1) & m->mask)
		if (m->slots[i].id == id)
			return m->slots[i].value;
	return NULL;
}

void idmap_del(struct idmap *m, uint64_t id)
{
	size_t i, j;

	if (!m->slots || !id)
		return;
	for (i = idmap_home(m, id); m->slots[i].id != id;
	    i = (i + 1) & m->mask)
		if (!m->slots[i].id)
			return;
	/* Backward shift: move later entries of the run into the hole when
	 * their home does not lie (cyclically) between the hole and them,
	 * so that every lookup still finds them without tombstones. */
	for (j = i;;) {
		size_t home;

		m->slots[i].id = 0;
		m->slots[i].value = NULL;
		for (;;) {
			j = (j + 1) & m->mask;
			if (!m->slots[j].id) {
				m->n--;
				return;
			}
			home = idmap_home(m, m->slots[j].id);
			if (i <= j ? (home <= i || home > j) :
			    (home <= i && home > j))
				break;
		}
		m->slots[i] = m->slots[j];
		i = j;
	}
}
