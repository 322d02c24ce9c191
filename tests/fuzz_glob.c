/*
 * A libFuzzer target for src/common/glob.c.  The first byte picks the
 * flags and where the rest splits into pattern and string; each is then
 * copied into a buffer of exactly its size, so that ASan catches a read
 * past either end.  The verdict must agree with a reference written the
 * other way round: the pattern is first compiled into tokens, each set
 * into a 256-entry membership table, and matched by dynamic programming
 * over (token, byte), from the rules as glob.h states them.  Built and run
 * by `make fuzz`.
 */
#include "common/glob.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_MAX 256

struct ref_token {
	bool star;
	bool member[256];	/* the bytes it matches, when not a star */
};

static int ref_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static void ref_literal(struct ref_token *t, unsigned char c, bool nocase)
{
	for (int b = 0; b < 256; b++)
		t->member[b] = b == c ||
		    (nocase && ref_lower(b) == ref_lower(c));
}

/* The set at @p[0] == '['; returns its length in the pattern. */
static size_t ref_set(struct ref_token *t, const char *p, size_t plen,
    bool nocase)
{
	size_t i = 1;
	bool neg = i < plen && p[i] == '^';

	if (neg)
		i++;
	memset(t->member, 0, sizeof(t->member));
	while (i < plen && p[i] != ']') {
		if (p[i] == '\\' && i + 1 < plen) {
			t->member[(unsigned char)p[i + 1]] = true;
			i += 2;
		} else if (i + 2 < plen && p[i + 1] == '-') {
			/* Signed ends, swapped into order, then folded. */
			int lo = (signed char)p[i], hi = (signed char)p[i + 2];

			if (lo > hi) {
				int x = lo;

				lo = hi;
				hi = x;
			}
			for (int b = 0; b < 256; b++) {
				int x = (signed char)b, l = lo, h = hi;

				if (nocase) {
					x = ref_lower(x);
					l = ref_lower(l);
					h = ref_lower(h);
				}
				if (x >= l && x <= h)
					t->member[b] = true;
			}
			i += 3;
		} else {
			for (int b = 0; b < 256; b++)
				if (b == (unsigned char)p[i] || (nocase &&
				    ref_lower(b) == ref_lower((unsigned char)p[i])))
					t->member[b] = true;
			i++;
		}
	}
	if (i < plen)
		i++;		/* the ']' */
	if (neg)
		for (int b = 0; b < 256; b++)
			t->member[b] = !t->member[b];
	return i;
}

static bool ref_match(const char *p, size_t plen, const char *s, size_t slen,
    bool nocase)
{
	static struct ref_token tok[REF_MAX];
	static bool dp[REF_MAX + 1][REF_MAX + 1];
	size_t n = 0, i = 0;

	if (slen == 0)
		return plen == 0;
	while (i < plen) {
		struct ref_token *t = &tok[n++];

		t->star = false;
		if (p[i] == '*') {
			t->star = true;
			i++;
		} else if (p[i] == '?') {
			memset(t->member, 1, sizeof(t->member));
			i++;
		} else if (p[i] == '[') {
			i += ref_set(t, p + i, plen - i, nocase);
		} else if (p[i] == '\\' && i + 1 < plen) {
			ref_literal(t, (unsigned char)p[i + 1], nocase);
			i += 2;
		} else {
			ref_literal(t, (unsigned char)p[i], nocase);
			i++;
		}
	}
	/* dp[k][j]: tokens k.. match bytes j.. */
	for (size_t k = n + 1; k-- > 0;)
		for (size_t j = slen + 1; j-- > 0;) {
			if (k == n)
				dp[k][j] = j == slen;
			else if (tok[k].star)
				dp[k][j] = dp[k + 1][j] ||
				    (j < slen && dp[k][j + 1]);
			else
				dp[k][j] = j < slen &&
				    tok[k].member[(unsigned char)s[j]] &&
				    dp[k + 1][j + 1];
		}
	return dp[0][0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen, slen;
	unsigned flags;
	char *p, *s;
	bool got;

	if (size < 1)
		return 0;
	flags = data[0] & 1 ? GLOB_NOCASE : 0;
	size--;
	plen = size ? (data[0] >> 1) % (size + 1) : 0;
	slen = size - plen;
	if (plen > REF_MAX || slen > REF_MAX)
		return 0;
	p = malloc(plen ? plen : 1);
	s = malloc(slen ? slen : 1);
	if (!p || !s)
		abort();
	memcpy(p, data + 1, plen);
	memcpy(s, data + 1 + plen, slen);
	got = glob_match(p, plen, s, slen, flags);
	if (got != ref_match(p, plen, s, slen, flags & GLOB_NOCASE)) {
		fprintf(stderr, "fuzz_glob: '%.*s' against '%.*s' (flags %u): "
		    "glob_match says %d, the reference %d\n", (int)plen, p,
		    (int)slen, s, flags, got, !got);
		abort();
	}
	free(p);
	free(s);
	return 0;
}
