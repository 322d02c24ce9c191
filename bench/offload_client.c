/*
 * The load and the probe of bench/offload.py: connections that keep
 * 1 KiB lines in flight on a sha256 listener, and, meanwhile, one more
 * connection that sends a cheap request (resp's PING, on a resp listener
 * of the same server) every millisecond and times each round trip.  It
 * prints one JSON line: the sha256 replies per second, checked against
 * libcrypto's digest of the line, and the probe's percentiles.
 *
 * Usage: offload_client SHA_PORT PING_PORT CONNS DEPTH LINE_BYTES
 *        WARMUP_S DURATION_S
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLY 65		/* 64 hex digits and LF */
#define MAX_PINGS 200000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("offload_client: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("offload_client: write");
			exit(1);
		}
		p += w;
		len -= (size_t)w;
	}
}

static atomic_int phase;	/* 0 warm-up, 1 measuring, 2 done */
static uint64_t pings[MAX_PINGS];
static size_t npings;
static int ping_port;

/* The probe: PING, wait for +PONG, 1 ms pause; timed while measuring. */
static void *probe(void *arg)
{
	int fd = dial(ping_port);
	char buf[64];

	while (atomic_load(&phase) < 2) {
		uint64_t t0 = now_ns();
		size_t got = 0;
		struct timespec pause = { 0, 1000000 };

		write_all(fd, "PING\r\n", 6);
		while (got < 7) {
			ssize_t r = read(fd, buf + got, sizeof(buf) - got);

			if (r <= 0) {
				fprintf(stderr, "offload_client: probe: %s\n",
				    r ? strerror(errno) : "eof");
				exit(1);
			}
			got += (size_t)r;
		}
		if (got != 7 || memcmp(buf, "+PONG\r\n", 7)) {
			fprintf(stderr, "offload_client: bad PONG\n");
			exit(1);
		}
		if (atomic_load(&phase) == 1 && npings < MAX_PINGS)
			pings[npings++] = now_ns() - t0;
		nanosleep(&pause, NULL);
	}
	close(fd);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct lconn {
	int fd;
	size_t reply_off;	/* bytes of the current reply read */
};

int main(int argc, char **argv)
{
	int sha_port, conns, depth, ep;
	size_t line_len;
	double warmup, duration;
	char *line, want[REPLY];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	struct lconn *lc;
	pthread_t th;
	uint64_t t_start, t_measure = 0, t_end, replies = 0, errors = 0;
	char rbuf[65536];

	if (argc != 8) {
		fprintf(stderr, "usage: offload_client SHA_PORT PING_PORT "
		    "CONNS DEPTH LINE_BYTES WARMUP_S DURATION_S\n");
		return 64;
	}
	sha_port = atoi(argv[1]);
	ping_port = atoi(argv[2]);
	conns = atoi(argv[3]);
	depth = atoi(argv[4]);
	line_len = (size_t)atol(argv[5]);
	warmup = atof(argv[6]);
	duration = atof(argv[7]);
	line = malloc((line_len + 1) * (size_t)(depth > 0 ? depth : 1));
	lc = calloc((size_t)conns, sizeof(*lc));
	if (!line || !lc || conns < 1 || depth < 1)
		return 64;
	for (size_t i = 0; i < line_len; i++)
		line[i] = (char)('a' + i % 26);
	line[line_len] = '\n';
	/* @depth copies, so that the lines owed after a read go out in one
	 * write, as a pipelining client sends them. */
	for (int d = 1; d < depth; d++)
		memcpy(line + (size_t)d * (line_len + 1), line, line_len + 1);
	if (!EVP_Digest(line, line_len, md, &mdlen, EVP_sha256(), NULL))
		return 1;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	want[64] = '\n';

	ep = epoll_create1(0);
	for (int i = 0; i < conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
		    .data.u32 = (uint32_t)i };

		lc[i].fd = dial(sha_port);
		epoll_ctl(ep, EPOLL_CTL_ADD, lc[i].fd, &ev);
		write_all(lc[i].fd, line, (line_len + 1) * (size_t)depth);
	}
	pthread_create(&th, NULL, probe, NULL);
	t_start = now_ns();
	t_end = t_start + (uint64_t)((warmup + duration) * 1e9);
	for (;;) {
		struct epoll_event evs[64];
		uint64_t now = now_ns();
		int n;

		if (!t_measure && now >= t_start + (uint64_t)(warmup * 1e9)) {
			t_measure = now;
			replies = 0;
			atomic_store(&phase, 1);
		}
		if (now >= t_end)
			break;
		n = epoll_wait(ep, evs, 64, 100);
		for (int k = 0; k < n; k++) {
			struct lconn *c = &lc[evs[k].data.u32];
			ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
			size_t done = 0;

			if (r <= 0) {
				fprintf(stderr, "offload_client: read: %s\n",
				    r ? strerror(errno) : "eof");
				return 1;
			}
			for (ssize_t p = 0; p < r; p++) {
				if (rbuf[p] != want[c->reply_off])
					errors++;
				if (++c->reply_off == REPLY) {
					c->reply_off = 0;
					done++;
				}
			}
			replies += done;
			/* Keep @depth lines in flight: one more per reply,
			 * all in one write. */
			if (done)
				write_all(c->fd, line, (line_len + 1) * done);
		}
	}
	atomic_store(&phase, 2);
	pthread_join(th, NULL);
	qsort(pings, npings, sizeof(pings[0]), cmp_u64);
	printf("{\"rps\": %.1f, \"replies\": %llu, \"errors\": %llu, "
	    "\"pings\": %zu, \"ping_p50_us\": %.1f, \"ping_p99_us\": %.1f, "
	    "\"ping_max_us\": %.1f}\n",
	    (double)replies / ((double)(t_end - t_measure) / 1e9),
	    (unsigned long long)replies, (unsigned long long)errors, npings,
	    npings ? pings[npings / 2] / 1e3 : 0.0,
	    npings ? pings[npings * 99 / 100] / 1e3 : 0.0,
	    npings ? pings[npings - 1] / 1e3 : 0.0);
	return errors ? 1 : 0;
}
