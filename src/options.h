/*
 * Command-line options of echoserver: their defaults, getopt_long parsing
 * and validation.  Parsing never prints and never exits, so that it can be
 * unit-tested; main() turns the result into output and an exit status.
 */
#ifndef OPTIONS_H
#define OPTIONS_H

#include "udp.h"

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#define OPTIONS_MAX_LISTEN 16

struct proto_ops;

/* One --listen [proxy+][tls+][PROTO@]ADDR[:PORT], resolved once every option
 * is known. */
struct options_listen {
	const char *text;	/* as given; borrowed from argv */
	const struct proto_ops *proto;	/* its handler */
	unsigned flags;		/* its prefixes: enum conn_listen_flags */
	struct sockaddr_storage addr;	/* with its port, or --port's */
	socklen_t addrlen;
};

/* One -u, --udp [ADDR:]PORT. */
struct options_udp {
	const char *text;	/* as given; borrowed from argv */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int dual_stack;		/* a bare PORT: all interfaces, v4 and v6 */
};

struct options {
	int port;		/* for listeners that name none */
	struct options_listen listen[OPTIONS_MAX_LISTEN];
	int n_listen;		/* 0: all interfaces, on --port */
	const struct proto_ops *protocol;	/* for listeners that name
						 * none; static */
	const char *banner;	/* borrowed; NULL: none */
	size_t max_line;	/* the line handlers' limit */
	size_t max_bulk;	/* resp's bulk-string limit */
	size_t max_memory;	/* the store's limit; 0: none */
	size_t pubsub_hard;	/* --pubsub-limit: a subscriber's output */
	size_t pubsub_soft;	/* caps; 0: none */
	double pubsub_seconds;
	int threads;		/* workers */
	int offload;		/* --offload: slow requests go to a pool */
	int offload_threads;	/* its threads; 0: the usable CPUs */
	int offload_queue;	/* jobs queued before submits wait */
	int backlog;
	long max_conns;		/* 0: derived from the fd limit */
	double idle_timeout;	/* seconds; 0 is off */
	double write_timeout;	/* write-stall timeout, seconds; 0 is off */
	double grace;		/* shutdown flush period, seconds */
	size_t high_water;	/* stop reading past this much output */
	size_t low_water;	/* resume reading at or below this */
	const char *port_file;	/* borrowed; NULL: none */
	const char *tls_cert;	/* PEM chain for tls+ listeners; borrowed */
	const char *tls_key;	/* PEM key; borrowed */
	double tls_handshake_timeout;	/* seconds from accept, > 0 */
	const char *reject_message;	/* borrowed; "" sends nothing */
	double proxy_timeout;	/* seconds for a whole PROXY header, > 0 */
	int reuseport;		/* SO_REUSEPORT on every listener */
	const char *metrics;	/* --metrics as given, borrowed; NULL: off */
	struct sockaddr_storage metrics_addr;	/* with its port */
	socklen_t metrics_addrlen;
	int metrics_any;	/* no ADDR given: all interfaces, dual-stack;
				 * metrics_addr is then "[::]:PORT" */
	int log_level;		/* enum log_level */
	struct options_udp udp[OPTIONS_MAX_LISTEN];	/* UDP echo */
	int n_udp;
	struct udp_config udp_cfg;	/* its guards */
	int log_format;		/* enum log_format */
};

enum options_result {
	OPTIONS_OK,
	OPTIONS_HELP,		/* --help: print usage, exit 0 */
	OPTIONS_VERSION,	/* --version: print version, exit 0 */
	OPTIONS_PROTOCOLS,	/* --protocols: list the handlers, exit 0 */
	OPTIONS_ERROR,		/* @err says what; exit 64 */
};

/* Fills @o with the defaults. */
void options_init(struct options *o);

/*
 * Parses @argv into @o (which keeps pointers into @argv, so @argv must
 * outlive it).  On OPTIONS_ERROR, @err holds one lowercase line naming the
 * option and the value, without a trailing newline.
 */
enum options_result options_parse(struct options *o, int argc, char **argv,
    char *err, size_t errlen);

/* Writes the usage text to @out. */
void options_usage(FILE *out);

/* Writes the handlers, one line each, to @out. */
void options_list_protocols(FILE *out);

/* Writes the -l prefixes that @flags (enum conn_listen_flags) stand for,
 * as "proxy+", into @buf; "" for none.  Returns @buf. */
char *options_listen_prefixes(unsigned flags, char *buf, size_t size);

#endif
