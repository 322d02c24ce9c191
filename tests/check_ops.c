/*
 * What an operator meets before the server runs: the man pages, held to
 * the programs' --help (every long option in one is in the other, and
 * groff reads the pages without a warning), and the set-up of the
 * README's quick start, where `make run` and `make check` install the
 * missing Debian packages when they can and otherwise stop with one line
 * (Makefile, need-packages).  The set-up tests run the real make and
 * dpkg; the install is apt-get's own --simulate, so the test never
 * changes the machine.  Run from the top of the source tree, as `make
 * check` does.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Names of long options ("port", "max-conns"), one string each. */
struct names {
	char *v[128];
	int n;
};

static void names_add(struct names *s, const char *p, size_t len)
{
	for (int i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && !strncmp(s->v[i], p, len))
			return;
	ck_assert_int_lt(s->n, 128);
	s->v[s->n] = strndup(p, len);
	ck_assert_ptr_nonnull(s->v[s->n]);
	s->n++;
}

static int names_has(const struct names *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], name))
			return 1;
	return 0;
}

static void names_free(struct names *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i]);
	s->n = 0;
}

/* Every "--name" in @line (troff's "\-" already turned into '-'). */
static void names_scan(struct names *s, const char *line)
{
	for (const char *p = line; (p = strstr(p, "--")); ) {
		size_t len;

		p += 2;
		len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
		if (len && p[0] != '-')
			names_add(s, p, len);
		p += len;
	}
}

/* The long options the man page @path documents: the tags (the line
 * after each .TP) of its OPTIONS section. */
static void man_options(const char *path, struct names *out)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int in_options = 0, tag = 0;

	ck_assert_msg(f != NULL, "cannot open '%s'", path);
	while (fgets(line, sizeof(line), f)) {
		char plain[1024];
		size_t n = 0;

		if (!strncmp(line, ".SH", 3)) {
			in_options = strstr(line, "OPTIONS") != NULL;
			continue;
		}
		if (!in_options)
			continue;
		if (!strncmp(line, ".TP", 3)) {
			tag = 1;
			continue;
		}
		if (!tag)
			continue;
		tag = 0;
		for (const char *p = line; *p && n < sizeof(plain) - 1; p++) {
			if (p[0] == '\\' && p[1] == '-')
				p++;
			plain[n++] = *p;
		}
		plain[n] = '\0';
		names_scan(out, plain);
	}
	fclose(f);
}

/* The long options @prog --help lists: lines whose first word is an
 * option ("  -p, --port N", "      --grace SECS"), not the text. */
static void help_options(const char *prog, struct names *out)
{
	char cmd[256], *text;
	int status;

	snprintf(cmd, sizeof(cmd), "%s --help", prog);
	text = test_shell(cmd, &status);
	ck_assert_msg(status == 0, "'%s' failed", cmd);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *p = line + strspn(line, " ");
		char *end;

		if (p == line || *p != '-')
			continue;
		end = p + strcspn(p, " ");	/* "-p," or "--port" */
		if (end[0] == ' ' && end[-1] == ',')
			p = end + 1;
		if (strncmp(p, "--", 2))
			continue;
		p[strcspn(p, " =")] = '\0';
		names_scan(out, p);
	}
	free(text);
}

/* Fails naming every option that one of them lacks. */
static void compare_options(const char *prog, const char *page)
{
	struct names help = { .n = 0 }, man = { .n = 0 };
	char missing[2048] = "", extra[2048] = "";

	help_options(prog, &help);
	man_options(page, &man);
	ck_assert_int_gt(help.n, 5);
	for (int i = 0; i < help.n; i++)
		if (!names_has(&man, help.v[i]))
			snprintf(missing + strlen(missing), sizeof(missing) -
			    strlen(missing), " --%s", help.v[i]);
	for (int i = 0; i < man.n; i++)
		if (!names_has(&help, man.v[i]))
			snprintf(extra + strlen(extra), sizeof(extra) -
			    strlen(extra), " --%s", man.v[i]);
	ck_assert_msg(!missing[0] && !extra[0], "'%s --help' lists options "
	    "that %s lacks:%s (add a .TP entry to its OPTIONS section); %s "
	    "documents options that --help does not list:%s", prog, page,
	    missing[0] ? missing : " none", page, extra[0] ? extra : " none");
	names_free(&help);
	names_free(&man);
}

static const char *server_prog(void)
{
	const char *p = getenv("ECHOSERVER");

	return p ? p : "./echoserver";
}

START_TEST(test_man_echoserver_lists_every_option_of_help)
{
	compare_options(server_prog(), "src/echoserver.1");
}
END_TEST

START_TEST(test_man_echobench_lists_every_option_of_help)
{
	compare_options("./echobench", "src/echobench/echobench.1");
}
END_TEST

/* The comparison itself: a page without an option must fail, naming it. */
START_TEST(test_man_comparison_names_a_missing_option)
{
	char page[] = "/tmp/echoserver-man.XXXXXX", cmd[256], *out;
	int status;
	pid_t pid;

	close(mkstemp(page));
	snprintf(cmd, sizeof(cmd), "grep -v 'max\\\\-bulk' src/echoserver.1 "
	    ">%s", page);
	out = test_shell(cmd, &status);
	ck_assert_int_eq(status, 0);
	free(out);
	/* In a child, so its failure is an outcome, not this test's. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct names help = { .n = 0 }, man = { .n = 0 };

		help_options(server_prog(), &help);
		man_options(page, &man);
		_exit(names_has(&help, "max-bulk") && !names_has(&man,
		    "max-bulk") && names_has(&man, "max-line") ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	unlink(page);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the comparison did not see --max-bulk missing");
}
END_TEST

START_TEST(test_man_pages_format_without_warnings)
{
	const char *pages[] = { "src/echoserver.1",
		"src/echobench/echobench.1" };

	for (size_t i = 0; i < 2; i++) {
		char cmd[256], *out;
		int status;

		snprintf(cmd, sizeof(cmd), "groff -man -ww -z %s 2>&1",
		    pages[i]);
		out = test_shell(cmd, &status);
		ck_assert_msg(status == 0 && !*out, "%s: %s", pages[i], out);
		free(out);
	}
}
END_TEST

/*
 * `make need-packages` with the given variables, with make's own
 * variables from a surrounding `make check` dropped (the sub-make builds
 * nothing).  @as_nobody runs it as user nobody, who has no sudo.
 */
static char *make_packages(const char *vars, int as_nobody, int *status)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s env -u MAKEFLAGS -u MFLAGS -u "
	    "MAKELEVEL make -s --no-print-directory need-packages %s 2>&1",
	    as_nobody ? "setpriv --reuid=65534 --regid=65534 --clear-groups"
	    : "", vars);
	return test_shell(cmd, status);
}

#define ABSENT "echoserver-test-absent-package"

static const char want_line[] = "echoserver: missing packages: " ABSENT
    "; install them with: sudo apt-get install -y " ABSENT " (or run "
    "'make deps')\n";

/* Targets other than run and check only name the command. */
START_TEST(test_setup_stops_with_one_line_for_other_targets)
{
	char *out;
	int status;

	out = make_packages("DEBIAN_PACKAGES='pkg-config " ABSENT "'", 0,
	    &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s",
	    out);
	ck_assert_msg(!strncmp(out, want_line, strlen(want_line)), "got: %s",
	    out);
	free(out);
}
END_TEST

/* Allowed to install, but neither root nor able to sudo -n. */
START_TEST(test_setup_stops_with_one_line_without_root_or_sudo)
{
	const char *want = want_line;
	char *out;
	int status;

	out = make_packages("DEBIAN_PACKAGES='pkg-config " ABSENT "' "
	    "INSTALL_DEPS=1", 1, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s",
	    out);
	ck_assert_msg(!strncmp(out, want, strlen(want)), "got: %s", out);
	free(out);
}
END_TEST

START_TEST(test_setup_installs_showing_the_apt_get_line)
{
	char *out;
	int status;

	out = make_packages("DEBIAN_PACKAGES='pkg-config sl' "
	    "DEBIAN_PACKAGES_OPTIONAL='cowsay libevent-dev' "
	    "INSTALL_DEPS=1 APT_GET='apt-get --simulate'", 0, &status);
	ck_assert_msg(status == 0, "%s", out);
	/* The missing required and optional ones, not the installed. */
	ck_assert_msg(strstr(out, "echoserver: installing the missing "
	    "packages: sl cowsay\n"), "%s", out);
	ck_assert_msg(strstr(out, "\n  env DEBIAN_FRONTEND=noninteractive "
	    "apt-get --simulate install -y -q -o DPkg::Lock::Timeout=300 "
	    "--no-install-recommends sl "
	    "cowsay\n") || strstr(out, "\n  sudo -n env "
	    "DEBIAN_FRONTEND=noninteractive apt-get --simulate install -y "
	    "-q -o DPkg::Lock::Timeout=300 --no-install-recommends sl "
	    "cowsay\n"), "%s", out);
	/* apt-get's own answer: it would install both. */
	ck_assert_msg(strstr(out, "\nInst sl ") && strstr(out, "\nInst "
	    "cowsay "), "%s", out);
	free(out);
}
END_TEST

START_TEST(test_setup_needs_nothing_when_only_optional_ones_are_missing)
{
	char *out;
	int status;

	out = make_packages("DEBIAN_PACKAGES=pkg-config "
	    "DEBIAN_PACKAGES_OPTIONAL=" ABSENT " INSTALL_DEPS=1 "
	    "APT_GET=false", 0, &status);
	ck_assert_msg(status == 0 && !*out, "%s", out);
	free(out);
}
END_TEST

/* Suite-time probes: plain shell, since Check cannot report from here. */
static int sh(const char *cmd)
{
	return system(cmd) == 0;
}

static const char *no_dpkg(void)
{
	if (!sh("command -v dpkg-query >/dev/null && test -f Makefile"))
		return "needs dpkg (Debian) and the source tree";
	return NULL;
}

static const char *no_nobody(void)
{
	if (no_dpkg())
		return no_dpkg();
	if (getuid() != 0)
		return "needs root, to run make as nobody";
	if (!sh("setpriv --reuid=65534 --regid=65534 --clear-groups "
	    "test -r Makefile 2>/dev/null"))
		return "user nobody cannot read this tree";
	return NULL;
}

static const char *no_simulated_install(void)
{
	if (no_dpkg())
		return no_dpkg();
	if (getuid() != 0 && !sh("sudo -n true 2>/dev/null"))
		return "neither root nor able to sudo -n";
	for (const char *const *p = (const char *const[]){ "sl", "cowsay",
	    NULL }; *p; p++) {
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "dpkg-query -W "
		    "-f='${db:Status-Status}' %s 2>/dev/null | grep -qx "
		    "installed", *p);
		if (sh(cmd))
			return "sl or cowsay, the packages it would install, "
			    "is installed";
	}
	if (!sh("apt-cache show sl cowsay >/dev/null 2>&1"))
		return "apt has no package lists (run apt-get update)";
	return NULL;
}

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("manpages");

	tcase_add_test(tc, test_man_echoserver_lists_every_option_of_help);
	tcase_add_test(tc, test_man_echobench_lists_every_option_of_help);
	tcase_add_test(tc, test_man_comparison_names_a_missing_option);
	test_add_or_skip(tc, test_man_pages_format_without_warnings,
	    sh("command -v groff >/dev/null") ? NULL :
	    "groff is not installed (Debian: groff-base)");
	suite_add_tcase(s, tc);

	tc = tcase_create("setup");
	tcase_set_timeout(tc, 60);
	test_add_or_skip(tc, test_setup_stops_with_one_line_for_other_targets,
	    no_dpkg());
	test_add_or_skip(tc,
	    test_setup_stops_with_one_line_without_root_or_sudo, no_nobody());
	test_add_or_skip(tc, test_setup_installs_showing_the_apt_get_line,
	    no_simulated_install());
	test_add_or_skip(tc,
	    test_setup_needs_nothing_when_only_optional_ones_are_missing,
	    no_dpkg());
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(ops_suite());
}
