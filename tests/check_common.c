/*
 * Unit tests for the helpers in src/common/ that echoserver and echobench
 * share: the size-suffix parser and the fd-limit raise.  Each program
 * keeps its own wording for a bad value; these tests pin down the one rule
 * both of them follow.
 */
#include "common/fdlimit.h"
#include "common/parse.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>

#define TIB ((uint64_t)1 << 40)

static const struct {
	const char *text;
	uint64_t want;
} good_sizes[] = {
	{ "1", 1 },
	{ "4096", 4096 },
	{ "64k", 64 << 10 },
	{ "64K", 64 << 10 },
	{ "3m", 3 << 20 },
	{ "3M", 3 << 20 },
	{ "2g", (uint64_t)2 << 30 },
	{ "2G", (uint64_t)2 << 30 },
	{ "1024g", TIB },		/* the top of the range, exactly */
	{ "007k", 7 << 10 },
};

START_TEST(test_parse_size_takes_k_m_g_in_any_case_as_powers_of_1024)
{
	uint64_t v = 0;

	ck_assert_int_eq(parse_size(good_sizes[_i].text, 1, TIB, &v), 0);
	ck_assert_msg(v == good_sizes[_i].want, "'%s' gave %llu",
	    good_sizes[_i].text, (unsigned long long)v);
}
END_TEST

/* Not a size at all: -EINVAL, whatever the range. */
static const char *const not_sizes[] = {
	"", "k", "-1", "+1", " 1", "1 ", "1.5k", "1kb", "1t", "0x10", "1kk",
	"12abc",
};

START_TEST(test_parse_size_rejects_what_is_not_a_size_with_einval)
{
	uint64_t v = 42;

	ck_assert_int_eq(parse_size(not_sizes[_i], 0, UINT64_MAX, &v),
	    -EINVAL);
	ck_assert_msg(v == 42, "'%s' changed the output", not_sizes[_i]);
}
END_TEST

START_TEST(test_parse_size_rejects_out_of_range_and_overflow_with_erange)
{
	uint64_t v = 42;

	/* The range is the caller's, applied after the suffix. */
	ck_assert_int_eq(parse_size("0", 1, TIB, &v), -ERANGE);
	ck_assert_int_eq(parse_size("1025g", 1, TIB, &v), -ERANGE);
	ck_assert_int_eq(parse_size("16385k", 1, 16 << 20, &v), -ERANGE);
	ck_assert_int_eq(parse_size("1k", 1025, 4096, &v), -ERANGE);
	/* Overflow of the digits, and of the suffix's shift. */
	ck_assert_int_eq(parse_size("18446744073709551616", 0, UINT64_MAX,
	    &v), -ERANGE);
	ck_assert_int_eq(parse_size("17179869184g", 0, UINT64_MAX, &v),
	    -ERANGE);
	ck_assert(v == 42);
	/* Both ends of the range are inside it. */
	ck_assert_int_eq(parse_size("16384k", 1, 16 << 20, &v), 0);
	ck_assert(v == 16 << 20);
	ck_assert_int_eq(parse_size("0", 0, 0, &v), 0);
	ck_assert(v == 0);
	ck_assert_int_eq(parse_size("18446744073709551615", 0, UINT64_MAX,
	    &v), 0);
	ck_assert(v == UINT64_MAX);
}
END_TEST

START_TEST(test_fdlimit_raise_lifts_the_soft_limit_to_the_hard_one)
{
	struct rlimit rl = { 64, 256 };

	/* Check forks each test, so the lowered limits stay in this test
	 * (under CK_FORK=no they stay for the rest of this small suite). */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(fdlimit_raise(), 256);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 256);
	ck_assert_uint_eq(rl.rlim_max, 256);
	/* Already at the hard limit: nothing to raise, same answer. */
	ck_assert_int_eq(fdlimit_raise(), 256);
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("parse_size");

	tcase_add_loop_test(tc,
	    test_parse_size_takes_k_m_g_in_any_case_as_powers_of_1024, 0,
	    (int)(sizeof(good_sizes) / sizeof(good_sizes[0])));
	tcase_add_loop_test(tc,
	    test_parse_size_rejects_what_is_not_a_size_with_einval, 0,
	    (int)(sizeof(not_sizes) / sizeof(not_sizes[0])));
	tcase_add_test(tc,
	    test_parse_size_rejects_out_of_range_and_overflow_with_erange);
	suite_add_tcase(s, tc);

	tc = tcase_create("fdlimit");
	tcase_add_test(tc,
	    test_fdlimit_raise_lifts_the_soft_limit_to_the_hard_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(common_suite());
}
