/*
 * Timestamped, levelled log lines on stderr, shared by every thread.
 * libevent's own warnings are routed here too, so the operator reads one
 * stream.  Each line is written with a single write(2), so lines from
 * different threads never interleave.
 */
#ifndef LOG_H
#define LOG_H

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_VERBOSE,
	LOG_DEBUG,
};

/* Lines above @level are dropped.  Call before starting threads. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Routes libevent's log callback into log_msg(). */
void log_capture_libevent(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LOG_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
