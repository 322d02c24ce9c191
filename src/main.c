/*
 * echoserver's entry point: parse options, then run the server.  Exit
 * status: 0 after a clean shutdown, 64 (EX_USAGE) for a bad option, 1 if
 * the server cannot start.
 */
#include "log.h"
#include "options.h"
#include "server.h"
#include "systemd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

int main(int argc, char **argv)
{
	struct options opts;
	struct server server;
	char err[256];
	int rc;

	options_init(&opts);
	switch (options_parse(&opts, argc, argv, err, sizeof(err))) {
	case OPTIONS_OK:
		break;
	case OPTIONS_HELP:
		options_usage(stdout);
		return 0;
	case OPTIONS_VERSION:
		printf("echoserver %s\n%s\n", VERSION, systemd_features());
		return 0;
	case OPTIONS_PROTOCOLS:
		options_list_protocols(stdout);
		return 0;
	case OPTIONS_ERROR:
		fprintf(stderr, "echoserver: %s\n", err);
		fprintf(stderr, "Try 'echoserver --help' for more "
		    "information.\n");
		return EX_USAGE;
	}
	log_set_level(opts.log_level);
	log_set_format(opts.log_format);
	log_capture_libevent();
	/* libevent writes with plain writev (docs/design.md, fact 10). */
	signal(SIGPIPE, SIG_IGN);

	rc = server_init(&server, &opts);
	if (rc == 0)
		rc = server_run(&server);
	server_release(&server);
	return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
