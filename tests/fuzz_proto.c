/*
 * A libFuzzer target for the line handlers (line, reverse and sha256)
 * and the worked example: the
 * fuzzer picks the handler, a small max_line, a banner or none, where the
 * input is split into reads, and the input.  Each run goes through the
 * fake connection (proto_harness.h), and must keep to proto.h and give
 * the same replies as one read; line and reverse must also match a
 * reference written here as plainly as possible, independent of
 * lines.c; sha256, whose replies are digests, must give the same replies
 * however the input is split.  Built and run by `make fuzz`; see the Makefile.
 */
#include "proto/lines.h"
#include "proto/proto.h"
#include "proto_harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct proto_ops proto_counter;

#define MAX_CUTS 16

/* Crashes with @what, so that libFuzzer saves the input. */
static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_proto: %s\n", what);
	abort();
}

/* A growable byte string for the reference replies. */
struct bytes {
	char *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t len)
{
	if (b->cap - b->len < len) {
		b->cap = (b->len + len) * 2 + 16;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			fuzz_fail("out of memory");
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

/* @n bytes of @p, reversed if @reverse. */
static void bytes_add_line(struct bytes *b, const char *p, size_t n,
    int reverse)
{
	size_t i;

	for (i = 0; i < n; i++)
		bytes_add(b, reverse ? &p[n - 1 - i] : &p[i], 1);
}

/*
 * What line (or reverse) must reply to the whole of @in: the banner, each
 * line until quit or one over @max, the error for that one, or the final
 * partial line.
 */
static void reference(struct bytes *b, const char *in, size_t len,
    size_t max, const char *banner, int reverse)
{
	size_t pos = 0;

	if (banner) {
		bytes_add(b, banner, strlen(banner));
		bytes_add(b, "\r\n", 2);
	}
	while (pos < len) {
		size_t end = pos, content, ending = 1;

		while (end < len && in[end] != '\n')
			end++;
		if (end == len) {
			if (len - pos > max)
				bytes_add(b, LINES_TOO_LONG,
				    strlen(LINES_TOO_LONG));
			else
				bytes_add_line(b, in + pos, len - pos,
				    reverse);
			return;
		}
		content = end - pos;
		if (content > 0 && in[end - 1] == '\r') {
			content--;
			ending = 2;
		}
		if (content > max) {
			bytes_add(b, LINES_TOO_LONG, strlen(LINES_TOO_LONG));
			return;
		}
		if (content == 4 && (in[pos] == 'q' || in[pos] == 'Q') &&
		    (in[pos + 1] == 'u' || in[pos + 1] == 'U') &&
		    (in[pos + 2] == 'i' || in[pos + 2] == 'I') &&
		    (in[pos + 3] == 't' || in[pos + 3] == 'T'))
			return;
		bytes_add_line(b, in + pos, content, reverse);
		bytes_add(b, in + pos + content, ending);
		pos = end + 1;
	}
}

/* Whether @c replied exactly the @len bytes at @p (NULL when 0). */
static int same(const struct conn *c, const char *p, size_t len)
{
	return c->out_len == len && (len == 0 || !memcmp(c->out, p, len));
}

/*
 * Input layout: handler, max_line, banner flag, number of cuts, then one
 * byte per cut (the gap since the previous cut), then the connection's
 * bytes.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct proto_ops *const ops[] = {
		proto_find("line"), proto_find("reverse"), &proto_counter,
		proto_find("sha256"),
	};
	const struct proto_ops *h;
	struct proto_config cfg;
	size_t cuts[MAX_CUTS], ncuts, i, len, at = 0;
	const char *in;
	struct conn split, whole;

	if (size < 4)
		return 0;
	h = ops[data[0] % 4];
	cfg.max_line = data[1] % 16;
	cfg.banner = data[2] & 1 ? "hi" : NULL;
	ncuts = data[3] % (MAX_CUTS + 1);
	if (size < 4 + ncuts)
		return 0;
	for (i = 0; i < ncuts; i++) {
		at += data[4 + i] % 32;
		cuts[i] = at;
	}
	in = (const char *)data + 4 + ncuts;
	len = size - 4 - ncuts;

	harness_run(&split, h, &cfg, in, len, cuts, ncuts);
	harness_run_chunked(&whole, h, &cfg, in, len, 0);
	if (split.violation || whole.violation)
		fuzz_fail(split.violation ? split.violation :
		    whole.violation);
	if (!split.released || !whole.released)
		fuzz_fail("not released");
	if (split.end != HARNESS_OVERFLOW && !same(&split, whole.out,
	    whole.out_len))
		fuzz_fail("split replies differ from one read");
	/* counter leaves long lines to max_pending, which a line within
	 * one read never reaches: only there may a split change the end. */
	if (split.end != whole.end && split.end != HARNESS_OVERFLOW)
		fuzz_fail("split ends differently from one read");
	if (h == ops[0] || h == ops[1]) {
		struct bytes want = { NULL, 0, 0 };

		if (split.end == HARNESS_OVERFLOW)
			fuzz_fail("a line handler overflowed max_pending");
		reference(&want, in, len, cfg.max_line, cfg.banner,
		    h == ops[1]);
		if (!same(&split, want.p, want.len))
			fuzz_fail("replies differ from the reference");
		free(want.p);
	}
	harness_free(&split);
	harness_free(&whole);
	return 0;
}
