/*
 * A libFuzzer target for the resp handler and its parser: the fuzzer
 * picks max_bulk, where the input is split into reads, and the input.
 * Each run goes through the fake connection (proto_harness.h) on a fresh
 * store, and must keep to proto.h, reply well-formed RESP2, one reply per
 * request (plus the protocol error that closes), and give the same
 * replies and ending as one read.  Built and run by `make fuzz`; see the
 * Makefile.
 */
#include "proto/proto.h"
#include "proto_harness.h"
#include "store.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CUTS 16

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_resp: %s\n", what);
	abort();
}

/* The index of the CRLF that ends the line at @at, or @len if the line
 * is incomplete or holds a lone CR or LF. */
static size_t line_end(const char *p, size_t len, size_t at)
{
	size_t i;

	for (i = at; i < len; i++) {
		if (p[i] == '\n')
			return len;
		if (p[i] == '\r')
			return i + 1 < len && p[i + 1] == '\n' ? i : len;
	}
	return len;
}

/* A decimal int64, '-' allowed, on the line [@from, @to).  Up to 19
 * digits: INT64_MAX has 19, and INCRBY can reach it. */
static int line_int(const char *p, size_t from, size_t to, long long *v)
{
	unsigned long long u = 0;
	int neg = 0;

	*v = 0;
	if (from < to && p[from] == '-') {
		neg = 1;
		from++;
	}
	if (from == to || to - from > 19)
		return 0;
	for (; from < to; from++) {
		if (p[from] < '0' || p[from] > '9')
			return 0;
		u = u * 10 + (unsigned long long)(p[from] - '0');
	}
	if (u > (unsigned long long)LLONG_MAX + (unsigned long long)neg)
		return 0;
	*v = neg ? (long long)(0 - u) : (long long)u;
	return 1;
}

/* Checks the one reply at *@pos of @p (@len bytes) and moves past it;
 * 0 if it is not well-formed RESP2. */
static int check_reply(const char *p, size_t len, size_t *pos, int depth)
{
	size_t at = *pos, end;
	long long n;

	if (at >= len || depth > 4)
		return 0;
	end = line_end(p, len, at + 1);
	if (end == len)
		return 0;
	*pos = end + 2;
	switch (p[at]) {
	case '+':
	case '-':
		return 1;
	case ':':
		return line_int(p, at + 1, end, &n);
	case '$':
		if (!line_int(p, at + 1, end, &n) || n < -1)
			return 0;
		if (n == -1)
			return 1;
		if (len - *pos < (size_t)n + 2 || p[*pos + n] != '\r' ||
		    p[*pos + n + 1] != '\n')
			return 0;
		*pos += (size_t)n + 2;
		return 1;
	case '*':
		if (!line_int(p, at + 1, end, &n) || n < 0)
			return 0;
		while (n-- > 0)
			if (!check_reply(p, len, pos, depth + 1))
				return 0;
		return 1;
	}
	return 0;
}

/* Checks that @c's replies are well-formed and one per request, plus
 * the closing protocol error if there is one. */
static void check_replies(const struct conn *c)
{
	size_t pos = 0, replies = 0, last = 0;
	static const char proto_err[] = "-ERR Protocol error: ";
	static const char oom[] = "-ERR out of memory\r\n";

	while (pos < c->out_len) {
		last = pos;
		if (!check_reply(c->out, c->out_len, &pos, 0))
			fuzz_fail("a reply is not well-formed RESP2");
		replies++;
	}
	if (replies == c->requests)
		return;
	if (replies == c->requests + 1 && c->end == HARNESS_CLOSED_BY_DATA &&
	    (!strncmp(c->out + last, proto_err, sizeof(proto_err) - 1) ||
	    !strncmp(c->out + last, oom, sizeof(oom) - 1)))
		return;
	fuzz_fail("not one reply per request");
}

/* 1 if @word (lowercase) occurs in @p in any ASCII case. */
static int has_word(const char *p, size_t len, const char *word)
{
	size_t n = strlen(word), i, j;

	for (i = 0; i + n <= len; i++) {
		for (j = 0; j < n && (p[i + j] | 0x20) == word[j]; j++)
			;
		if (j == n)
			return 1;
	}
	return 0;
}

static void run(struct conn *c, const struct proto_config *base,
    const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
	struct proto_config cfg = *base;
	struct store *s = store_new(NULL);

	if (!s)
		fuzz_fail("out of memory");
	cfg.store = s;
	harness_run(c, proto_find("resp"), &cfg, in, len, cuts, ncuts);
	store_free(s);
}

/*
 * Input layout: max_bulk (0: the default), number of cuts, one byte per
 * cut (the gap since the previous cut), then the connection's bytes.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_config cfg;
	size_t cuts[MAX_CUTS], ncuts, i, len, at = 0;
	const char *in;
	struct conn split, whole;

	if (size < 2)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_bulk = data[0] ? data[0] : PROTO_MAX_BULK_LIMIT;
	ncuts = data[1] % (MAX_CUTS + 1);
	if (size < 2 + ncuts)
		return 0;
	for (i = 0; i < ncuts; i++) {
		at += data[2 + i] % 64;
		cuts[i] = at;
	}
	in = (const char *)data + 2 + ncuts;
	len = size - 2 - ncuts;

	run(&split, &cfg, in, len, cuts, ncuts);
	run(&whole, &cfg, in, len, NULL, 0);
	if (split.violation || whole.violation)
		fuzz_fail(split.violation ? split.violation :
		    whole.violation);
	if (!split.released || !whole.released)
		fuzz_fail("not released");
	if (split.end == HARNESS_OVERFLOW || whole.end == HARNESS_OVERFLOW)
		fuzz_fail("kept input passed max_pending");
	check_replies(&split);
	check_replies(&whole);
	if (split.end != whole.end)
		fuzz_fail("split ends differently from one read");
	if (split.requests != whole.requests)
		fuzz_fail("split counts requests differently");
	/* Connection ids (CLIENT ID, HELLO) differ between the two runs,
	 * and an expiry (EX, PX) may pass a millisecond boundary in one
	 * and not the other; elsewhere the bytes must be the same. */
	if (!has_word(in, len, "client") && !has_word(in, len, "hello") &&
	    !has_word(in, len, "ex") && !has_word(in, len, "px") &&
	    (split.out_len != whole.out_len ||
	    (split.out_len && memcmp(split.out, whole.out, split.out_len))))
		fuzz_fail("split replies differ from one read");
	harness_free(&split);
	harness_free(&whole);
	return 0;
}
