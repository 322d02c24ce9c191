/*
 * Writing RESP2 replies for the resp handler: simple strings, errors,
 * integers, bulk strings, the null bulk and array headers, each queued on
 * the connection with conn_reply() (proto.h).  Internal to src/proto/.
 *
 * Every function may only be called where conn_reply() may (inside
 * data()), and every pointer it takes is borrowed until it returns.  A
 * bulk whose bytes lie inside data()'s input is replied without a copy
 * when it is large; small replies are built in one stack buffer instead,
 * since one copy is cheaper than three queued pieces.
 */
#ifndef PROTO_RESP_REPLY_H
#define PROTO_RESP_REPLY_H

#include "proto/proto.h"

#include <stddef.h>

/* "+@s\r\n"; @s must hold no CR or LF. */
void resp_reply_simple(struct conn *c, const char *s);

/* "+OK\r\n". */
void resp_reply_ok(struct conn *c);

/*
 * "-@s\r\n", with each CR or LF of @s turned into a space, as redis does,
 * so that text taken from a request can never end the error line early
 * and inject a reply of its own.
 */
void resp_reply_error(struct conn *c, const char *s);

/* As resp_reply_error() with a printf() format. */
void resp_reply_errorf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ":@v\r\n". */
void resp_reply_int(struct conn *c, long long v);

/* "$@len\r\n", the @len bytes at @p, "\r\n". */
void resp_reply_bulk(struct conn *c, const char *p, size_t len);

/* A bulk of the NUL-terminated @s. */
void resp_reply_bulk_str(struct conn *c, const char *s);

/* "$-1\r\n": the null bulk (a missing key, an unmet NX or XX). */
void resp_reply_null(struct conn *c);

/* "*@n\r\n"; the @n elements follow as replies of their own. */
void resp_reply_array(struct conn *c, size_t n);

#endif
