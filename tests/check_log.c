/*
 * Tests of the log sink (src/log.c): the text format stays as it was, and
 * --log-format json gives one valid JSON object per line whatever the
 * message holds (quotes, control bytes, bytes that are not UTF-8) and
 * however long it is.  The lines are checked byte for byte, and, where
 * python3 is installed, by its strict JSON parser as a log shipper would
 * read them; then a real echoserver logs in JSON.
 */
#include "log.h"
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int saved_stderr = -1;
static char capture_path[64];

/* Sends fd 2 to a fresh file until capture_end(). */
static void capture_begin(void)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path),
	    "/tmp/echoserver-log.XXXXXX");
	fd = mkstemp(capture_path);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* What was logged since capture_begin(); caller frees.  Leaves the file
 * at capture_path for a parser to read; capture_remove() deletes it. */
static char *capture_end(void)
{
	struct stat st;
	char *buf;
	int fd;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	fd = open(capture_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	return buf;
}

static void capture_remove(void)
{
	unlink(capture_path);
}

/* The line without its "ts" value, which changes: {"ts":"…", → {"ts":"", */
static const char *after_ts(const char *line)
{
	const char *p;

	ck_assert_msg(!strncmp(line, "{\"ts\":\"", 7), "not JSON: %s", line);
	p = strchr(line + 7, '"');
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq((size_t)(p - line - 7), 24);	/* ms and Z */
	ck_assert_int_eq(line[7 + 10], 'T');
	ck_assert_int_eq(line[7 + 23], 'Z');
	return p + 1;
}

static void setup(void)
{
	log_set_level(LL_INFO);
	log_set_format(LOG_FORMAT_TEXT);
}

START_TEST(test_log_text_is_the_default_and_unchanged)
{
	struct log_field f[] = { LOG_STR("client", "127.0.0.1:4000"),
		LOG_INT("bytes", 42), LOG_STR("why", "peer said \"bye\"") };
	char *out, *line2;

	capture_begin();
	log_info("hello %d", 7);
	log_fields(LL_WARN, f, 3, "closed");
	out = capture_end();
	capture_remove();
	/* "2026-12-01 13:40:00.123 info: hello 7" */
	ck_assert_uint_gt(strlen(out), 24);
	ck_assert_int_eq(out[4], '-');
	ck_assert_int_eq(out[10], ' ');
	ck_assert_int_eq(out[19], '.');
	ck_assert_msg(!strncmp(out + 23, " info: hello 7\n", 15), "%s", out);
	line2 = strchr(out, '\n') + 1;
	ck_assert_str_eq(line2 + 23, " warn: closed client=127.0.0.1:4000 "
	    "bytes=42 why=\"peer said \\\"bye\\\"\"\n");
	free(out);
}
END_TEST

START_TEST(test_log_json_is_one_object_with_ts_level_msg_and_fields)
{
	struct log_field f[] = { LOG_STR("client", "[::1]:4000"),
		LOG_INT("bytes_in", -3), LOG_STR("empty", "") };
	char *out, *nl;

	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LL_VERBOSE);
	capture_begin();
	log_error("cannot listen on '%s'", "0.0.0.0:1");
	log_fields(LL_VERBOSE, f, 3, "conn open");
	log_debug("dropped: above the level");
	out = capture_end();
	capture_remove();
	nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	ck_assert_str_eq(after_ts(out), ",\"level\":\"error\",\"msg\":"
	    "\"cannot listen on '0.0.0.0:1'\"}");
	ck_assert_str_eq(after_ts(nl + 1), ",\"level\":\"verbose\",\"msg\":"
	    "\"conn open\",\"client\":\"[::1]:4000\",\"bytes_in\":-3,"
	    "\"empty\":\"\"}\n");
	free(out);
}
END_TEST

START_TEST(test_log_json_escapes_controls_quotes_and_bad_utf8)
{
	/* Valid UTF-8 (é, €, U+1F600) passes through; a stray 0xff, an
	 * overlong '/', a UTF-16 surrogate and a cut-off sequence do not. */
	const char *msg = "q\" b\\ n\n t\t r\r c\x01 d\x7f "
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
	    "x\xff o\xc0\xaf s\xed\xa0\x80 e\xe2\x82";
	struct log_field f = LOG_STR("k\"ey", "v\nal");
	char *out;

	log_set_format(LOG_FORMAT_JSON);
	capture_begin();
	log_fields(LL_INFO, &f, 1, "%s", msg);
	out = capture_end();
	capture_remove();
	ck_assert_str_eq(after_ts(out), ",\"level\":\"info\",\"msg\":"
	    "\"q\\\" b\\\\ n\\n t\\t r\\r c\\u0001 d\\u007f "
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
	    "x\\ufffd o\\ufffd\\ufffd s\\ufffd\\ufffd\\ufffd "
	    "e\\ufffd\\ufffd\",\"k\\\"ey\":\"v\\nal\"}\n");
	free(out);
}
END_TEST

START_TEST(test_log_json_cuts_long_lines_into_valid_objects)
{
	static char big[20000], ctl[1001];
	struct log_field f[] = { LOG_INT("n", 1), LOG_STR("huge", big) };
	char *out;
	size_t len;

	memset(big, 'x', sizeof(big) - 1);
	log_set_format(LOG_FORMAT_JSON);
	capture_begin();
	/* A message past the 1 KiB message buffer... */
	log_info("%s", big);
	/* ...one that escapes to six times its size... */
	memset(ctl, 1, sizeof(ctl) - 1);
	log_info("%s", ctl);
	/* ...and a field that cannot fit: left out whole. */
	log_fields(LL_INFO, f, 2, "short");
	out = capture_end();
	capture_remove();

	len = strcspn(out, "\n");
	ck_assert_msg(len > 1000 && len < 8192, "line 1 is %zu bytes", len);
	ck_assert(!strncmp(out + len - 20, "x\",\"truncated\":true}", 20));
	out[len] = '\0';
	ck_assert_ptr_null(strstr(out, "\\u"));

	{
		char *l2 = out + len + 1, *l3;

		len = strcspn(l2, "\n");
		ck_assert_ptr_nonnull(strstr(l2, "\"msg\":\"\\u0001\\u0001"));
		ck_assert_msg(!strncmp(l2 + len - 8, "\\u0001\"}", 8),
		    "%.40s", l2 + len - 40);
		l3 = l2 + len + 1;
		ck_assert_str_eq(after_ts(l3), ",\"level\":\"info\",\"msg\":"
		    "\"short\",\"n\":1,\"truncated\":true}\n");
	}
	free(out);
}
END_TEST

/* Lines from every case above, read by python3's json module with
 * strict=True, as a shipper would; each must be an object with the three
 * keys. */
START_TEST(test_log_json_lines_parse_in_a_real_json_parser)
{
	static char big[3000];
	struct log_field f[] = { LOG_STR("a\x02", "\xff\xfe"),
		LOG_INT("b", 9223372036854775807LL) };
	char cmd[512], *res;
	int status;

	memset(big, '"', sizeof(big) - 1);
	log_set_format(LOG_FORMAT_JSON);
	capture_begin();
	log_info("plain");
	log_fields(LL_WARN, f, 2, "ctl \x1b[31m red \xed\xbf\xbf");
	log_info("%s", big);
	log_fields(LL_INFO, f, 2, "%.2000s", big);
	free(capture_end());	/* python3 reads the file itself */
	snprintf(cmd, sizeof(cmd), "python3 -c '\n"
	    "import json, sys\n"
	    "n = 0\n"
	    "for line in open(sys.argv[1], \"rb\"):\n"
	    "    o = json.loads(line.decode(\"utf-8\"), strict=True)\n"
	    "    assert set([\"ts\", \"level\", \"msg\"]) <= set(o), o\n"
	    "    n += 1\n"
	    "print(n)' %s 2>&1", capture_path);
	res = test_shell(cmd, &status);
	capture_remove();
	ck_assert_msg(status == 0, "python3 rejected a line: %s", res);
	ck_assert_str_eq(res, "4\n");
	free(res);
}
END_TEST

START_TEST(test_log_format_json_from_a_real_echoserver)
{
	const char *args[] = { "--log-format", "json", "-t", "1", NULL };
	const char *bad[] = { "--log-format", "xml", NULL };
	struct test_server ts;
	char *log, *err;
	int fd, status;

	test_server_start(&ts, args);
	fd = test_connect(ts.port);
	ck_assert(test_echo_once(fd));
	close(fd);
	log = test_server_stop_clean(&ts);
	test_server_cleanup(&ts);
	for (char *line = log, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		ck_assert_msg(nl, "unterminated line: %s", line);
		*nl = '\0';
		after_ts(line);
		ck_assert_msg(nl[-1] == '}', "not one object: %s", line);
	}
	free(log);

	status = run_echoserver(bad, &err);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 64);
	ck_assert_ptr_nonnull(strstr(err, "invalid value 'xml' for option "
	    "'--log-format'"));
	free(err);
}
END_TEST

static const char *no_python3(void)
{
	/* Not test_shell(): this runs outside a test, where Check cannot
	 * report an assertion. */
	if (test_have_tool("python3"))
		return NULL;
	return "python3 is not installed";
}

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("format");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_log_text_is_the_default_and_unchanged);
	tcase_add_test(tc,
	    test_log_json_is_one_object_with_ts_level_msg_and_fields);
	tcase_add_test(tc, test_log_json_escapes_controls_quotes_and_bad_utf8);
	tcase_add_test(tc, test_log_json_cuts_long_lines_into_valid_objects);
	test_add_or_skip(tc, test_log_json_lines_parse_in_a_real_json_parser,
	    no_python3());
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_log_format_json_from_a_real_echoserver);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(log_suite());
}
