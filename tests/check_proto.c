/*
 * Unit tests for the protocol handlers (src/proto/) and the worked
 * example (docs/examples/proto_counter.c), run through the fake
 * connection of proto_harness.h: no server, no socket.  They check each
 * handler's replies against known answers, that every way of splitting
 * the input into reads gives the same replies, and the rules of the line
 * handlers: LF and CRLF, quit, the --max-line boundary, the banner and
 * the final partial line.  A probe handler checks the harness itself
 * against proto.h, since every other test trusts it.
 */
#include "proto/lines.h"
#include "proto/proto.h"
#include "proto_harness.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

Suite *proto_suite(void);

/* The worked examples, which are not in the registry. */
extern const struct proto_ops proto_counter;
extern const struct proto_ops proto_clock;

#define TOO_LONG LINES_TOO_LONG

static const struct proto_config default_config = { .banner = NULL,
	    .max_line = 8192 };

/* The registered handler @name; fails the test if there is none. */
static const struct proto_ops *handler(const char *name)
{
	const struct proto_ops *ops = proto_find(name);

	ck_assert_msg(ops != NULL, "no handler '%s'", name);
	return ops;
}

/* Fails unless @c's replies are exactly the @want_len bytes of @want and
 * the handler kept to the contract. */
static void assert_replies(const struct conn *c, const char *want,
    size_t want_len)
{
	ck_assert_msg(c->violation == NULL, "contract breach: %s",
	    c->violation);
	ck_assert_msg(c->out_len == want_len &&
	    (want_len == 0 || !memcmp(c->out, want, want_len)),
	    "replies '%.*s' (%zu bytes), want '%.*s' (%zu bytes)",
	    (int)c->out_len, c->out ? c->out : "", c->out_len,
	    (int)want_len, want, want_len);
}

/* One whole connection of @in as one read; checks replies and ending. */
static void expect(const char *name, const struct proto_config *cfg,
    const char *in, const char *want, enum harness_end end)
{
	struct conn c;

	harness_run_chunked(&c, handler(name), cfg, in, strlen(in), 0);
	assert_replies(&c, want, strlen(want));
	ck_assert_msg(c.end == end, "%s: ended '%s', want '%s'", name,
	    harness_end_name(c.end), harness_end_name(end));
	ck_assert(c.released);
	harness_free(&c);
}

/* --- registry ------------------------------------------------------------ */

START_TEST(test_registry_lists_echo_line_reverse_resp_in_order)
{
	static const char *const want[] = { "echo", "line", "reverse",
		"resp", "sha256" };
	size_t i;

	for (i = 0; i < 5; i++) {
		ck_assert_ptr_nonnull(proto_handlers[i]);
		ck_assert_str_eq(proto_handlers[i]->name, want[i]);
		ck_assert_ptr_nonnull(proto_handlers[i]->summary);
		ck_assert_ptr_nonnull(proto_handlers[i]->data);
		ck_assert_ptr_eq(proto_find(want[i]), proto_handlers[i]);
	}
	ck_assert_ptr_null(proto_handlers[5]);
	ck_assert_ptr_null(proto_find("lines"));
	ck_assert_ptr_null(proto_find(""));
}
END_TEST

START_TEST(test_line_handlers_keep_any_line_under_the_largest_limit)
{
	ck_assert_uint_eq(handler("line")->max_pending,
	    PROTO_MAX_LINE_LIMIT + 1);
	ck_assert_uint_eq(handler("reverse")->max_pending,
	    PROTO_MAX_LINE_LIMIT + 1);
}
END_TEST

/* --- echo, line, reverse outputs ----------------------------------------- */

START_TEST(test_echo_replies_every_byte_without_copying)
{
	struct conn c;
	static const char in[] = "hello\r\nquit\nno newline";

	harness_run_chunked(&c, handler("echo"), &default_config, in,
	    sizeof(in) - 1, 0);
	assert_replies(&c, in, sizeof(in) - 1);
	ck_assert_uint_eq(c.zero_copy, c.replies);
	ck_assert_uint_eq(c.end, HARNESS_EOF);
	harness_free(&c);
}
END_TEST

START_TEST(test_line_replies_lf_and_crlf_lines_as_they_came)
{
	expect("line", &default_config, "a\nb\r\n\r\n\nc d\r\n",
	    "a\nb\r\n\r\n\nc d\r\n", HARNESS_EOF);
	/* A CR not before LF is content, and so is a CR before CRLF. */
	expect("line", &default_config, "x\ry\nz\r\r\n", "x\ry\nz\r\r\n",
	    HARNESS_EOF);
}
END_TEST

/* The lines of one read are replied from the input itself, back to back,
 * so the server can send them as one span. */
START_TEST(test_line_replies_point_into_the_input_contiguously)
{
	struct conn c;

	harness_open(&c, handler("line"), &default_config);
	harness_read(&c, "one\ntwo\r\nthree\npart", 19);
	assert_replies(&c, "one\ntwo\r\nthree\n", 15);
	ck_assert_uint_eq(c.replies, 3);
	ck_assert_uint_eq(c.zero_copy, 3);
	ck_assert_uint_eq(c.segments, 1);
	ck_assert_uint_eq(c.kept_len, 4);
	harness_free(&c);
}
END_TEST

START_TEST(test_line_keeps_a_partial_line_until_its_ending)
{
	struct conn c;

	harness_open(&c, handler("line"), &default_config);
	harness_read(&c, "ab", 2);
	ck_assert_uint_eq(c.out_len, 0);
	ck_assert_uint_eq(c.kept_len, 2);
	harness_read(&c, "c\r", 2);
	ck_assert_uint_eq(c.out_len, 0);
	ck_assert_uint_eq(c.kept_len, 4);
	harness_read(&c, "\nd", 2);
	assert_replies(&c, "abc\r\n", 5);
	ck_assert_uint_eq(c.kept_len, 1);
	ck_assert_uint_eq(c.end, HARNESS_OPEN);
	harness_free(&c);
}
END_TEST

START_TEST(test_line_eof_replies_the_final_partial_line)
{
	expect("line", &default_config, "one\ntwo", "one\ntwo", HARNESS_EOF);
	expect("line", &default_config, "x\r", "x\r", HARNESS_EOF);
	/* Without its ending, "quit" is just text. */
	expect("line", &default_config, "a\nquit", "a\nquit", HARNESS_EOF);
}
END_TEST

START_TEST(test_reverse_reverses_content_and_keeps_the_ending)
{
	expect("reverse", &default_config, "abc\r\n", "cba\r\n", HARNESS_EOF);
	expect("reverse", &default_config, "abc\n\nxy\r\n",
	    "cba\n\nyx\r\n", HARNESS_EOF);
	/* Only the CR of CRLF is part of the ending. */
	expect("reverse", &default_config, "ab\r\r\n", "\rba\r\n",
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_reverse_eof_reverses_the_final_partial_line)
{
	expect("reverse", &default_config, "xy\nabc", "yx\ncba", HARNESS_EOF);
	expect("reverse", &default_config, "ab\r", "\rba", HARNESS_EOF);
}
END_TEST

/* The reference: @content bytes of @in reversed into @out, then @ending. */
static void reverse_ref(char *out, const char *in, size_t content,
    size_t ending)
{
	size_t i;

	for (i = 0; i < content; i++)
		out[i] = in[content - 1 - i];
	memcpy(out + content, in + content, ending);
}

/* Lengths around one, two and three scratch buffers, with each ending, so
 * that the content and the ending fall on every side of a chunk edge. */
START_TEST(test_reverse_lines_longer_than_its_scratch_buffer)
{
	static const size_t S = LINES_REVERSE_SCRATCH;
	const size_t lens[] = { S - 2, S - 1, S, S + 1, 2 * S - 1, 2 * S,
	    3 * S + 7 };
	static const char *const endings[] = { "\n", "\r\n", "" };
	struct proto_config cfg = { .banner = NULL,
	    .max_line = 4 * S };
	uint64_t seed = 7;
	size_t i, e;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (e = 0; e < 3; e++) {
			size_t el = strlen(endings[e]), n = lens[i] + el, j;
			char *in = malloc(n), *want = malloc(n);
			size_t cut = n / 3;
			struct conn c;

			ck_assert(in && want);
			fill_random(&seed, in, lens[i]);
			for (j = 0; j < lens[i]; j++)
				if (in[j] == '\n' || in[j] == '\r')
					in[j] = 'x';
			memcpy(in + lens[i], endings[e], el);
			reverse_ref(want, in, lens[i], el);
			harness_run(&c, handler("reverse"), &cfg, in, n,
			    &cut, 1);
			ck_assert_msg(c.out_len == n &&
			    !memcmp(c.out, want, n),
			    "length %zu, ending %zu: wrong reply",
			    lens[i], el);
			ck_assert_ptr_null(c.violation);
			harness_free(&c);
			free(in);
			free(want);
		}
	}
}
END_TEST

/* --- quit ---------------------------------------------------------------- */

START_TEST(test_quit_closes_after_earlier_replies_and_drops_the_rest)
{
	expect("line", &default_config, "a\nquit\nb\n", "a\n",
	    HARNESS_CLOSED_BY_DATA);
	expect("reverse", &default_config, "ab\r\nquit\r\ncd\nef",
	    "ba\r\n", HARNESS_CLOSED_BY_DATA);
}
END_TEST

START_TEST(test_quit_is_case_insensitive_with_lf_or_crlf)
{
	expect("line", &default_config, "QUIT\n", "", HARNESS_CLOSED_BY_DATA);
	expect("line", &default_config, "QuIt\r\nx\n", "",
	    HARNESS_CLOSED_BY_DATA);
	expect("reverse", &default_config, "qUiT\n", "",
	    HARNESS_CLOSED_BY_DATA);
}
END_TEST

START_TEST(test_quit_counts_only_alone_on_its_line)
{
	static const char in[] = " quit\nquit \nquits\nqui\nquit\r\r\nq\n";

	expect("line", &default_config, in, in, HARNESS_EOF);
}
END_TEST

/* Later reads after quit are dropped, not given to the handler. */
START_TEST(test_quit_drops_reads_that_follow)
{
	struct conn c;

	harness_open(&c, handler("line"), &default_config);
	harness_read(&c, "a\nqu", 4);
	harness_read(&c, "it\n", 3);
	ck_assert_uint_eq(c.end, HARNESS_CLOSED_BY_DATA);
	harness_read(&c, "b\n", 2);
	harness_eof(&c);
	assert_replies(&c, "a\n", 2);
	ck_assert_uint_eq(c.data_calls, 2);
	harness_free(&c);
}
END_TEST

/* --- sha256 -------------------------------------------------------------- */

/* FIPS 180-2's vectors, and the empty line. */
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_448 \
	"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

START_TEST(test_sha256_hashes_each_line_without_its_ending)
{
	expect("sha256", &default_config,
	    "abc\n\r\nabcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
	    "\r\nabc",
	    SHA_ABC "\n" SHA_EMPTY "\r\n" SHA_448 "\r\n" SHA_ABC,
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_sha256_has_the_line_limit_and_quit)
{
	static const struct proto_config max8 = { .max_line = 8 };

	expect("sha256", &max8, "abc\n123456789\nabc\n",
	    SHA_ABC "\n" TOO_LONG, HARNESS_CLOSED_BY_DATA);
	expect("sha256", &default_config, "abc\nQUIT\r\nabc\n",
	    SHA_ABC "\n", HARNESS_CLOSED_BY_DATA);
}
END_TEST

START_TEST(test_sha256_lines_split_at_every_offset_hash_the_same)
{
	static const char in[] = "abc\r\n\nabc\nab";
	static const char want[] = SHA_ABC "\r\n" SHA_EMPTY "\n" SHA_ABC
	    "\n" "fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603";

	for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
		struct conn c;

		harness_run(&c, handler("sha256"), &default_config, in,
		    sizeof(in) - 1, &cut, 1);
		assert_replies(&c, want, sizeof(want) - 1);
		harness_free(&c);
	}
}
END_TEST

/* --- max_line ------------------------------------------------------------ */

static const struct proto_config max8 = { .banner = NULL,
	    .max_line = 8 };

START_TEST(test_max_line_accepts_a_complete_line_of_exactly_max_line)
{
	expect("line", &max8, "12345678\n", "12345678\n", HARNESS_EOF);
	expect("line", &max8, "12345678\r\n", "12345678\r\n", HARNESS_EOF);
	expect("reverse", &max8, "12345678\r\n", "87654321\r\n",
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_max_line_rejects_a_complete_line_of_max_line_plus_one)
{
	expect("line", &max8, "ok\n123456789\nlater\n", "ok\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA);
	expect("line", &max8, "123456789\r\n", TOO_LONG,
	    HARNESS_CLOSED_BY_DATA);
	expect("reverse", &max8, "ab\n123456789\r\n", "ba\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA);
	/* CR before CRLF is content: 8 + 1 bytes. */
	expect("line", &max8, "12345678\r\r\n", TOO_LONG,
	    HARNESS_CLOSED_BY_DATA);
}
END_TEST

START_TEST(test_max_line_partial_line_is_rejected_at_max_line_plus_one)
{
	struct conn c;

	harness_open(&c, handler("line"), &max8);
	harness_read(&c, "ok\n12345678", 11);
	ck_assert_uint_eq(c.end, HARNESS_OPEN);
	ck_assert_uint_eq(c.kept_len, 8);
	harness_read(&c, "9", 1);
	ck_assert_uint_eq(c.end, HARNESS_CLOSED_BY_DATA);
	assert_replies(&c, "ok\n" TOO_LONG, 3 + strlen(TOO_LONG));
	harness_free(&c);
}
END_TEST

/* A partial line of max_line + 1 ending in CR may still be a line of
 * max_line: it is kept until the next byte says which. */
START_TEST(test_max_line_partial_final_cr_is_not_counted_yet)
{
	struct conn c;

	harness_open(&c, handler("line"), &max8);
	harness_read(&c, "12345678\r", 9);
	ck_assert_uint_eq(c.end, HARNESS_OPEN);
	ck_assert_uint_eq(c.kept_len, 9);
	harness_read(&c, "\n", 1);
	assert_replies(&c, "12345678\r\n", 10);
	harness_read(&c, "12345678\r", 9);
	harness_read(&c, "x", 1);
	ck_assert_uint_eq(c.end, HARNESS_CLOSED_BY_DATA);
	assert_replies(&c, "12345678\r\n" TOO_LONG, 10 + strlen(TOO_LONG));
	harness_free(&c);
}
END_TEST

START_TEST(test_max_line_final_partial_line_at_eof)
{
	expect("line", &max8, "12345678", "12345678", HARNESS_EOF);
	expect("reverse", &max8, "12345678", "87654321", HARNESS_EOF);
	/* At EOF no LF can follow, so the CR is content: 9 bytes. */
	expect("line", &max8, "a\n12345678\r", "a\n" TOO_LONG, HARNESS_EOF);
}
END_TEST

START_TEST(test_max_line_zero_takes_only_empty_lines)
{
	static const struct proto_config max0 = { .banner = NULL,
	    .max_line = 0 };

	expect("line", &max0, "\n\r\n\n", "\n\r\n\n", HARNESS_EOF);
	expect("line", &max0, "\n\r\na", "\n\r\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA);
}
END_TEST

/* --- banner -------------------------------------------------------------- */

START_TEST(test_banner_is_sent_on_open_with_crlf)
{
	static const struct proto_config cfg = { .banner = "hello there",
	    .max_line = 8192 };
	struct conn c;

	ck_assert_int_eq(harness_open(&c, handler("line"), &cfg), 0);
	assert_replies(&c, "hello there\r\n", 13);
	harness_free(&c);
	expect("line", &cfg, "a\n", "hello there\r\na\n", HARNESS_EOF);
	/* The banner is not a line of input: it is not reversed. */
	expect("reverse", &cfg, "ab\n", "hello there\r\nba\n", HARNESS_EOF);
}
END_TEST

START_TEST(test_no_banner_sends_nothing_on_open)
{
	struct conn c;

	ck_assert_int_eq(harness_open(&c, handler("line"), &default_config),
	    0);
	ck_assert_uint_eq(c.replies, 0);
	harness_free(&c);
	ck_assert_int_eq(harness_open(&c, handler("reverse"),
	    &default_config), 0);
	ck_assert_uint_eq(c.replies, 0);
	harness_free(&c);
}
END_TEST

/* --- splitting ----------------------------------------------------------- */

/* Inputs whose replies are known; each must come out the same however it
 * is split. */
static const struct split_case {
	const char *handler;
	size_t max_line;
	const char *banner;
	const char *in;
	const char *want;
	enum harness_end end;
} split_cases[] = {
	{ "line", 5, NULL, "one\r\ntwo\n\nthree\r\nfour",
	    "one\r\ntwo\n\nthree\r\nfour", HARNESS_EOF },
	{ "reverse", 5, NULL, "one\r\ntwo\n\nthree\r\nfour",
	    "eno\r\nowt\n\neerht\r\nruof", HARNESS_EOF },
	{ "line", 5, NULL, "a\nQUIT\r\nb\n", "a\n", HARNESS_CLOSED_BY_DATA },
	{ "reverse", 5, "hi", "ab\nquit\nc\n", "hi\r\nba\n",
	    HARNESS_CLOSED_BY_DATA },
	{ "line", 5, NULL, "12345\r\n123456\nx\n", "12345\r\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA },
	{ "line", 5, NULL, "ab\n12345\r\ncd\r", "ab\n12345\r\ncd\r",
	    HARNESS_EOF },
	{ "line", 5, NULL, "ab\n12345\r", "ab\n" TOO_LONG, HARNESS_EOF },
	{ "reverse", 5, NULL, "ab\n123456", "ba\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA },
	{ "reverse", 5, NULL, "x\r\r\ny\r", "\rx\r\n\ry", HARNESS_EOF },
	{ "line", 0, NULL, "\n\r\n\na", "\n\r\n\n" TOO_LONG,
	    HARNESS_CLOSED_BY_DATA },
	{ "echo", 5, NULL, "anything\nquit\n", "anything\nquit\n",
	    HARNESS_EOF },
	{ "counter", 5, NULL, "a\nb\r\n\nc", "1: a\n2: b\r\n3: \n4: c",
	    HARNESS_EOF },
};

/* The handler of @k, registered or the example. */
static const struct proto_ops *split_handler(const struct split_case *k)
{
	return strcmp(k->handler, "counter") ? handler(k->handler) :
	    &proto_counter;
}

/* Checks one run of @k that was split as @how says. */
static void check_split(struct conn *c, const struct split_case *k,
    const char *how, size_t at)
{
	size_t want_len = strlen(k->want);

	ck_assert_msg(c->violation == NULL, "%s: contract breach: %s",
	    k->handler, c->violation);
	ck_assert_msg(c->out_len == want_len &&
	    (want_len == 0 || !memcmp(c->out, k->want, want_len)),
	    "%s on '%s' %s %zu: replied '%.*s'", k->handler, k->in, how, at,
	    (int)c->out_len, c->out ? c->out : "");
	ck_assert_msg(c->end == k->end, "%s on '%s' %s %zu: ended '%s'",
	    k->handler, k->in, how, at, harness_end_name(c->end));
}

START_TEST(test_split_one_read_gives_the_known_replies)
{
	const struct split_case *k = &split_cases[_i];
	struct proto_config cfg = { .banner = k->banner,
	    .max_line = k->max_line };
	struct conn c;

	harness_run_chunked(&c, split_handler(k), &cfg, k->in, strlen(k->in),
	    0);
	check_split(&c, k, "in one read", 0);
	harness_free(&c);
}
END_TEST

START_TEST(test_split_at_every_offset_gives_the_same_replies)
{
	const struct split_case *k = &split_cases[_i];
	struct proto_config cfg = { .banner = k->banner,
	    .max_line = k->max_line };
	size_t len = strlen(k->in), at;

	for (at = 0; at <= len; at++) {
		struct conn c;

		harness_run(&c, split_handler(k), &cfg, k->in, len, &at, 1);
		check_split(&c, k, "split at", at);
		harness_free(&c);
	}
}
END_TEST

START_TEST(test_split_byte_at_a_time_gives_the_same_replies)
{
	const struct split_case *k = &split_cases[_i];
	struct proto_config cfg = { .banner = k->banner,
	    .max_line = k->max_line };
	struct conn c;

	harness_run_chunked(&c, split_handler(k), &cfg, k->in, strlen(k->in),
	    1);
	check_split(&c, k, "byte at a time, from", 0);
	harness_free(&c);
}
END_TEST

/* --- the worked example -------------------------------------------------- */

START_TEST(test_counter_numbers_lines_across_reads_and_at_eof)
{
	struct conn c;

	harness_open(&c, &proto_counter, &default_config);
	harness_read(&c, "first\nsec", 9);
	assert_replies(&c, "1: first\n", 9);
	ck_assert_uint_eq(c.kept_len, 3);
	harness_read(&c, "ond\nthird\nla", 12);
	assert_replies(&c, "1: first\n2: second\n3: third\n", 28);
	harness_eof(&c);
	assert_replies(&c, "1: first\n2: second\n3: third\n4: la", 33);
	harness_release(&c);
	ck_assert(c.released);
	harness_free(&c);
}
END_TEST

/* Its replies are its own buffer, so they must be copies, and one per
 * read however many lines it held. */
START_TEST(test_counter_replies_once_per_read_from_its_own_buffer)
{
	struct conn c;

	harness_open(&c, &proto_counter, &default_config);
	harness_read(&c, "a\nb\nc\n", 6);
	ck_assert_uint_eq(c.replies, 1);
	ck_assert_uint_eq(c.zero_copy, 0);
	assert_replies(&c, "1: a\n2: b\n3: c\n", 15);
	harness_free(&c);
}
END_TEST

/* Counter leaves lines to max_pending: a 4 KiB partial line is kept, one
 * byte more closes the connection. */
START_TEST(test_counter_relies_on_max_pending_for_long_lines)
{
	struct conn c;
	char *big = malloc(4097);

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 4097);
	harness_open(&c, &proto_counter, &default_config);
	harness_read(&c, big, 4096);
	ck_assert_uint_eq(c.end, HARNESS_OPEN);
	harness_read(&c, big, 1);
	ck_assert_uint_eq(c.end, HARNESS_OVERFLOW);
	ck_assert_uint_eq(c.out_len, 0);
	harness_free(&c);
	free(big);
}
END_TEST

/* The snippet of docs/protocols.md, "Testing a handler", as it is there. */
START_TEST(test_counter_docs_snippet_holds)
{
	struct proto_config cfg = { .banner = NULL,
	    .max_line = 8192 };
	size_t cuts[] = { 3, 7 };		/* reads [0,3) [3,7) [7,len) */
	struct conn c;

	harness_run(&c, &proto_counter, &cfg, "a\nbb\ncc\nd", 9, cuts, 2);
	ck_assert_ptr_null(c.violation);
	ck_assert_uint_eq(c.out_len, 21);
	ck_assert(!memcmp(c.out, "1: a\n2: bb\n3: cc\n4: d", 21));
	ck_assert_uint_eq(c.end, HARNESS_EOF);
	harness_free(&c);
}
END_TEST

/* The clock example: watchers get a line per tick from the worker's
 * ticker, outside any call of theirs; a watcher that leaves gets none;
 * the ticker and the local state go with the worker. */
START_TEST(test_clock_ticker_reaches_every_watcher_of_the_worker)
{
	struct proto_config cfg = { .max_line = 8192 };
	struct conn a, b, idle;

	ck_assert_int_eq(harness_open(&a, &proto_clock, &cfg), 0);
	ck_assert_int_eq(harness_open(&b, &proto_clock, &cfg), 0);
	ck_assert_int_eq(harness_open(&idle, &proto_clock, &cfg), 0);
	harness_read(&a, "watch\n", 6);
	harness_read(&b, "watch\nwatch\n", 12);
	harness_tick();
	harness_tick();
	assert_replies(&a, "watching\ntick 1\ntick 2\n", 23);
	assert_replies(&b, "watching\nwatching\ntick 1\ntick 2\n", 32);
	harness_release(&a);
	harness_tick();
	assert_replies(&b, "watching\nwatching\ntick 1\ntick 2\ntick 3\n",
	    39);
	assert_replies(&idle, "", 0);
	harness_free(&a);
	harness_free(&b);
	harness_free(&idle);
	harness_env_release();	/* frees the ticker: ASan and valgrind */
	ck_assert_ptr_null(harness_env.tickers[0]);
}
END_TEST

/* Without a pool an alarm rings at once; wake() is what rings it from a
 * pool job, and replies as a handler call. */
START_TEST(test_clock_alarm_without_a_pool_and_wake)
{
	struct proto_config cfg = { .max_line = 8192 };
	struct conn c;

	ck_assert_int_eq(harness_open(&c, &proto_clock, &cfg), 0);
	harness_read(&c, "alarm 10\nnope\n", 15);
	harness_wake(&c);
	assert_replies(&c, "alarm\n?\nalarm\n", 14);
	harness_free(&c);
	harness_env_release();
}
END_TEST

/* --- the harness itself -------------------------------------------------- */

/*
 * A probe handler: consumes one byte per call, and records what it was
 * called with, so that the harness can be checked against proto.h.
 */
static struct {
	int opens, datas, eofs, releases;
	int state_was_zero;
	char seen[64];		/* the @in of the last data() call */
	size_t seen_len;
	char eof_in[64];
	size_t eof_len;
	int close_on_open;
} probe;

#define PROBE_STATE 48

static int probe_open(struct conn *c, void *state)
{
	const unsigned char *s = state;
	size_t i;

	probe.opens++;
	probe.state_was_zero = s != NULL;
	for (i = 0; s && i < PROBE_STATE; i++)
		if (s[i])
			probe.state_was_zero = 0;
	memset(state, 0xa5, PROBE_STATE);
	return probe.close_on_open ? PROTO_CLOSE : 0;
}

static ssize_t probe_data(struct conn *c, void *state, const char *in,
    size_t len)
{
	probe.datas++;
	probe.seen_len = len < sizeof(probe.seen) ? len : sizeof(probe.seen);
	memcpy(probe.seen, in, probe.seen_len);
	return 1;
}

static void probe_eof(struct conn *c, void *state, const char *in,
    size_t len)
{
	probe.eofs++;
	probe.eof_len = len < sizeof(probe.eof_in) ? len :
	    sizeof(probe.eof_in);
	memcpy(probe.eof_in, in, probe.eof_len);
}

static void probe_release(struct conn *c, void *state)
{
	probe.releases++;
}

static const struct proto_ops probe_ops = {
	.name = "probe",
	.summary = "test only",
	.state_size = PROBE_STATE,
	.max_pending = 4,
	.open = probe_open,
	.data = probe_data,
	.eof = probe_eof,
	.release = probe_release,
};

START_TEST(test_harness_represents_unconsumed_input_before_new_bytes)
{
	struct conn c;

	memset(&probe, 0, sizeof(probe));
	harness_open(&c, &probe_ops, &default_config);
	ck_assert(probe.state_was_zero);
	harness_read(&c, "abc", 3);
	ck_assert_uint_eq(probe.seen_len, 3);
	harness_read(&c, "de", 2);
	ck_assert_uint_eq(probe.seen_len, 4);
	ck_assert(!memcmp(probe.seen, "bcde", 4));
	harness_eof(&c);
	ck_assert_int_eq(probe.eofs, 1);
	ck_assert_uint_eq(probe.eof_len, 3);
	ck_assert(!memcmp(probe.eof_in, "cde", 3));
	harness_release(&c);
	harness_release(&c);
	harness_free(&c);
	ck_assert_int_eq(probe.releases, 1);
	ck_assert_ptr_null(c.violation);
}
END_TEST

START_TEST(test_harness_closes_when_kept_input_passes_max_pending)
{
	struct conn c;

	memset(&probe, 0, sizeof(probe));
	harness_open(&c, &probe_ops, &default_config);
	harness_read(&c, "abcde", 5);
	ck_assert_uint_eq(c.end, HARNESS_OPEN);
	ck_assert_uint_eq(c.kept_len, 4);
	harness_read(&c, "fg", 2);
	ck_assert_uint_eq(c.end, HARNESS_OVERFLOW);
	harness_read(&c, "g", 1);
	harness_eof(&c);
	ck_assert_int_eq(probe.datas, 2);
	ck_assert_int_eq(probe.eofs, 0);
	harness_free(&c);
	ck_assert_int_eq(probe.releases, 1);
}
END_TEST

START_TEST(test_harness_releases_once_when_open_closes)
{
	struct conn c;

	memset(&probe, 0, sizeof(probe));
	probe.close_on_open = 1;
	ck_assert_int_eq(harness_open(&c, &probe_ops, &default_config),
	    PROTO_CLOSE);
	harness_read(&c, "x", 1);
	harness_eof(&c);
	harness_free(&c);
	ck_assert_int_eq(probe.datas, 0);
	ck_assert_int_eq(probe.eofs, 0);
	ck_assert_int_eq(probe.releases, 1);
	ck_assert_uint_eq(c.end, HARNESS_CLOSED_BY_OPEN);
}
END_TEST

static void replying_release(struct conn *c, void *state)
{
	conn_reply(c, "late", 4);
}

START_TEST(test_harness_reports_a_reply_from_release)
{
	struct proto_ops ops = probe_ops;
	struct conn c;

	memset(&probe, 0, sizeof(probe));
	ops.release = replying_release;
	harness_run_chunked(&c, &ops, &default_config, "a\n", 2, 0);
	ck_assert_ptr_nonnull(c.violation);
	ck_assert_uint_eq(c.out_len, 0);
	harness_free(&c);
}
END_TEST

Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	int nsplit = (int)(sizeof(split_cases) / sizeof(split_cases[0]));
	TCase *tc = tcase_create("registry");

	tcase_add_test(tc,
	    test_registry_lists_echo_line_reverse_resp_in_order);
	tcase_add_test(tc,
	    test_line_handlers_keep_any_line_under_the_largest_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("output");
	tcase_add_test(tc, test_echo_replies_every_byte_without_copying);
	tcase_add_test(tc, test_line_replies_lf_and_crlf_lines_as_they_came);
	tcase_add_test(tc,
	    test_line_replies_point_into_the_input_contiguously);
	tcase_add_test(tc, test_line_keeps_a_partial_line_until_its_ending);
	tcase_add_test(tc, test_line_eof_replies_the_final_partial_line);
	tcase_add_test(tc, test_reverse_reverses_content_and_keeps_the_ending);
	tcase_add_test(tc, test_reverse_eof_reverses_the_final_partial_line);
	tcase_add_test(tc, test_reverse_lines_longer_than_its_scratch_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("quit");
	tcase_add_test(tc,
	    test_quit_closes_after_earlier_replies_and_drops_the_rest);
	tcase_add_test(tc, test_quit_is_case_insensitive_with_lf_or_crlf);
	tcase_add_test(tc, test_quit_counts_only_alone_on_its_line);
	tcase_add_test(tc, test_quit_drops_reads_that_follow);
	suite_add_tcase(s, tc);

	tc = tcase_create("max_line");
	tcase_add_test(tc,
	    test_max_line_accepts_a_complete_line_of_exactly_max_line);
	tcase_add_test(tc,
	    test_max_line_rejects_a_complete_line_of_max_line_plus_one);
	tcase_add_test(tc,
	    test_max_line_partial_line_is_rejected_at_max_line_plus_one);
	tcase_add_test(tc, test_max_line_partial_final_cr_is_not_counted_yet);
	tcase_add_test(tc, test_max_line_final_partial_line_at_eof);
	tcase_add_test(tc, test_max_line_zero_takes_only_empty_lines);
	suite_add_tcase(s, tc);

	tc = tcase_create("sha256");
	tcase_add_test(tc, test_sha256_hashes_each_line_without_its_ending);
	tcase_add_test(tc, test_sha256_has_the_line_limit_and_quit);
	tcase_add_test(tc,
	    test_sha256_lines_split_at_every_offset_hash_the_same);
	suite_add_tcase(s, tc);

	tc = tcase_create("banner");
	tcase_add_test(tc, test_banner_is_sent_on_open_with_crlf);
	tcase_add_test(tc, test_no_banner_sends_nothing_on_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("split");
	tcase_add_loop_test(tc, test_split_one_read_gives_the_known_replies,
	    0, nsplit);
	tcase_add_loop_test(tc,
	    test_split_at_every_offset_gives_the_same_replies, 0, nsplit);
	tcase_add_loop_test(tc,
	    test_split_byte_at_a_time_gives_the_same_replies, 0, nsplit);
	suite_add_tcase(s, tc);

	tc = tcase_create("example");
	tcase_add_test(tc, test_counter_numbers_lines_across_reads_and_at_eof);
	tcase_add_test(tc,
	    test_counter_replies_once_per_read_from_its_own_buffer);
	tcase_add_test(tc, test_counter_relies_on_max_pending_for_long_lines);
	tcase_add_test(tc, test_counter_docs_snippet_holds);
	tcase_add_test(tc,
	    test_clock_ticker_reaches_every_watcher_of_the_worker);
	tcase_add_test(tc, test_clock_alarm_without_a_pool_and_wake);
	suite_add_tcase(s, tc);

	tc = tcase_create("harness");
	tcase_add_test(tc,
	    test_harness_represents_unconsumed_input_before_new_bytes);
	tcase_add_test(tc,
	    test_harness_closes_when_kept_input_passes_max_pending);
	tcase_add_test(tc, test_harness_releases_once_when_open_closes);
	tcase_add_test(tc, test_harness_reports_a_reply_from_release);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(proto_suite());
}
