/*
 * Unit tests for option parsing: defaults, every kind of good value, and
 * every kind of bad one, each rejected with a message naming the option
 * and the value.
 */
#include "conn.h"
#include "log.h"
#include "options.h"
#include "proto/proto.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Parses the NULL-terminated words after the program name. */
static enum options_result parse(struct options *o, char *err,
    const char *const *words)
{
	char *argv[32] = { "echoserver" };
	int argc = 1;

	while (words[argc - 1])
		argv[argc] = (char *)words[argc - 1], argc++;
	options_init(o);
	return options_parse(o, argc, argv, err, 256);
}

START_TEST(test_options_defaults_match_the_documentation)
{
	const char *none[] = { NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, none), OPTIONS_OK);
	ck_assert_int_eq(o.port, 5555);	/* the documented default */
	ck_assert_int_eq(o.backlog, 1024);
	ck_assert_int_eq(o.n_listen, 0);
	ck_assert_int_ge(o.threads, 1);
	ck_assert(o.grace == 5.0);
	ck_assert(o.proxy_timeout == 5.0);
	ck_assert_int_eq(o.reuseport, 0);
	ck_assert(o.idle_timeout == 0);
	ck_assert_uint_eq(o.high_water, 1024 * 1024);
	ck_assert_uint_eq(o.low_water, 256 * 1024);
	ck_assert_int_eq(o.log_level, LL_INFO);
	ck_assert_str_eq(o.protocol->name, "echo");
	ck_assert_ptr_null(o.banner);
	ck_assert_uint_eq(o.max_line, 8192);
	ck_assert_uint_eq(o.max_bulk, 512u << 20);
	ck_assert_uint_eq(o.max_memory, 0);
	ck_assert_ptr_null(o.metrics);
	ck_assert(o.tls_handshake_timeout == 10.0);
	ck_assert_ptr_null(o.tls_cert);
	ck_assert_int_eq(o.offload, 0);	/* inline unless asked */
	ck_assert_int_eq(o.offload_threads, 0);	/* 0: the CPUs */
	ck_assert_int_eq(o.offload_queue, 1024);
}
END_TEST

/* The port of a resolved listener, in host order. */
static int listen_port(const struct options_listen *l)
{
	if (l->addr.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
}

/* The port of a sockaddr_storage, in host order. */
static int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

START_TEST(test_options_metrics_takes_a_port_and_an_optional_address)
{
	const char *port_only[] = { "--metrics", "9100", NULL };
	const char *v4[] = { "--metrics", "127.0.0.1:0", NULL };
	const char *v6[] = { "--metrics", "[::1]:9101", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, port_only), OPTIONS_OK);
	ck_assert_str_eq(o.metrics, "9100");
	ck_assert_int_eq(o.metrics_any, 1);	/* every interface */
	ck_assert_int_eq(o.metrics_addr.ss_family, AF_INET6);
	ck_assert_int_eq(addr_port(&o.metrics_addr), 9100);

	ck_assert_int_eq(parse(&o, err, v4), OPTIONS_OK);
	ck_assert_int_eq(o.metrics_any, 0);
	ck_assert_int_eq(o.metrics_addr.ss_family, AF_INET);
	ck_assert_int_eq(addr_port(&o.metrics_addr), 0);

	ck_assert_int_eq(parse(&o, err, v6), OPTIONS_OK);
	ck_assert_int_eq(o.metrics_any, 0);
	ck_assert_int_eq(o.metrics_addr.ss_family, AF_INET6);
	ck_assert_int_eq(addr_port(&o.metrics_addr), 9101);
}
END_TEST

START_TEST(test_options_listen_takes_a_protocol_and_a_port_each)
{
	const char *args[] = { "-l", "echo@127.0.0.1:5556", "-l",
		"[::1]:5557", "-l", "127.0.0.2", "-l", "::1", "--protocol",
		"echo", "-p", "7000", "--banner", "hi", "--max-line", "1k",
		"--max-bulk", "1m", "--max-memory", "64M", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, args), OPTIONS_OK);
	ck_assert_int_eq(o.n_listen, 4);
	ck_assert_str_eq(o.listen[0].proto->name, "echo");
	ck_assert_int_eq(o.listen[0].addr.ss_family, AF_INET);
	ck_assert_int_eq(listen_port(&o.listen[0]), 5556);
	ck_assert_int_eq(o.listen[1].addr.ss_family, AF_INET6);
	ck_assert_int_eq(listen_port(&o.listen[1]), 5557);
	/* No port of their own: --port, even given after them. */
	ck_assert_int_eq(listen_port(&o.listen[2]), 7000);
	ck_assert_int_eq(o.listen[3].addr.ss_family, AF_INET6);
	ck_assert_int_eq(listen_port(&o.listen[3]), 7000);
	ck_assert_ptr_eq(o.listen[2].proto, o.protocol);
	ck_assert_str_eq(o.banner, "hi");
	ck_assert_uint_eq(o.max_line, 1024);
	ck_assert_uint_eq(o.max_bulk, 1u << 20);
	ck_assert_uint_eq(o.max_memory, 64u << 20);
}
END_TEST

START_TEST(test_options_listen_prefix_proxy_sets_the_flag)
{
	const char *args[] = { "-l", "proxy+line@127.0.0.1:5556", "-l",
		"proxy+[::1]:5557", "-l", "echo@127.0.0.1", "--proxy-timeout",
		"2.5", "--reuseport", NULL };
	struct options o;
	char err[256], pre[32];

	ck_assert_int_eq(parse(&o, err, args), OPTIONS_OK);
	ck_assert_uint_eq(o.listen[0].flags, CONN_LISTEN_PROXY);
	ck_assert_str_eq(o.listen[0].proto->name, "line");
	ck_assert_int_eq(listen_port(&o.listen[0]), 5556);
	/* No handler named: --protocol's, behind the prefix. */
	ck_assert_uint_eq(o.listen[1].flags, CONN_LISTEN_PROXY);
	ck_assert_ptr_eq(o.listen[1].proto, o.protocol);
	ck_assert_int_eq(o.listen[1].addr.ss_family, AF_INET6);
	ck_assert_uint_eq(o.listen[2].flags, 0);
	ck_assert(o.proxy_timeout == 2.5);
	ck_assert_int_eq(o.reuseport, 1);
	ck_assert_str_eq(options_listen_prefixes(CONN_LISTEN_PROXY, pre,
	    sizeof(pre)), "proxy+");
	ck_assert_str_eq(options_listen_prefixes(0, pre, sizeof(pre)), "");
}
END_TEST

START_TEST(test_options_pubsub_limit_is_redis_s_by_default_and_settable)
{
	const char *none[] = { NULL };
	const char *hard[] = { "--pubsub-limit", "1m", NULL };
	const char *all[] = { "--pubsub-limit", "64M:2k:0.5", NULL };
	const char *off[] = { "--pubsub-limit", "0", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, none), OPTIONS_OK);
	ck_assert_uint_eq(o.pubsub_hard, 32u << 20);
	ck_assert_uint_eq(o.pubsub_soft, 8u << 20);
	ck_assert(o.pubsub_seconds == 60);
	ck_assert_int_eq(parse(&o, err, hard), OPTIONS_OK);
	ck_assert_uint_eq(o.pubsub_hard, 1u << 20);
	ck_assert_uint_eq(o.pubsub_soft, 0);
	ck_assert_int_eq(parse(&o, err, all), OPTIONS_OK);
	ck_assert_uint_eq(o.pubsub_hard, 64u << 20);
	ck_assert_uint_eq(o.pubsub_soft, 2048);
	ck_assert(o.pubsub_seconds == 0.5);
	ck_assert_int_eq(parse(&o, err, off), OPTIONS_OK);
	ck_assert_uint_eq(o.pubsub_hard, 0);
	ck_assert_uint_eq(o.pubsub_soft, 0);
}
END_TEST

START_TEST(test_options_protocols_lists_every_handler)
{
	const char *args[] = { "--protocols", NULL };
	struct options o;
	char err[256];
	char *text;
	size_t size;
	FILE *f = open_memstream(&text, &size);
	int n = 0;

	ck_assert_int_eq(parse(&o, err, args), OPTIONS_PROTOCOLS);
	options_list_protocols(f);
	fclose(f);
	for (const struct proto_ops *const *p = proto_handlers; *p; p++, n++)
		ck_assert_msg(strstr(text, (*p)->name) &&
		    strstr(text, (*p)->summary), "'%s' missing from '%s'",
		    (*p)->name, text);
	ck_assert_int_ge(n, 1);
	for (char *p = text; (p = strchr(p, '\n')); p++)
		n--;
	ck_assert_msg(n == 0, "not one line per handler: '%s'", text);
	free(text);
}
END_TEST

START_TEST(test_options_default_threads_follow_the_cpu_affinity)
{
	const char *none[] = { NULL };
	struct options o;
	char err[256];
	cpu_set_t one;

	/* Check forks each test, so this affinity stays in this test. */
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(parse(&o, err, none), OPTIONS_OK);
	ck_assert_int_eq(o.threads, 1);
}
END_TEST

START_TEST(test_options_accepts_every_option)
{
	const char *args[] = { "-p", "0", "-l", "127.0.0.1", "--listen",
		"[::1]", "-t", "3", "-b", "64", "-c", "100",
		"--idle-timeout", "2.5", "--write-timeout", "7",
		"--high-water", "4M", "--low-water", "64k", "--grace", "0.5",
		"--port-file", "/tmp/x", "--reject-message", "", "-vv", "-q",
		NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, args), OPTIONS_OK);
	ck_assert_int_eq(o.port, 0);
	ck_assert_int_eq(o.n_listen, 2);
	ck_assert_str_eq(o.listen[1].text, "[::1]");
	ck_assert_int_eq(o.threads, 3);
	ck_assert_int_eq(o.backlog, 64);
	ck_assert_int_eq(o.max_conns, 100);
	ck_assert(o.idle_timeout == 2.5);
	ck_assert(o.write_timeout == 7);
	ck_assert_uint_eq(o.high_water, 4u << 20);
	ck_assert_uint_eq(o.low_water, 64u << 10);
	ck_assert(o.grace == 0.5);
	ck_assert_str_eq(o.port_file, "/tmp/x");
	ck_assert_str_eq(o.reject_message, "");
	ck_assert_int_eq(o.log_level, LL_VERBOSE);
}
END_TEST

START_TEST(test_options_accepts_the_offload_options)
{
	const char *args[] = { "--offload", "--offload-threads", "3",
		"--offload-queue", "8", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, args), OPTIONS_OK);
	ck_assert_int_eq(o.offload, 1);
	ck_assert_int_eq(o.offload_threads, 3);
	ck_assert_int_eq(o.offload_queue, 8);
}
END_TEST

START_TEST(test_options_help_and_version_are_not_errors)
{
	const char *help[] = { "--help", NULL }, *ver[] = { "-V", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, help), OPTIONS_HELP);
	ck_assert_int_eq(parse(&o, err, ver), OPTIONS_VERSION);
}
END_TEST

/* Each row: the arguments, then two substrings the message must hold. */
static const struct bad {
	const char *args[4];
	const char *want1, *want2;
} bad[] = {
	{ { "-p", "abc" }, "'abc'", "'--port'" },
	{ { "-p", "65536" }, "'65536'", "'--port'" },
	{ { "-p", "-1" }, "'-1'", "'--port'" },
	{ { "--port", "80x" }, "'80x'", "'--port'" },
	{ { "-p", "" }, "''", "'--port'" },
	{ { "-t", "0" }, "'0'", "'--threads'" },
	{ { "-t", "99999999999999999999" }, "99999", "'--threads'" },
	{ { "-b", "0" }, "'0'", "'--backlog'" },
	{ { "-c", "-5" }, "'-5'", "'--max-conns'" },
	{ { "-l", "localhost" }, "'localhost'", "'--listen'" },
	{ { "-l", "1.2.3.4.5" }, "'1.2.3.4.5'", "'--listen'" },
	{ { "-l", "[::1" }, "'[::1'", "'--listen'" },
	{ { "-l", "[::1]5" }, "'[::1]5'", "'--listen'" },
	{ { "-l", "127.0.0.1:65536" }, "'127.0.0.1:65536'", "'--listen'" },
	{ { "-l", "127.0.0.1:" }, "'127.0.0.1:'", "'--listen'" },
	{ { "-l", "127.0.0.1:-1" }, "'127.0.0.1:-1'", "'--listen'" },
	{ { "-l", "nope@127.0.0.1" }, "unknown protocol 'nope'", "'--listen'" },
	{ { "-l", "@127.0.0.1" }, "unknown protocol ''", "'--listen'" },
	{ { "-l", "echo@" }, "'echo@'", "'--listen'" },
	{ { "--protocol", "nope" }, "unknown protocol 'nope'",
	    "'--protocol'" },
	{ { "--max-line", "0" }, "'0'", "'--max-line'" },
	{ { "--max-line", "65M" }, "'65M'", "'--max-line'" },
	{ { "--max-line", "8x" }, "'8x'", "'--max-line'" },
	{ { "--max-bulk", "0" }, "'0'", "'--max-bulk'" },
	{ { "--max-bulk", "513M" }, "'513M'", "'--max-bulk'" },
	{ { "--max-memory", "-1" }, "'-1'", "'--max-memory'" },
	{ { "--max-memory", "1x" }, "'1x'", "'--max-memory'" },
	{ { "--pubsub-limit", "32m:8m" }, "'32m:8m'", "'--pubsub-limit'" },
	{ { "--pubsub-limit", "x" }, "'x'", "'--pubsub-limit'" },
	{ { "--pubsub-limit", "1m:1k:-1" }, "'1m:1k:-1'",
	    "'--pubsub-limit'" },
	{ { "--pubsub-limit", "1m:1k:1:2" }, "'1m:1k:1:2'",
	    "'--pubsub-limit'" },
	{ { "--idle-timeout", "-1" }, "'-1'", "'--idle-timeout'" },
	{ { "--idle-timeout", "nan" }, "'nan'", "'--idle-timeout'" },
	{ { "--write-timeout", "1s" }, "'1s'", "'--write-timeout'" },
	{ { "--grace", "inf" }, "'inf'", "'--grace'" },
	{ { "--high-water", "0" }, "'0'", "'--high-water'" },
	{ { "--high-water", "1T" }, "'1T'", "'--high-water'" },
	{ { "--low-water", "-1" }, "'-1'", "'--low-water'" },
	{ { "--low-water", "2M" }, "'2097152'", "'--low-water'" },
	{ { "--port-file", "" }, "''", "'--port-file'" },
	{ { "-l", "proxy+nope@127.0.0.1" }, "unknown protocol 'nope' in "
	    "'proxy+nope@127.0.0.1'", "'--listen'" },
	{ { "-l", "proxy+" }, "'proxy+'", "'--listen'" },
	{ { "-l", "proxy@127.0.0.1" }, "unknown protocol 'proxy'",
	    "'--listen'" },
	{ { "--proxy-timeout", "0" }, "'0'", "'--proxy-timeout'" },
	{ { "--proxy-timeout", "3601" }, "'3601'", "'--proxy-timeout'" },
	/* The port is not optional: an address alone is refused. */
	{ { "--metrics", "127.0.0.1" }, "'127.0.0.1'", "'--metrics'" },
	{ { "--metrics", "[::1]" }, "'[::1]'", "'--metrics'" },
	{ { "--metrics", "::1" }, "'::1'", "'--metrics'" },
	{ { "--metrics", "65536" }, "'65536'", "'--metrics'" },
	{ { "--metrics", "91x" }, "'91x'", "'--metrics'" },
	{ { "--metrics", "localhost:9100" }, "'localhost:9100'",
	    "'--metrics'" },
	{ { "--metrics", "" }, "''", "'--metrics'" },
	{ { "--offload-threads", "0" }, "'0'", "'--offload-threads'" },
	{ { "--offload-threads", "1025" }, "'1025'", "'--offload-threads'" },
	{ { "--offload-queue", "0" }, "'0'", "'--offload-queue'" },
	{ { "--offload-queue", "2x" }, "'2x'", "'--offload-queue'" },
	{ { "--bogus" }, "unknown option", "'--bogus'" },
	{ { "-x" }, "unknown option", "'-x'" },
	{ { "-p" }, "needs a value", "'--port'" },
	{ { "--grace" }, "needs a value", "'--grace'" },
	{ { "stray" }, "unexpected argument", "'stray'" },
};

START_TEST(test_options_rejects_bad_values_naming_option_and_value)
{
	const struct bad *b = &bad[_i];
	struct options o;
	char err[256] = "";

	ck_assert_int_eq(parse(&o, err, b->args), OPTIONS_ERROR);
	ck_assert_msg(strstr(err, b->want1) && strstr(err, b->want2),
	    "message '%s' lacks %s or %s", err, b->want1, b->want2);
	ck_assert_msg(err[0] >= 'a' && err[0] <= 'z' &&
	    err[strlen(err) - 1] != '.' && !strchr(err, '\n'),
	    "not one lowercase line without a period: '%s'", err);
}
END_TEST

START_TEST(test_options_bad_option_exits_64_with_one_message)
{
	const char *args[] = { "--threads", "lots", NULL };
	char *err;
	int status = run_echoserver(args, &err);

	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 64);
	ck_assert_msg(strstr(err, "echoserver: invalid value 'lots' for "
	    "option '--threads'\n"), "stderr: %s", err);
	free(err);
}
END_TEST

START_TEST(test_options_unknown_protocol_exits_64_naming_it)
{
	const char *args[] = { "-l", "gopher@127.0.0.1:0", NULL };
	char *err;
	int status = run_echoserver(args, &err);

	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 64);
	ck_assert_msg(strstr(err, "echoserver: unknown protocol 'gopher'"),
	    "stderr: %s", err);
	free(err);
}
END_TEST

START_TEST(test_options_tls_prefix_marks_a_listener_and_needs_cert_and_key)
{
	const char *good[] = { "--tls-cert", "c.pem", "--tls-key", "k.pem",
		"-l", "tls+line@127.0.0.1:7000", "-l", "tls+127.0.0.1:7001",
		"-l", "echo@127.0.0.1:7002", "--tls-handshake-timeout", "2.5",
		"-l", "proxy+tls+resp@127.0.0.1:7003", NULL };
	const char *no_key[] = { "--tls-cert", "c.pem", "-l",
		"tls+echo@127.0.0.1:7000", NULL };
	const char *zero[] = { "--tls-handshake-timeout", "0", NULL };
	const char *bad_proto[] = { "--tls-cert", "c.pem", "--tls-key",
		"k.pem", "-l", "tls+gopher@127.0.0.1", NULL };
	struct options o;
	char err[256];

	ck_assert_int_eq(parse(&o, err, good), OPTIONS_OK);
	ck_assert_int_eq(o.n_listen, 4);
	ck_assert_uint_eq(o.listen[0].flags, CONN_LISTEN_TLS);
	ck_assert_str_eq(o.listen[0].proto->name, "line");
	ck_assert_int_eq(listen_port(&o.listen[0]), 7000);
	ck_assert_uint_eq(o.listen[1].flags, CONN_LISTEN_TLS);
	ck_assert_str_eq(o.listen[1].proto->name, "echo");
	ck_assert_uint_eq(o.listen[2].flags, 0);
	ck_assert_uint_eq(o.listen[3].flags,
	    CONN_LISTEN_PROXY | CONN_LISTEN_TLS);
	ck_assert_str_eq(o.listen[3].proto->name, "resp");
	ck_assert_str_eq(o.tls_cert, "c.pem");
	ck_assert_str_eq(o.tls_key, "k.pem");
	ck_assert(o.tls_handshake_timeout == 2.5);

	ck_assert_int_eq(parse(&o, err, no_key), OPTIONS_ERROR);
	ck_assert_str_eq(err, "listener 'tls+echo@127.0.0.1:7000' needs "
	    "'--tls-cert' and '--tls-key'");
	ck_assert_int_eq(parse(&o, err, zero), OPTIONS_ERROR);
	ck_assert_str_eq(err, "invalid value '0' for option "
	    "'--tls-handshake-timeout'");
	ck_assert_int_eq(parse(&o, err, bad_proto), OPTIONS_ERROR);
	ck_assert_msg(strstr(err, "unknown protocol 'gopher' in "
	    "'tls+gopher@127.0.0.1'"), "err: %s", err);
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("good");

	tcase_add_test(tc, test_options_defaults_match_the_documentation);
	tcase_add_test(tc, test_options_default_threads_follow_the_cpu_affinity);
	tcase_add_test(tc, test_options_accepts_every_option);
	tcase_add_test(tc, test_options_accepts_the_offload_options);
	tcase_add_test(tc, test_options_help_and_version_are_not_errors);
	tcase_add_test(tc, test_options_listen_takes_a_protocol_and_a_port_each);
	tcase_add_test(tc,
	    test_options_metrics_takes_a_port_and_an_optional_address);
	tcase_add_test(tc, test_options_protocols_lists_every_handler);
	tcase_add_test(tc, test_options_listen_prefix_proxy_sets_the_flag);
	tcase_add_test(tc,
	    test_options_tls_prefix_marks_a_listener_and_needs_cert_and_key);
	tcase_add_test(tc,
	    test_options_pubsub_limit_is_redis_s_by_default_and_settable);
	suite_add_tcase(s, tc);
	tc = tcase_create("bad");
	tcase_add_loop_test(tc,
	    test_options_rejects_bad_values_naming_option_and_value, 0,
	    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_options_bad_option_exits_64_with_one_message);
	tcase_add_test(tc, test_options_unknown_protocol_exits_64_naming_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(options_suite());
}
