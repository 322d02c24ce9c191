/*
 * Unit tests for the id map (src/idmap.h): lookups after growth, deletion
 * that keeps every other id findable (backward shift across the table's
 * wrap-around), and a long random run checked against a plain array.
 */
#include "idmap.h"
#include "testutil.h"

#include <stdlib.h>

START_TEST(test_idmap_finds_every_id_after_growing)
{
	struct idmap m;
	static int values[5000];

	idmap_init(&m);
	ck_assert_ptr_null(idmap_get(&m, 1));
	for (uint64_t i = 1; i <= 5000; i++)
		ck_assert_int_eq(idmap_put(&m, ((uint64_t)1 << 48) | i,
		    &values[i - 1]), 0);
	ck_assert_uint_eq(m.n, 5000);
	ck_assert_uint_ge(m.mask + 1, 2 * 5000);
	for (uint64_t i = 1; i <= 5000; i++)
		ck_assert_ptr_eq(idmap_get(&m, ((uint64_t)1 << 48) | i),
		    &values[i - 1]);
	ck_assert_ptr_null(idmap_get(&m, 5001));
	ck_assert_ptr_null(idmap_get(&m, 0));
	idmap_release(&m);
}
END_TEST

/* Ids chosen to collide in a 16-slot table and to wrap past its end, so
 * that deleting one must shift the rest of its run back across slot 0. */
START_TEST(test_idmap_delete_keeps_colliding_ids_findable)
{
	struct idmap m;
	uint64_t ids[6];
	int n = 0, v = 0;

	idmap_init(&m);
	ck_assert_int_eq(idmap_put(&m, 1, &v), 0);	/* allocates 16 */
	idmap_del(&m, 1);
	for (uint64_t id = 2; n < 6; id++) {
		/* Homes in the last two slots, so that runs wrap. */
		size_t home = (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >>
		    32) & m.mask;

		if (home >= 14)
			ids[n++] = id;
	}
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(idmap_put(&m, ids[i], &ids[i]), 0);
	ck_assert_uint_eq(m.mask, 15);	/* no growth: 6 of 16 */
	for (int d = 0; d < 6; d++) {
		idmap_del(&m, ids[d]);
		ck_assert_ptr_null(idmap_get(&m, ids[d]));
		for (int i = d + 1; i < 6; i++)
			ck_assert_ptr_eq(idmap_get(&m, ids[i]), &ids[i]);
	}
	ck_assert_uint_eq(m.n, 0);
	idmap_del(&m, 12345);	/* absent: nothing happens */
	idmap_release(&m);
}
END_TEST

START_TEST(test_idmap_random_operations_match_a_reference)
{
	enum { SPACE = 4096 };
	static char present[SPACE];
	struct idmap m;
	uint64_t rng = 12345;
	size_t n = 0, wrong = 0;
	int rounds = (int)scaled(100000, 20000);

	/* Mismatches are counted, not asserted one by one, so that the
	 * loop stays quick under the sanitizers. */
	idmap_init(&m);
	for (int r = 0; r < rounds; r++) {
		uint64_t id;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		id = (rng >> 33) % SPACE + 1;
		if (present[id - 1]) {
			wrong += idmap_get(&m, id) != &present[id - 1];
			idmap_del(&m, id);
			present[id - 1] = 0;
			n--;
		} else {
			wrong += idmap_get(&m, id) != NULL;
			ck_assert_int_eq(idmap_put(&m, id, &present[id - 1]),
			    0);
			present[id - 1] = 1;
			n++;
		}
		wrong += m.n != n;
	}
	ck_assert_uint_eq(wrong, 0);
	for (uint64_t id = 1; id <= SPACE; id++)
		ck_assert_ptr_eq(idmap_get(&m, id),
		    present[id - 1] ? &present[id - 1] : NULL);
	idmap_release(&m);
}
END_TEST

static Suite *idmap_suite(void)
{
	Suite *s = suite_create("idmap");
	TCase *tc = tcase_create("map");

	tcase_add_test(tc, test_idmap_finds_every_id_after_growing);
	tcase_add_test(tc, test_idmap_delete_keeps_colliding_ids_findable);
	tcase_add_test(tc, test_idmap_random_operations_match_a_reference);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(idmap_suite());
}
