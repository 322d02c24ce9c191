/*
 * The RESP2 request parser of the resp handler: turns the front of a
 * connection's input into one command, an argument vector of (pointer,
 * length) pairs, with redis's rules and redis's error texts.  Internal to
 * src/proto/ and its tests.
 *
 * DESIGN
 * Frames.  A request starting with '*' is a multibulk array of bulk
 * strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); anything else is an inline
 * command, one line split on blanks with redis's quoting ("..." with
 * \n \r \t \b \a \xHH escapes, and '...').  As in redis, the two bytes
 * after a header's CR and after a bulk's data are skipped unchecked.
 *
 * No copies.  Bulk arguments point into the input the parser was given;
 * only an inline argument that needed unquoting lives in the parser's
 * scratch buffer.  Either way argv is valid until the next call, or until
 * the input is freed.
 *
 * Resuming.  A frame that is not complete is left unconsumed, so the
 * connection presents it again, from its first byte, with more bytes after
 * it (proto.h, "Input").  The parser remembers how far it got in it: the
 * headers and bulks already parsed, as offsets, and how much of a pending
 * line holds no terminator.  So a 512 MiB bulk arriving in many reads
 * costs O(1) per read, not a re-parse.  The offsets are only valid for
 * that same frame, so after RESP_PARSE_MORE the next call must be given
 * the same frame again (a longer copy of it).
 *
 * Limits.  Every limit is decided on the bytes alone, never on how they
 * were split into reads: a line (inline request or header) without its
 * terminator is too big as soon as it must exceed RESP_INLINE_MAX.
 */
#ifndef PROTO_RESP_PARSE_H
#define PROTO_RESP_PARSE_H

#include <stddef.h>

/* redis's PROTO_INLINE_MAX_SIZE: the longest inline request or header
 * line, in bytes before its LF (inline) or CR (headers). */
#define RESP_INLINE_MAX ((size_t)64 << 10)

/* The most arguments of a multibulk request. */
#define RESP_MULTIBULK_MAX ((long long)1 << 20)

/* One argument; @p is borrowed (see "No copies"). */
struct resp_arg {
	const char *p;
	size_t len;
};

enum resp_parse_status {
	RESP_PARSE_MORE,	/* incomplete: consume nothing, call again */
	RESP_PARSE_DONE,	/* one request (maybe argc 0) */
	RESP_PARSE_ERROR,	/* a protocol error: reply err, close */
};

/* Zeroed is the initial state (a connection's state block); release
 * with resp_parser_release(). */
struct resp_parser {
	/* The frame in progress at the front of the input. */
	size_t pos;		/* its bytes parsed so far */
	size_t scanned;		/* bytes from pos known to hold no
				 * line terminator */
	long long want;		/* arguments announced; 0: count line
				 * not parsed yet */
	size_t bulk;		/* with have_bulk: the length of the
				 * bulk whose header is parsed and
				 * whose data starts at pos */
	int have_bulk;
	size_t argc;		/* arguments parsed so far */

	/* Grown as arguments arrive, never beyond what was received. */
	struct resp_arg *argv;
	size_t *off;		/* where each bulk starts in the frame */
	size_t cap;
	char *scratch;		/* unquoted inline arguments */
	size_t scratch_cap;

	/* After RESP_PARSE_ERROR: the error reply, without '-' and CRLF. */
	char err[64];
};

/*
 * Parses the request at the front of @in (@len > 0 bytes, borrowed) with
 * bulks of at most @max_bulk bytes.  RESP_PARSE_DONE: *@used bytes form
 * one request, whose p->argc arguments are in p->argv; an empty inline
 * line or a multibulk count below 1 gives argc 0, to be skipped.
 * RESP_PARSE_MORE: nothing is consumed, and the next call must present
 * the same frame (see "Resuming").  RESP_PARSE_ERROR: p->err holds the
 * reply, and the connection must close; the parser is reset.
 */
enum resp_parse_status resp_parse(struct resp_parser *p, const char *in,
    size_t len, size_t max_bulk, size_t *used);

/* Frees what @p allocated; @p is zeroed, ready for reuse. */
void resp_parser_release(struct resp_parser *p);

/* The argument capacity resp_parser_trim() keeps. */
#define RESP_KEEP_ARGS 64

/*
 * Frees p->argv and the scratch buffer if a request made them larger
 * than a typical one needs, so that one huge request does not pin its
 * memory for the rest of the connection.  Only after RESP_PARSE_DONE,
 * once the request has run: its argv is gone.
 */
void resp_parser_trim(struct resp_parser *p);

/*
 * redis's string2ll(): the @len bytes at @s as a decimal long long, with
 * no sign but '-', no leading zeros, no blanks.  Returns 1 and stores it
 * in *@out, or 0.  Shared by the parser and the commands, so that lengths
 * and integer arguments follow the same rules as in redis.
 */
int resp_strtoll(const char *s, size_t len, long long *out);

#endif
