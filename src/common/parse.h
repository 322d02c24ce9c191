/*
 * Parsing of command-line numbers shared by echoserver and echobench, so
 * that both programs read "64k" the same way.  Nothing here prints or
 * exits: each program words its own error message.
 */
#ifndef PARSE_H
#define PARSE_H

#include <stdint.h>

/*
 * Parses @s (borrowed) as a byte count: decimal digits, then optionally
 * one suffix k, m or g in either case, meaning 2^10, 2^20 or 2^30.  The
 * whole string must be used; no sign, no space.
 *
 * Returns 0 and stores the count in *@out when it lies in [@min, @max];
 * -EINVAL when @s is not a count in that form; -ERANGE when it is, but
 * outside [@min, @max] (overflow included).  *@out is untouched on error.
 */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
