/*
 * Glob matching with redis's rules; see glob.h.  A pattern is read as a
 * run of tokens, each matching exactly one byte ('?', a literal, an
 * escaped literal, a set) or any run of bytes ('*').  Since every other
 * token takes one byte, the classic matcher with a single backtrack point
 * (the last '*' seen) is exact: a later '*' can absorb whatever an
 * earlier one could, so earlier stars never need revisiting.
 */
#include "common/glob.h"

#include <stdint.h>

/* redis compares with the C locale's tolower(), which changes only
 * ASCII capitals. */
static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/*
 * Does the byte @c match the set starting at @p[0] == '['?  Sets *@len
 * to the set's length in the pattern (to its ']', or to the end of the
 * pattern when there is none).  Bytes are read as signed chars, as redis
 * reads them, which matters only in ranges.
 */
static bool set_match(const char *p, size_t plen, char c, bool nocase,
    size_t *len)
{
	size_t i = 1;
	bool neg = false, hit = false;

	if (i < plen && p[i] == '^') {
		neg = true;
		i++;
	}
	for (;;) {
		if (plen - i >= 2 && p[i] == '\\') {
			/* An escaped member compares exactly, as in redis,
			 * even under GLOB_NOCASE. */
			if (p[i + 1] == c)
				hit = true;
			i += 2;
		} else if (i == plen) {
			break;		/* unterminated: the rest was the set */
		} else if (p[i] == ']') {
			i++;
			break;
		} else if (plen - i >= 3 && p[i + 1] == '-') {
			int lo = (signed char)p[i], hi = (signed char)p[i + 2];
			int x = (signed char)c;

			if (lo > hi) {
				int t = lo;

				lo = hi;
				hi = t;
			}
			if (nocase) {
				lo = lower(lo);
				hi = lower(hi);
				x = lower(x);
			}
			if (x >= lo && x <= hi)
				hit = true;
			i += 3;
		} else {
			if (nocase ? lower((unsigned char)p[i]) ==
			    lower((unsigned char)c) : p[i] == c)
				hit = true;
			i++;
		}
	}
	*len = i;
	return hit != neg;
}

/* Does the byte @c match the one-byte token at @p (not '*')?  Sets
 * *@len to the token's length. */
static bool token_match(const char *p, size_t plen, char c, bool nocase,
    size_t *len)
{
	switch (p[0]) {
	case '?':
		*len = 1;
		return true;
	case '[':
		return set_match(p, plen, c, nocase, len);
	case '\\':
		if (plen >= 2) {
			p++;
			*len = 2;
		} else {
			*len = 1;	/* a trailing '\' is itself */
		}
		break;
	default:
		*len = 1;
		break;
	}
	return nocase ? lower((unsigned char)*p) == lower((unsigned char)c) :
	    *p == c;
}

bool glob_match(const char *pat, size_t plen, const char *s, size_t slen,
    unsigned flags)
{
	bool nocase = flags & GLOB_NOCASE;
	size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;

	/* redis lets trailing stars match the empty rest of a string only
	 * after a byte was matched, so only "" matches "". */
	if (slen == 0)
		return plen == 0;
	while (i < slen) {
		size_t len;

		if (p < plen && pat[p] == '*') {
			while (p < plen && pat[p] == '*')
				p++;
			if (p == plen)
				return true;
			star_p = p;
			star_i = i;
			continue;
		}
		if (p < plen && token_match(pat + p, plen - p, s[i], nocase,
		    &len)) {
			p += len;
			i++;
			continue;
		}
		if (star_p == SIZE_MAX)
			return false;
		/* Let the last '*' take one more byte, and retry. */
		i = ++star_i;
		p = star_p;
	}
	while (p < plen && pat[p] == '*')
		p++;
	return p == plen;
}
