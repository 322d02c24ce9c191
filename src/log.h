/*
 * Timestamped, levelled log lines on stderr, shared by every thread.
 * libevent's own warnings are routed here too, so the operator reads one
 * stream.  Each line is written with a single write(2), so lines from
 * different threads never interleave.  A line is text by default, or
 * with --log-format json one JSON object for log shippers
 * (docs/operations.md, "Logging").
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Prefixed LL_, as redis does, because <syslog.h> already defines
 * LOG_INFO, LOG_DEBUG and friends as macros: a file that includes both
 * would not compile.
 */
enum log_level {
	LL_ERROR,
	LL_WARN,
	LL_INFO,
	LL_VERBOSE,
	LL_DEBUG,
};

enum log_format {
	LOG_FORMAT_TEXT,	/* "2026-12-01 13:40:00.123 info: msg k=v" */
	LOG_FORMAT_JSON,	/* {"ts":"...","level":"info","msg":"msg",
				 *  "k":"v"}: one object per line */
};

/* Lines above @level are dropped.  Call before starting threads. */
void log_set_level(enum log_level level);

/* True if lines at @level are written: for skipping the work of
 * formatting what would be dropped. */
bool log_enabled(enum log_level level);

/* Call before starting threads. */
void log_set_format(enum log_format format);

/* The format named @name ("text" or "json"); -1 for any other name. */
int log_format_parse(const char *name);

/* Routes libevent's log callback into log_msg(). */
void log_capture_libevent(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A named value attached to a line: in text appended as key=value (the
 * value quoted when it holds a space, a quote or a control byte), in JSON
 * as a member of the object.  @key and @str are borrowed for the call;
 * @key must not be "ts", "level" or "msg".  Build them with LOG_STR() and
 * LOG_INT().
 */
struct log_field {
	const char *key;
	const char *str;	/* NULL: the value is @num */
	long long num;
};

#define LOG_STR(k, v) ((struct log_field){ .key = (k), .str = (v) })
#define LOG_INT(k, v) ((struct log_field){ .key = (k), .num = (v) })

/* log_msg() with @n fields from @fields (borrowed). */
void log_fields(enum log_level level, const struct log_field *fields,
    size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LL_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)

#endif
