/*
 * Timestamped, levelled log lines on stderr, shared by every thread.
 * libevent's own warnings are routed here too, so the operator reads one
 * stream.  Each line is written with a single write(2), so lines from
 * different threads never interleave.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

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

/* Lines above @level are dropped.  Call before starting threads. */
void log_set_level(enum log_level level);

/* True if lines at @level are written: for skipping the work of
 * formatting what would be dropped. */
bool log_enabled(enum log_level level);

/* Routes libevent's log callback into log_msg(). */
void log_capture_libevent(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LL_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)

#endif
