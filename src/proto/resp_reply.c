/*
 * RESP2 reply encoding (resp_reply.h).  Headers are formatted on the
 * stack and queued with conn_reply(), which copies them; nothing here
 * keeps state, so it is safe on every worker thread.
 */
#include "proto/resp_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bulks up to this size go out as one piece built on the stack. */
#define SMALL_BULK 200

void resp_reply_simple(struct conn *c, const char *s)
{
	conn_reply(c, "+", 1);
	conn_reply(c, s, strlen(s));
	conn_reply(c, "\r\n", 2);
}

void resp_reply_ok(struct conn *c)
{
	conn_reply(c, "+OK\r\n", 5);
}

void resp_reply_error(struct conn *c, const char *s)
{
	char buf[256];
	size_t n = 0;

	buf[n++] = '-';
	for (; *s; s++) {
		if (n == sizeof(buf)) {
			conn_reply(c, buf, n);
			n = 0;
		}
		buf[n++] = *s == '\r' || *s == '\n' ? ' ' : *s;
	}
	conn_reply(c, buf, n);
	conn_reply(c, "\r\n", 2);
}

void resp_reply_errorf(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	resp_reply_error(c, buf);
}

void resp_reply_int(struct conn *c, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), ":%lld\r\n", v);

	conn_reply(c, buf, (size_t)n);
}

void resp_reply_bulk(struct conn *c, const char *p, size_t len)
{
	char buf[32 + SMALL_BULK];
	int n = snprintf(buf, sizeof(buf), "$%zu\r\n", len);

	if (len <= SMALL_BULK) {
		if (len)
			memcpy(buf + n, p, len);
		memcpy(buf + n + len, "\r\n", 2);
		conn_reply(c, buf, (size_t)n + len + 2);
		return;
	}
	conn_reply(c, buf, (size_t)n);
	conn_reply(c, p, len);
	conn_reply(c, "\r\n", 2);
}

void resp_reply_bulk_str(struct conn *c, const char *s)
{
	resp_reply_bulk(c, s, strlen(s));
}

void resp_reply_null(struct conn *c)
{
	conn_reply(c, "$-1\r\n", 5);
}

void resp_reply_array(struct conn *c, size_t n)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "*%zu\r\n", n);

	conn_reply(c, buf, (size_t)len);
}
