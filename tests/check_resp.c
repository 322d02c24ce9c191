/*
 * Unit tests for the resp handler (src/proto/resp*.c) through the fake
 * connection of proto_harness.h, on a real store (src/store.c), a fresh
 * one per connection unless a test shares one on purpose.  They check redis's
 * replies and error texts byte for byte, that every split of the input
 * into reads gives the same replies as one read, the limits, every
 * command's options, and that replies to one read are gathered.
 */
#include "proto/proto.h"
#include "proto/resp_cmd.h"
#include "proto/resp_parse.h"
#include "proto_harness.h"
#include "store.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *resp_suite(void);

#define S(lit) lit, sizeof(lit) - 1

static const struct proto_ops *resp(void)
{
	const struct proto_ops *ops = proto_find("resp");

	ck_assert_msg(ops != NULL, "no handler 'resp'");
	return ops;
}

/* A config for @s (borrowed; may be NULL) with the default limits. */
static struct proto_config config_for(struct store *s)
{
	struct proto_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_line = 8192;
	cfg.max_bulk = PROTO_MAX_BULK_LIMIT;
	cfg.store = s;
	return cfg;
}

static struct store *new_store(void)
{
	struct store *s = store_new(NULL);

	ck_assert_ptr_nonnull(s);
	return s;
}

static void assert_out(const struct conn *c, const char *want,
    size_t want_len)
{
	ck_assert_msg(c->violation == NULL, "contract breach: %s",
	    c->violation);
	ck_assert_msg(c->out_len == want_len &&
	    (want_len == 0 || !memcmp(c->out, want, want_len)),
	    "replies '%.*s' (%zu bytes), want '%.*s' (%zu bytes)",
	    (int)(c->out_len < 600 ? c->out_len : 600),
	    c->out ? c->out : "", c->out_len,
	    (int)(want_len < 600 ? want_len : 600), want, want_len);
}

static void assert_end(const struct conn *c, enum harness_end end)
{
	ck_assert_msg(c->end == end, "ended '%s', want '%s'",
	    harness_end_name(c->end), harness_end_name(end));
}

/* @in as one read on @cfg; checks the replies and how it ended. */
static void expect_cfg(const struct proto_config *cfg, const char *in,
    size_t len, const char *want, size_t want_len, enum harness_end end)
{
	struct conn c;

	harness_run_chunked(&c, resp(), cfg, in, len, 0);
	assert_out(&c, want, want_len);
	assert_end(&c, end);
	ck_assert(c.released);
	harness_free(&c);
}

/* As expect_cfg() on a fresh store. */
static void expect_n(const char *in, size_t len, const char *want,
    size_t want_len, enum harness_end end)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);

	expect_cfg(&cfg, in, len, want, want_len, end);
	store_free(s);
}

static void expect(const char *in, const char *want, enum harness_end end)
{
	expect_n(in, strlen(in), want, strlen(want), end);
}

/* --- frames ---------------------------------------------------------- */

/* Without a pool (the harness has none) DEBUG SLEEP sleeps inline, as
 * redis does; check_offload.c runs it on the pool. */
START_TEST(test_resp_debug_sleep_replies_ok_and_checks_its_argument)
{
	uint64_t t0 = now_ms();

	expect("DEBUG SLEEP 0.05\r\ndebug sleep 0\r\nPING\r\n",
	    "+OK\r\n+OK\r\n+PONG\r\n", HARNESS_EOF);
	ck_assert_uint_ge(now_ms() - t0, 50);
	expect("DEBUG SLEEP x\r\nDEBUG SLEEP -1\r\nDEBUG SLEEP 1e9\r\n",
	    "-ERR value is not a valid float\r\n"
	    "-ERR value is not a valid float\r\n"
	    "-ERR value is not a valid float\r\n", HARNESS_EOF);
	expect("DEBUG SLEEP\r\nDEBUG\r\nDEBUG NOPE\r\n",
	    "-ERR wrong number of arguments for 'debug|sleep' command\r\n"
	    "-ERR wrong number of arguments for 'debug' command\r\n"
	    "-ERR unknown subcommand 'NOPE'. Try DEBUG HELP.\r\n",
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_resp_is_registered_and_keeps_the_largest_frame)
{
	ck_assert_str_eq(resp()->name, "resp");
	ck_assert_ptr_nonnull(resp()->summary);
	ck_assert_uint_ge(resp()->max_pending,
	    PROTO_MAX_BULK_LIMIT + RESP_INLINE_MAX);
}
END_TEST

START_TEST(test_resp_ping_inline_and_multibulk_reply_pong)
{
	/* redis-benchmark's PING_INLINE and PING_MBULK. */
	expect("PING\r\n", "+PONG\r\n", HARNESS_EOF);
	expect("*1\r\n$4\r\nPING\r\n", "+PONG\r\n", HARNESS_EOF);
	expect("ping\n", "+PONG\r\n", HARNESS_EOF);
	expect("PiNg hello\r\n", "$5\r\nhello\r\n", HARNESS_EOF);
	expect("*2\r\n$4\r\nPING\r\n$0\r\n\r\n", "$0\r\n\r\n", HARNESS_EOF);
}
END_TEST

START_TEST(test_resp_benchmark_set_and_get_frames)
{
	expect("*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"
	    "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n",
	    "+OK\r\n$3\r\nxxx\r\n", HARNESS_EOF);
}
END_TEST

START_TEST(test_resp_empty_requests_are_skipped)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;
	static const char in[] = "\r\n\n   \r\n*0\r\n*-1\r\nPING\r\n\t\n";

	harness_run_chunked(&c, resp(), &cfg, S(in), 0);
	assert_out(&c, S("+PONG\r\n"));
	ck_assert_uint_eq(c.requests, 1);
	harness_free(&c);
	store_free(s);
}
END_TEST

/* Bulks are binary-safe: CR, LF and NUL inside them are data. */
START_TEST(test_resp_bulks_may_hold_cr_lf_and_nul)
{
	expect_n(S("*2\r\n$4\r\nECHO\r\n$5\r\na\r\nb\n\r\n"),
	    S("$5\r\na\r\nb\n\r\n"), HARNESS_EOF);
	expect_n(S("*3\r\n$3\r\nSET\r\n$2\r\nk\0\r\n$3\r\n\0\r\n\r\n"
	    "*2\r\n$3\r\nGET\r\n$2\r\nk\0\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
	    S("+OK\r\n$3\r\n\0\r\n\r\n$-1\r\n"), HARNESS_EOF);
}
END_TEST

/* redis skips the two bytes after a bulk without looking at them. */
START_TEST(test_resp_bytes_after_a_bulk_are_skipped_unchecked)
{
	expect("*2\r\n$4\r\nECHO\r\n$1\r\nxYZ*1\r\n$4\r\nPING\r\n",
	    "$1\r\nx\r\n+PONG\r\n", HARNESS_EOF);
	expect("*1\r\n$4\r\nPINGabPING\n", "+PONG\r\n+PONG\r\n",
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_resp_inline_quoting_follows_redis)
{
	expect("SET \"a b\" 'c d'\r\nGET \"a b\"\r\n",
	    "+OK\r\n$3\r\nc d\r\n", HARNESS_EOF);
	expect("ECHO \"\\x41\\x4a\\n\\r\\t\\\"\\\\\"\r\n",
	    "$7\r\nAJ\n\r\t\"\\\r\n", HARNESS_EOF);
	expect("ECHO 'it\\'s'\r\n", "$4\r\nit's\r\n", HARNESS_EOF);
	expect("ECHO a\"b c\"\r\n", "$4\r\nab c\r\n", HARNESS_EOF);
	expect("ECHO \"\"\r\n", "$0\r\n\r\n", HARNESS_EOF);
	expect("  ECHO \t  x  \r\n", "$1\r\nx\r\n", HARNESS_EOF);
	/* Only one CR before LF is the ending; others are blanks. */
	expect("ECHO x\r\r\n", "$1\r\nx\r\n", HARNESS_EOF);
}
END_TEST

START_TEST(test_resp_large_bulks_are_replied_from_the_input)
{
	size_t n = 4096, hdr;
	char *in = malloc(n + 64), *want = malloc(n + 64);
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;
	int w;

	ck_assert(in && want);
	hdr = (size_t)sprintf(in, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", n);
	memset(in + hdr, 'v', n);
	memcpy(in + hdr + n, "\r\n", 2);
	w = sprintf(want, "$%zu\r\n", n);
	memset(want + w, 'v', n);
	memcpy(want + w + n, "\r\n", 2);
	harness_run_chunked(&c, resp(), &cfg, in, hdr + n + 2, 0);
	assert_out(&c, want, (size_t)w + n + 2);
	ck_assert_uint_ge(c.zero_copy, 1);
	harness_free(&c);
	store_free(s);
	free(in);
	free(want);
}
END_TEST

/* Every request of one read is answered within that read's data(), so
 * the connection writes them together, and counted once. */
START_TEST(test_resp_pipeline_is_answered_in_one_call)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;

	harness_open(&c, resp(), &cfg);
	harness_read(&c, S("PING\r\n*1\r\n$4\r\nPING\r\nSET a 1\r\nGET a\r\n"
	    "INCR a\r\nPING"));
	assert_out(&c, S("+PONG\r\n+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n"));
	ck_assert_uint_eq(c.data_calls, 1);
	ck_assert_uint_eq(c.requests, 5);
	ck_assert_uint_eq(c.kept_len, 4);
	harness_read(&c, S("\r\n"));
	ck_assert_uint_eq(c.requests, 6);
	ck_assert_uint_eq(c.kept_len, 0);
	harness_free(&c);
	store_free(s);
}
END_TEST

/* A bulk much larger than a read, arriving in many reads.  1 MiB in
 * 16 KiB reads is 64 of them; the harness copies all kept input at every
 * read, so larger sizes only make sanitizer runs slow. */
START_TEST(test_resp_large_bulk_across_many_reads)
{
	size_t n = (size_t)1 << 20, hdr, i;
	char *in = malloc(n + 128);
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;
	static const char tail[] = "\r\nSTRLEN k\r\nDBSIZE\r\n";
	static const char want[] = "+OK\r\n-ERR unknown command 'STRLEN', "
	    "with args beginning with: 'k' \r\n:1\r\n";

	ck_assert_ptr_nonnull(in);
	hdr = (size_t)sprintf(in, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", n);
	for (i = 0; i < n; i++)
		in[hdr + i] = (char)('a' + i % 26);
	memcpy(in + hdr + n, tail, sizeof(tail) - 1);
	harness_run_chunked(&c, resp(), &cfg, in, hdr + n + sizeof(tail) - 1,
	    16384);
	assert_out(&c, S(want));
	harness_free(&c);
	store_free(s);
	free(in);
}
END_TEST

/* One request of many arguments does not pin its argument vector for
 * the rest of the connection. */
START_TEST(test_resp_a_huge_request_frees_its_arguments_after)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	const struct resp_conn *rc;
	size_t n = 5000, i, len = 0;
	char *in = malloc(32 + n * 7);
	struct conn c;

	ck_assert_ptr_nonnull(in);
	len += (size_t)sprintf(in, "*%zu\r\n$6\r\nEXISTS\r\n", n);
	for (i = 1; i < n; i++)
		len += (size_t)sprintf(in + len, "$1\r\nk\r\n");
	harness_open(&c, resp(), &cfg);
	harness_read(&c, in, len);
	assert_out(&c, S(":0\r\n"));
	rc = c.state;
	ck_assert_uint_le(rc->parser.cap, RESP_KEEP_ARGS);
	harness_read(&c, S("EXISTS a b\r\n"));
	assert_out(&c, S(":0\r\n:0\r\n"));
	harness_free(&c);
	store_free(s);
	free(in);
}
END_TEST

/* --- splits ---------------------------------------------------------- */

struct split_case {
	const char *in, *want;
	size_t in_len, want_len;
	enum harness_end end;
};

#define CASE(in, want, end) { in, want, sizeof(in) - 1, sizeof(want) - 1, \
	end }

static const struct split_case split_cases[] = {
	CASE("PING\r\n"
	    "*1\r\n$4\r\nPING\r\n"
	    "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"
	    "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n"
	    "SET \"a b\" 'c\\'d' NX\r\n"
	    "GET \"a b\"\r\n"
	    "\r\n"
	    "*0\r\n"
	    "INCR n\r\nINCRBY n 41\r\nDECR n\r\nDECRBY n 2\r\n"
	    "MSET x 1 y 2\r\nMGET x y z\r\n"
	    "DEL x z\r\nEXISTS x y y\r\n"
	    "*2\r\n$4\r\nECHO\r\n$5\r\na\r\nb\n\r\n"
	    "FOO bar\r\nGET\r\n"
	    "SET k v EX 100 XX\r\n"
	    "DBSIZE\r\n"
	    "CONFIG GET save\r\nSELECT 0\r\n"
	    "QUIT\r\nPING\r\n",
	    "+PONG\r\n"
	    "+PONG\r\n"
	    "+OK\r\n"
	    "$3\r\nxxx\r\n"
	    "+OK\r\n"
	    "$3\r\nc'd\r\n"
	    ":1\r\n:42\r\n:41\r\n:39\r\n"
	    "+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"
	    ":1\r\n:2\r\n"
	    "$5\r\na\r\nb\n\r\n"
	    "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
	    "-ERR wrong number of arguments for 'get' command\r\n"
	    "$-1\r\n"
	    ":4\r\n"
	    "*2\r\n$4\r\nsave\r\n$0\r\n\r\n+OK\r\n"
	    "+OK\r\n", HARNESS_CLOSED_BY_DATA),
	CASE("PING\r\n*1048577\r\n",
	    "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("*2\r\n$4\r\nECHO\r\n$x\r\n",
	    "-ERR Protocol error: invalid bulk length\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("*1\r\n+PING\r\n",
	    "-ERR Protocol error: expected '$', got '+'\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("ECHO \"abc\r\nPING\r\n",
	    "-ERR Protocol error: unbalanced quotes in request\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("*a\r\n", "-ERR Protocol error: invalid multibulk length\r\n",
	    HARNESS_CLOSED_BY_DATA),
	CASE("*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n*1\r\n$4\r\nQUIT\r\nx",
	    "$3\r\nabc\r\n+OK\r\n", HARNESS_CLOSED_BY_DATA),
};

/* The outcome of @in split at the @ncuts offsets in @cuts, on a fresh
 * store, into @c. */
static void run_split(struct conn *c, const char *in, size_t len,
    const size_t *cuts, size_t ncuts)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);

	harness_run(c, resp(), &cfg, in, len, cuts, ncuts);
	store_free(s);
}

START_TEST(test_split_one_read_gives_the_known_replies)
{
	const struct split_case *k = &split_cases[_i];

	expect_n(k->in, k->in_len, k->want, k->want_len, k->end);
}
END_TEST

START_TEST(test_split_at_every_offset_gives_the_same_replies)
{
	const struct split_case *k = &split_cases[_i];
	size_t cut;

	for (cut = 0; cut <= k->in_len; cut++) {
		struct conn c;

		run_split(&c, k->in, k->in_len, &cut, 1);
		assert_out(&c, k->want, k->want_len);
		ck_assert_msg(c.end == k->end, "cut %zu: ended '%s'", cut,
		    harness_end_name(c.end));
		harness_free(&c);
	}
}
END_TEST

START_TEST(test_split_at_every_pair_of_offsets_gives_the_same_replies)
{
	const struct split_case *k = &split_cases[_i];
	size_t cuts[2];

	/* Quadratic, so only the short cases in full. */
	if (k->in_len > 64)
		return;
	for (cuts[0] = 0; cuts[0] <= k->in_len; cuts[0]++)
		for (cuts[1] = cuts[0]; cuts[1] <= k->in_len; cuts[1]++) {
			struct conn c;

			run_split(&c, k->in, k->in_len, cuts, 2);
			assert_out(&c, k->want, k->want_len);
			assert_end(&c, k->end);
			harness_free(&c);
		}
}
END_TEST

START_TEST(test_split_byte_at_a_time_gives_the_same_replies)
{
	const struct split_case *k = &split_cases[_i];
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;

	harness_run_chunked(&c, resp(), &cfg, k->in, k->in_len, 1);
	assert_out(&c, k->want, k->want_len);
	assert_end(&c, k->end);
	harness_free(&c);
	store_free(s);
}
END_TEST

/* --- limits and protocol errors -------------------------------------- */

#define PROTO_ERR(text) "-ERR Protocol error: " text "\r\n"

START_TEST(test_limits_multibulk_length)
{
	/* The limit itself is allowed, and waits for its bulks. */
	expect("*1048576\r\n", "", HARNESS_EOF);
	expect("*1048577\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*99999999999999999999\r\n",
	    PROTO_ERR("invalid multibulk length"), HARNESS_CLOSED_BY_DATA);
	expect("*\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*01\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*+1\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("* 1\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*1x\r\n", PROTO_ERR("invalid multibulk length"),
	    HARNESS_CLOSED_BY_DATA);
	/* Negative and zero counts are empty requests, as in redis. */
	expect("*-1\r\n*-100\r\n*0\r\nPING\r\n", "+PONG\r\n", HARNESS_EOF);
}
END_TEST

START_TEST(test_limits_bulk_length)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);

	expect("*1\r\n$-1\r\n", PROTO_ERR("invalid bulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*1\r\n$-5\r\n", PROTO_ERR("invalid bulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*1\r\n$\r\n", PROTO_ERR("invalid bulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*1\r\n$1a\r\n", PROTO_ERR("invalid bulk length"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*1\r\n$536870913\r\n", PROTO_ERR("invalid bulk length"),
	    HARNESS_CLOSED_BY_DATA);
	/* The largest bulk is accepted and waited for. */
	expect("*1\r\n$536870912\r\n", "", HARNESS_EOF);

	cfg.max_bulk = 10;
	expect_cfg(&cfg, S("*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n"),
	    S("$10\r\n0123456789\r\n"), HARNESS_EOF);
	expect_cfg(&cfg, S("*2\r\n$4\r\nECHO\r\n$11\r\n"),
	    S(PROTO_ERR("invalid bulk length")), HARNESS_CLOSED_BY_DATA);
	/* 0 is a config that never set it: the default applies. */
	cfg.max_bulk = 0;
	expect_cfg(&cfg, S("*2\r\n$4\r\nECHO\r\n$11\r\n0123456789a\r\n"),
	    S("$11\r\n0123456789a\r\n"), HARNESS_EOF);
	store_free(s);
}
END_TEST

START_TEST(test_limits_expected_dollar)
{
	expect("*1\r\n+PING\r\n", PROTO_ERR("expected '$', got '+'"),
	    HARNESS_CLOSED_BY_DATA);
	expect("*2\r\n$4\r\nECHO\r\n:1\r\n",
	    PROTO_ERR("expected '$', got ':'"),
	    HARNESS_CLOSED_BY_DATA);
	/* The CR itself: shown as a space, never as a line ending. */
	expect("*1\r\n\r\n\r\n", PROTO_ERR("expected '$', got ' '"),
	    HARNESS_CLOSED_BY_DATA);
	/* Only decided once the header line is complete, as in redis. */
	expect("*1\r\nX", "", HARNESS_EOF);
}
END_TEST

/* @n bytes of @fill, then @tail, as one malloc'd string. */
static char *filled(const char *head, char fill, size_t n, const char *tail,
    size_t *len)
{
	size_t h = strlen(head), t = strlen(tail);
	char *p = malloc(h + n + t + 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, head, h);
	memset(p + h, fill, n);
	memcpy(p + h + n, tail, t + 1);
	*len = h + n + t;
	return p;
}

/* Sends @in in reads of 1000 bytes and expects replies starting with
 * @want (none at all if it is empty) and @end. */
static void expect_chunked(const char *in, size_t len, const char *want,
    enum harness_end end)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;

	harness_run_chunked(&c, resp(), &cfg, in, len, 1000);
	ck_assert_msg(*want ? c.out_len >= strlen(want) &&
	    !memcmp(c.out, want, strlen(want)) : c.out_len == 0,
	    "replies '%.*s', want '%s'",
	    (int)(c.out_len < 200 ? c.out_len : 200), c.out ? c.out : "",
	    want);
	assert_end(&c, end);
	harness_free(&c);
	store_free(s);
}

START_TEST(test_limits_inline_request)
{
	size_t len;
	char *in;

	/* 64 KiB before LF is allowed (an unknown command here)... */
	in = filled("", 'A', RESP_INLINE_MAX, "\n", &len);
	expect_chunked(in, len, "-ERR unknown command 'AAAA", HARNESS_EOF);
	expect_chunked(in, len - 1, "", HARNESS_EOF);
	free(in);
	/* ... one more is too big, with or without the LF, in one read or
	 * many. */
	in = filled("", 'A', RESP_INLINE_MAX + 1, "\n", &len);
	expect_n(in, len, S(PROTO_ERR("too big inline request")),
	    HARNESS_CLOSED_BY_DATA);
	expect_chunked(in, len, PROTO_ERR("too big inline request"),
	    HARNESS_CLOSED_BY_DATA);
	expect_chunked(in, len - 1, PROTO_ERR("too big inline request"),
	    HARNESS_CLOSED_BY_DATA);
	free(in);
}
END_TEST

START_TEST(test_limits_count_strings)
{
	size_t len;
	char *in;

	in = filled("*", '1', RESP_INLINE_MAX, "", &len);
	expect_chunked(in, len, PROTO_ERR("too big mbulk count string"),
	    HARNESS_CLOSED_BY_DATA);
	free(in);
	in = filled("*1\r\n$", '1', RESP_INLINE_MAX, "", &len);
	expect_chunked(in, len, PROTO_ERR("too big bulk count string"),
	    HARNESS_CLOSED_BY_DATA);
	free(in);
}
END_TEST

START_TEST(test_limits_unbalanced_quotes)
{
	static const char *const bad[] = {
		"ECHO \"abc\r\n", "ECHO 'abc\r\n", "ECHO \"a\"b\r\n",
		"ECHO 'a'b\r\n", "ECHO \"a\\\"\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], PROTO_ERR("unbalanced quotes in request"),
		    HARNESS_CLOSED_BY_DATA);
	/* The requests before the bad one are still answered. */
	expect("PING\r\nECHO \"x\r\nPING\r\n",
	    "+PONG\r\n" PROTO_ERR("unbalanced quotes in request"),
	    HARNESS_CLOSED_BY_DATA);
}
END_TEST

/* --- commands -------------------------------------------------------- */

START_TEST(test_cmd_unknown_command_text_and_the_connection_goes_on)
{
	size_t len;
	char *in, want[512];

	expect("FOO a b\r\nPING\r\n", "-ERR unknown command 'FOO', with args "
	    "beginning with: 'a' 'b' \r\n+PONG\r\n", HARNESS_EOF);
	expect("foo\r\n", "-ERR unknown command 'foo', with args beginning "
	    "with: \r\n", HARNESS_EOF);
	/* A name with CR or LF in it cannot end the error line. */
	expect("*2\r\n$4\r\nA\r\nB\r\n$2\r\nc\n\r\n", "-ERR unknown command "
	    "'A  B', with args beginning with: 'c ' \r\n", HARNESS_EOF);
	/* Arguments are shown until they fill 128 bytes. */
	in = filled("FOO ", 'x', 200, " y\r\n", &len);
	snprintf(want, sizeof(want), "-ERR unknown command 'FOO', with args "
	    "beginning with: '%.128s' \r\n", in + 4);
	expect(in, want, HARNESS_EOF);
	free(in);
	expect("FOO a b c d e f g h i j k l m n o p q r s t u v w x y z a b c "
	    "d e f g h i j k l m n o p q r s t u v w x y z\r\n",
	    "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
	    "'c' 'd' 'e' 'f' 'g' 'h' 'i' 'j' 'k' 'l' 'm' 'n' 'o' 'p' 'q' 'r' "
	    "'s' 't' 'u' 'v' 'w' 'x' 'y' 'z' 'a' 'b' 'c' 'd' 'e' 'f' \r\n",
	    HARNESS_EOF);
}
END_TEST

START_TEST(test_cmd_wrong_arity)
{
	static const char *const cases[][2] = {
		{ "GET\r\n", "get" }, { "GET a b\r\n", "get" },
		{ "SET k\r\n", "set" }, { "PING a b\r\n", "ping" },
		{ "ECHO\r\n", "echo" }, { "MSET a 1 b\r\n", "mset" },
		{ "MSET a\r\n", "mset" }, { "INCRBY a\r\n", "incrby" },
		{ "DEL\r\n", "del" }, { "DBSIZE x\r\n", "dbsize" },
		{ "SELECT\r\n", "select" }, { "CONFIG\r\n", "config" },
		{ "CONFIG GET\r\n", "config|get" },
		{ "CLIENT\r\n", "client" },
		{ "CLIENT SETNAME\r\n", "client|setname" },
		{ "COMMAND COUNT x\r\n", "command|count" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128];

		snprintf(want, sizeof(want), "-ERR wrong number of arguments "
		    "for '%s' command\r\n", cases[i][1]);
		expect(cases[i][0], want, HARNESS_EOF);
	}
}
END_TEST

/* Each of @cmds (NULL-terminated) on one connection and store; the
 * replies must be @want. */
static void expect_session(struct store *s, const char *in,
    const char *want)
{
	struct proto_config cfg = config_for(s);

	expect_cfg(&cfg, in, strlen(in), want, strlen(want), HARNESS_EOF);
}

START_TEST(test_cmd_set_options)
{
	struct store *s = new_store();

	expect_session(s,
	    "SET k v NX\r\nSET k w NX\r\nGET k\r\n"
	    "SET k x XX\r\nSET nokey v XX\r\nGET k\r\nGET nokey\r\n"
	    "set k y ex 10 nx\r\nSET k y xx EX 10\r\nSET k z PX 100000\r\n"
	    "SET k v NX NX\r\n",
	    "+OK\r\n$-1\r\n$1\r\nv\r\n"
	    "+OK\r\n$-1\r\n$1\r\nx\r\n$-1\r\n"
	    "$-1\r\n+OK\r\n+OK\r\n"
	    "$-1\r\n");
	expect_session(s,
	    "SET k v EX 0\r\nSET k v EX -1\r\nSET k v PX 0\r\n"
	    "SET k v EX 9223372036854775807\r\n"
	    "SET k v PX 9223372036854775807\r\n",
	    "-ERR invalid expire time in 'set' command\r\n"
	    "-ERR invalid expire time in 'set' command\r\n"
	    "-ERR invalid expire time in 'set' command\r\n"
	    "-ERR invalid expire time in 'set' command\r\n"
	    "-ERR invalid expire time in 'set' command\r\n");
	expect_session(s,
	    "SET k v EX abc\r\nSET k v PX 1.5\r\n"
	    "SET k v EX 99999999999999999999\r\n",
	    "-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n");
	expect_session(s,
	    "SET k v EX\r\nSET k v NX XX\r\nSET k v XX NX\r\n"
	    "SET k v EX 1 PX 1\r\nSET k v FOO\r\nSET k v KEEPTTL\r\n"
	    "SET k v GET\r\n",
	    "-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n"
	    "-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n"
	    "-ERR syntax error\r\n");
	/* None of the failed ones changed the key. */
	expect_session(s, "GET k\r\n", "$1\r\nz\r\n");
	store_free(s);
}
END_TEST

START_TEST(test_cmd_set_expiry_takes_effect)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	uint64_t deadline = now_ms() + 5000;
	int gone = 0;

	expect_session(s, "SET k v PX 20\r\nGET k\r\n", "+OK\r\n$1\r\nv\r\n");
	while (!gone && now_ms() < deadline) {
		struct conn c;

		harness_run_chunked(&c, resp(), &cfg, S("GET k\r\n"), 0);
		gone = c.out_len == 5 && !memcmp(c.out, "$-1\r\n", 5);
		harness_free(&c);
	}
	ck_assert_msg(gone, "key with PX 20 still there after 5 s");
	/* A plain SET clears the expiry. */
	expect_session(s, "SET k v PX 20\r\nSET k w\r\n", "+OK\r\n+OK\r\n");
	store_free(s);
}
END_TEST

START_TEST(test_cmd_incr_is_exact_and_checks_its_input)
{
	struct store *s = new_store();

	expect_session(s,
	    "INCR n\r\nINCRBY n 41\r\nDECR n\r\nDECRBY n 43\r\nGET n\r\n"
	    "INCRBY n -9223372036854775807\r\nDECR n\r\nDECR n\r\n"
	    "SET n 9223372036854775806\r\nINCR n\r\nINCR n\r\nGET n\r\n"
	    "INCRBY n 0\r\n",
	    ":1\r\n:42\r\n:41\r\n:-2\r\n$2\r\n-2\r\n"
	    "-ERR increment or decrement would overflow\r\n"
	    ":-3\r\n:-4\r\n"
	    "+OK\r\n:9223372036854775807\r\n"
	    "-ERR increment or decrement would overflow\r\n"
	    "$19\r\n9223372036854775807\r\n:9223372036854775807\r\n");
	expect_session(s,
	    "SET m -9223372036854775808\r\nDECR m\r\nINCR m\r\n"
	    "DECRBY m -9223372036854775808\r\n",
	    "+OK\r\n-ERR increment or decrement would overflow\r\n"
	    ":-9223372036854775807\r\n-ERR decrement would overflow\r\n");
	expect_session(s,
	    "SET s abc\r\nINCR s\r\nSET z 007\r\nINCR z\r\nSET p +1\r\n"
	    "INCR p\r\nSET e \"\"\r\nINCR e\r\nINCRBY n abc\r\n"
	    "INCRBY n 1.0\r\n"
	    "INCRBY n 9223372036854775808\r\nDECRBY n x\r\nGET s\r\n",
	    "+OK\r\n-ERR value is not an integer or out of range\r\n"
	    "+OK\r\n-ERR value is not an integer or out of range\r\n"
	    "+OK\r\n-ERR value is not an integer or out of range\r\n"
	    "+OK\r\n-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n"
	    "$3\r\nabc\r\n");
	store_free(s);
}
END_TEST

START_TEST(test_cmd_keys_del_exists_mset_mget_dbsize_flushall)
{
	struct store *s = new_store();

	expect_session(s,
	    "DBSIZE\r\nMSET a 1 b 2 c 3\r\nEXISTS a b x a\r\nDEL a x\r\n"
	    "EXISTS a\r\nMGET a b c x\r\nDBSIZE\r\nMSET b 22\r\nGET b\r\n",
	    ":0\r\n+OK\r\n:3\r\n:1\r\n"
	    ":0\r\n*4\r\n$-1\r\n$1\r\n2\r\n$1\r\n3\r\n$-1\r\n:2\r\n+OK\r\n"
	    "$2\r\n22\r\n");
	expect_session(s,
	    "FLUSHALL\r\nDBSIZE\r\nSET a 1\r\nflushall async\r\n"
	    "FLUSHALL SYNC\r\nFLUSHALL foo\r\nFLUSHALL SYNC x\r\nDBSIZE\r\n",
	    "+OK\r\n:0\r\n+OK\r\n+OK\r\n+OK\r\n-ERR syntax error\r\n"
	    "-ERR syntax error\r\n:0\r\n");
	store_free(s);
}
END_TEST

START_TEST(test_cmd_quit_closes_after_ok)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;

	harness_open(&c, resp(), &cfg);
	harness_read(&c, S("PING\r\nQUIT\r\nPING\r\n"));
	assert_out(&c, S("+PONG\r\n+OK\r\n"));
	assert_end(&c, HARNESS_CLOSED_BY_DATA);
	harness_read(&c, S("PING\r\n"));
	ck_assert_uint_eq(c.data_calls, 1);
	ck_assert_uint_eq(c.requests, 2);
	harness_free(&c);
	store_free(s);
	expect("quit now please\r\n", "+OK\r\n", HARNESS_CLOSED_BY_DATA);
}
END_TEST

START_TEST(test_cmd_select_config_command)
{
	char want[64];

	expect("SELECT 0\r\nSELECT 1\r\nSELECT -1\r\nSELECT x\r\n",
	    "+OK\r\n-ERR DB index is out of range\r\n"
	    "-ERR DB index is out of range\r\n"
	    "-ERR value is not an integer or out of range\r\n", HARNESS_EOF);
	/* What redis-benchmark asks at start-up. */
	expect("CONFIG GET save\r\nCONFIG GET appendonly\r\n",
	    "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
	    "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", HARNESS_EOF);
	expect("config get maxmemory\r\nCONFIG GET *\r\nCONFIG GET SA?E\r\n",
	    "*0\r\n*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n"
	    "$2\r\nno\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n", HARNESS_EOF);
	expect("CONFIG foo\r\nconfig set save x\r\n",
	    "-ERR unknown subcommand 'foo'. Try CONFIG HELP.\r\n"
	    "-ERR Unknown option or number of arguments for CONFIG SET - "
	    "'save'\r\n", HARNESS_EOF);
	/* What redis-cli asks at start-up. */
	expect("COMMAND\r\nCOMMAND DOCS\r\ncommand docs get\r\n",
	    "*0\r\n*0\r\n*0\r\n", HARNESS_EOF);
	snprintf(want, sizeof(want), ":%zu\r\n", resp_cmd_count());
	expect("COMMAND COUNT\r\n", want, HARNESS_EOF);
	ck_assert_uint_ge(resp_cmd_count(), 21);
	expect("command foo\r\n",
	    "-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n",
	    HARNESS_EOF);
}
END_TEST

/* The id in a reply that starts with @prefix and then the id. */
static long long id_after(const struct conn *c, const char *prefix)
{
	const char *p = c->out_len ? memmem(c->out, c->out_len, prefix,
	    strlen(prefix)) : NULL;

	ck_assert_msg(p != NULL, "no '%s' in the replies", prefix);
	return strtoll(p + strlen(prefix), NULL, 10);
}

START_TEST(test_cmd_hello_and_client)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	struct conn c;
	char want[512];
	long long id;

	harness_run_chunked(&c, resp(), &cfg, S("CLIENT ID\r\n"), 0);
	id = id_after(&c, ":");
	ck_assert_int_gt(id, 0);
	harness_free(&c);

	harness_run_chunked(&c, resp(), &cfg, S("HELLO\r\nCLIENT ID\r\n"),
	    0);
	id = id_after(&c, "$2\r\nid\r\n:");
	snprintf(want, sizeof(want), "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"
	    "$7\r\nversion\r\n$%zu\r\n%s\r\n$5\r\nproto\r\n:2\r\n"
	    "$2\r\nid\r\n:%lld\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
	    "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
	    ":%lld\r\n", strlen(RESP_REDIS_VERSION), RESP_REDIS_VERSION, id,
	    id);
	assert_out(&c, want, strlen(want));
	harness_free(&c);

	expect("HELLO 3\r\nHELLO 1\r\nHELLO x\r\nHELLO 2 FOO\r\n",
	    "-NOPROTO sorry, this protocol version is not supported\r\n"
	    "-NOPROTO unsupported protocol version\r\n"
	    "-ERR Protocol version is not an integer or out of range\r\n"
	    "-ERR Syntax error in HELLO option 'FOO'\r\n", HARNESS_EOF);
	harness_run_chunked(&c, resp(), &cfg,
	    S("HELLO 2 AUTH default pw SETNAME me\r\nCLIENT GETNAME\r\n"), 0);
	ck_assert(c.out_len > 8 && !memcmp(c.out, "*14\r\n", 5));
	ck_assert(!memcmp(c.out + c.out_len - 8, "$2\r\nme\r\n", 8));
	harness_free(&c);
	store_free(s);
}
END_TEST

START_TEST(test_cmd_client_names)
{
	expect("CLIENT GETNAME\r\nCLIENT SETNAME me\r\nCLIENT GETNAME\r\n"
	    "CLIENT SETNAME \"a b\"\r\nCLIENT GETNAME\r\n"
	    "CLIENT SETNAME \"\"\r\n"
	    "CLIENT GETNAME\r\nCLIENT SETINFO lib-name x\r\nCLIENT KILL x\r\n",
	    "$-1\r\n+OK\r\n$2\r\nme\r\n"
	    "-ERR Client names cannot contain spaces, newlines or special "
	    "characters.\r\n$2\r\nme\r\n+OK\r\n$-1\r\n+OK\r\n"
	    "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n",
	    HARNESS_EOF);
}
END_TEST

static void fake_stats(const struct proto_config *cfg, struct proto_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->conns_open = 3;
	out->conns_total = 11;
	out->requests = 7;
	out->bytes_in = 100;
	out->bytes_out = 200;
	out->uptime = 90061.5;
	out->workers = 2;
	out->port = 6380;
}

/* Fails unless the one bulk reply of @c contains @text. */
static void assert_info_has(const struct conn *c, const char *text)
{
	ck_assert_msg(c->out_len > 0 && memmem(c->out, c->out_len, text,
	    strlen(text)), "no '%s' in '%.*s'", text, (int)c->out_len,
	    c->out ? c->out : "");
}

START_TEST(test_cmd_info_sections_and_figures)
{
	struct store *s = new_store();
	struct proto_config cfg = config_for(s);
	static const char *const has[] = {
		"# Server\r\nredis_version:" RESP_REDIS_VERSION "\r\n",
		"echoserver_version:", "redis_mode:standalone\r\n", "\r\nos:",
		"arch_bits:", "process_id:", "tcp_port:6380\r\n",
		"uptime_in_seconds:90061\r\n", "uptime_in_days:1\r\n",
		"\r\n\r\n# Clients\r\nconnected_clients:3\r\n",
		"# Memory\r\nused_memory:", "maxmemory:",
		"# Stats\r\ntotal_connections_received:11\r\n",
		"total_commands_processed:7\r\n",
		"total_net_input_bytes:100\r\n",
		"total_net_output_bytes:200\r\n",
		"# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n",
	};
	struct conn c;
	size_t i;

	cfg.stats = fake_stats;
	harness_run_chunked(&c, resp(), &cfg, S("MSET a 1 b 2\r\nINFO\r\n"),
	    0);
	for (i = 0; i < sizeof(has) / sizeof(has[0]); i++)
		assert_info_has(&c, has[i]);
	ck_assert(!memcmp(c.out, "+OK\r\n$", 6));
	harness_free(&c);

	harness_run_chunked(&c, resp(), &cfg, S("INFO keyspace\r\n"), 0);
	assert_out(&c, S("$44\r\n# Keyspace\r\n"
	    "db0:keys=2,expires=0,avg_ttl=0\r\n\r\n"));
	harness_free(&c);
	store_flush(s);
	expect_session(s, "INFO KEYSPACE\r\nINFO nosuch\r\n",
	    "$12\r\n# Keyspace\r\n\r\n$0\r\n\r\n");
	store_free(s);
	/* Without a server or a store, INFO still answers. */
	cfg = config_for(NULL);
	harness_run_chunked(&c, resp(), &cfg, S("INFO\r\n"), 0);
	assert_info_has(&c, "connected_clients:0\r\n");
	assert_info_has(&c, "used_memory:0\r\n");
	harness_free(&c);
}
END_TEST

START_TEST(test_cmd_without_a_store_data_commands_fail)
{
	struct proto_config cfg = config_for(NULL);

	expect_cfg(&cfg, S("PING\r\nGET k\r\nSET k v\r\nMGET a\r\nDBSIZE\r\n"
	    "ECHO x\r\n"),
	    S("+PONG\r\n-" RESP_ERR_NO_STORE "\r\n-" RESP_ERR_NO_STORE "\r\n"
	    "-" RESP_ERR_NO_STORE "\r\n-" RESP_ERR_NO_STORE "\r\n"
	    "$1\r\nx\r\n"), HARNESS_EOF);
}
END_TEST

START_TEST(test_cmd_out_of_memory)
{
	struct store_options o = { .max_memory = 256, .stripes = 0 };
	struct store *s = store_new(&o);
	size_t len;
	char *in;

	ck_assert_ptr_nonnull(s);
	in = filled("SET big ", 'v', 1000, "\r\nGET big\r\nDEL big\r\n",
	    &len);
	expect_session(s, in, "-OOM command not allowed when used memory > "
	    "'maxmemory'.\r\n$-1\r\n:0\r\n");
	free(in);
	store_free(s);
}
END_TEST

Suite *resp_suite(void)
{
	Suite *s = suite_create("resp");
	int nsplit = (int)(sizeof(split_cases) / sizeof(split_cases[0]));
	TCase *tc = tcase_create("frames");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
	    test_resp_is_registered_and_keeps_the_largest_frame);
	tcase_add_test(tc, test_resp_ping_inline_and_multibulk_reply_pong);
	tcase_add_test(tc, test_resp_benchmark_set_and_get_frames);
	tcase_add_test(tc, test_resp_empty_requests_are_skipped);
	tcase_add_test(tc, test_resp_bulks_may_hold_cr_lf_and_nul);
	tcase_add_test(tc, test_resp_bytes_after_a_bulk_are_skipped_unchecked);
	tcase_add_test(tc, test_resp_inline_quoting_follows_redis);
	tcase_add_test(tc, test_resp_large_bulks_are_replied_from_the_input);
	tcase_add_test(tc, test_resp_pipeline_is_answered_in_one_call);
	tcase_add_test(tc, test_resp_large_bulk_across_many_reads);
	tcase_add_test(tc, test_resp_a_huge_request_frees_its_arguments_after);
	suite_add_tcase(s, tc);

	tc = tcase_create("split");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_split_one_read_gives_the_known_replies,
	    0, nsplit);
	tcase_add_loop_test(tc,
	    test_split_at_every_offset_gives_the_same_replies, 0, nsplit);
	tcase_add_loop_test(tc,
	    test_split_at_every_pair_of_offsets_gives_the_same_replies, 0,
	    nsplit);
	tcase_add_loop_test(tc,
	    test_split_byte_at_a_time_gives_the_same_replies, 0, nsplit);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_limits_multibulk_length);
	tcase_add_test(tc, test_limits_bulk_length);
	tcase_add_test(tc, test_limits_expected_dollar);
	tcase_add_test(tc, test_limits_inline_request);
	tcase_add_test(tc, test_limits_count_strings);
	tcase_add_test(tc, test_limits_unbalanced_quotes);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_test(tc,
	    test_resp_debug_sleep_replies_ok_and_checks_its_argument);
	tcase_add_test(tc,
	    test_cmd_unknown_command_text_and_the_connection_goes_on);
	tcase_add_test(tc, test_cmd_wrong_arity);
	tcase_add_test(tc, test_cmd_set_options);
	tcase_add_test(tc, test_cmd_set_expiry_takes_effect);
	tcase_add_test(tc, test_cmd_incr_is_exact_and_checks_its_input);
	tcase_add_test(tc, test_cmd_keys_del_exists_mset_mget_dbsize_flushall);
	tcase_add_test(tc, test_cmd_quit_closes_after_ok);
	tcase_add_test(tc, test_cmd_select_config_command);
	tcase_add_test(tc, test_cmd_hello_and_client);
	tcase_add_test(tc, test_cmd_client_names);
	tcase_add_test(tc, test_cmd_info_sections_and_figures);
	tcase_add_test(tc, test_cmd_without_a_store_data_commands_fail);
	tcase_add_test(tc, test_cmd_out_of_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(resp_suite());
}
