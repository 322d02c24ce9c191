/*
 * Glob matching with redis's rules, for PSUBSCRIBE, PUBSUB CHANNELS and
 * CONFIG GET: '*' matches any run of bytes, '?' any one byte, "[...]" one
 * byte of a set ("[abc]", ranges "[a-z]", negated "[^...]"), and '\'
 * makes the next byte literal, inside a set too.  Patterns and strings
 * are byte strings with lengths, NUL bytes allowed.
 *
 * What redis does with odd patterns is kept, so that a pattern matches
 * here exactly what it matches in redis 7.0: an unterminated set takes
 * the rest of the pattern as its members; a range's ends may come in
 * either order; "[a-]" is the range from 'a' to ']'; bytes compare as
 * signed chars in ranges (so "[a-\xff]" is the range from -1 to 'a');
 * a '\' at the very end of a pattern is a literal '\'; and the empty
 * string matches the empty pattern only ("*" does not match it).
 *
 * Unlike redis's recursive matcher, this one is iterative with one
 * backtrack point, so a pattern of a million '*' needs no stack, and the
 * time is at most O(pattern x string).  It reads no byte outside the two
 * buffers.  Pure and thread-safe.
 */
#ifndef GLOB_H
#define GLOB_H

#include <stdbool.h>
#include <stddef.h>

enum glob_flags {
	GLOB_NOCASE = 1 << 0,	/* ASCII letters match either case */
};

/* True if the @slen bytes at @s match the @plen-byte pattern @pat (both
 * borrowed) under @flags (enum glob_flags). */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen,
    unsigned flags);

#endif
