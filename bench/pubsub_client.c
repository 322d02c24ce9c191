/*
 * The pub/sub benchmark's client (bench/pubsub.py drives it): one
 * publisher and N subscribers on one channel of a RESP server, echoserver
 * or redis-server alike, in one epoll thread.  It measures messages
 * delivered per second (counted at the subscribers) and, with --pid, the
 * server's CPU seconds per delivered message, and prints one JSON line.
 *
 * Pacing.  A server may answer PUBLISH before it has delivered (echoserver
 * does, redis-server does not), so the publisher is paced by deliveries,
 * not by replies: it stays at most --window messages ahead of the
 * average subscriber, and sends --burst PUBLISHes per write.  Both
 * servers thus see the same traffic shape, and no subscriber's output
 * grows toward a server's pubsub limit.
 *
 * Counting.  Every push is the same size (one channel, one payload
 * size), so a subscriber's message count is its bytes after the
 * SUBSCRIBE reply divided by that size: no parsing on the hot path.
 */
#include "common/fdlimit.h"
#include "common/procstat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL "bench"

struct sub {
	int fd;
	size_t skip;		/* bytes of the SUBSCRIBE reply still due */
	size_t rem;		/* bytes of a partial push */
	unsigned long long msgs;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "pubsub_client: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A blocking connection from 127.0.0.@src, made non-blocking later. */
static int dial(int port, int src)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	sa.sin_addr.s_addr = htonl(0x7f000000 | (unsigned)src);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("bind");
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EAGAIN) {
			/* The publisher's socket is full: the server is behind,
			 * and the window will hold us back soon. */
			struct timespec ts = { 0, 100000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (w <= 0)
			die("write");
		p += w;
		len -= (size_t)w;
	}
}

static double cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	int port = 0, nsubs = 1000, size = 64, burst = 16, window = 256;
	double seconds = 3, warmup = 1;
	pid_t pid = 0;
	char payload[65536], *out;
	size_t push, req_len, sub_reply;
	struct sub *subs;
	int ep, pub;
	struct epoll_event ev, evs[256];
	unsigned long long published = 0, delivered = 0, replies = 0;
	unsigned long long d0 = 0, p0 = 0;
	double t0 = 0, c0 = 0, cc0 = 0, start, end;
	char rbuf[1 << 16];
	int phase = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--port"))
			port = atoi(v);
		else if (!strcmp(o, "--subs"))
			nsubs = atoi(v);
		else if (!strcmp(o, "--size"))
			size = atoi(v);
		else if (!strcmp(o, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(o, "--warmup"))
			warmup = atof(v);
		else if (!strcmp(o, "--burst"))
			burst = atoi(v);
		else if (!strcmp(o, "--window"))
			window = atoi(v);
		else if (!strcmp(o, "--pid"))
			pid = (pid_t)atoi(v);
		else {
			fprintf(stderr, "pubsub_client: unknown option '%s'\n",
			    o);
			return 64;
		}
	}
	if (!port || nsubs < 1 || size < 1 || size > (int)sizeof(payload) ||
	    burst < 1 || window < burst) {
		fprintf(stderr, "usage: pubsub_client --port N [--subs N] "
		    "[--size B] [--seconds S] [--warmup S] [--burst N] "
		    "[--window N] [--pid PID]\n");
		return 64;
	}
	fdlimit_raise();
	memset(payload, 'm', (size_t)size);
	/* "*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$64\r\n<64>\r\n" */
	push = (size_t)snprintf(NULL, 0, "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s"
	    "\r\n$%d\r\n", strlen(CHANNEL), CHANNEL, size) + (size_t)size + 2;
	sub_reply = (size_t)snprintf(NULL, 0, "*3\r\n$9\r\nsubscribe\r\n"
	    "$%zu\r\n%s\r\n:1\r\n", strlen(CHANNEL), CHANNEL);
	{
		char head[64];
		int n = snprintf(head, sizeof(head), "*3\r\n$7\r\nPUBLISH\r\n"
		    "$%zu\r\n%s\r\n$%d\r\n", strlen(CHANNEL), CHANNEL, size);

		req_len = (size_t)n + (size_t)size + 2;
		out = malloc(req_len * (size_t)burst);
		for (int i = 0; i < burst; i++) {
			char *p = out + req_len * (size_t)i;

			memcpy(p, head, (size_t)n);
			memcpy(p + n, payload, (size_t)size);
			memcpy(p + n + size, "\r\n", 2);
		}
	}

	ep = epoll_create1(0);
	subs = calloc((size_t)nsubs, sizeof(*subs));
	if (ep < 0 || !subs || !out)
		die("setup");
	for (int i = 0; i < nsubs; i++) {
		static const char req[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\n"
		    CHANNEL "\r\n";

		subs[i].fd = dial(port, 1 + i / 20000);
		subs[i].skip = sub_reply;
		write_all(subs[i].fd, req, sizeof(req) - 1);
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev))
			die("epoll_ctl");
	}
	/* Every subscription confirmed before the first publish. */
	for (int done = 0; done < nsubs;) {
		int n = epoll_wait(ep, evs, 256, 20000);

		if (n <= 0)
			die("waiting for SUBSCRIBE replies");
		for (int k = 0; k < n; k++) {
			struct sub *s = &subs[evs[k].data.u32];
			ssize_t r = read(s->fd, rbuf, s->skip);

			if (r <= 0)
				die("read");
			s->skip -= (size_t)r;
			if (s->skip == 0) {
				done++;
				ev.events = EPOLLIN;
				ev.data.u32 = evs[k].data.u32;
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			}
		}
	}
	for (int i = 0; i < nsubs; i++) {
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
	}
	pub = dial(port, 1);
	ev.events = EPOLLIN;
	ev.data.u32 = (uint32_t)nsubs;
	epoll_ctl(ep, EPOLL_CTL_ADD, pub, &ev);

	start = now_s();
	end = start + warmup + seconds;
	for (;;) {
		double now = now_s();
		int n;

		if (phase == 0 && now >= start + warmup) {
			phase = 1;
			t0 = now;
			d0 = delivered;
			p0 = published;
			c0 = pid ? procstat_cpu_seconds(pid) : 0;
			cc0 = cpu_self();
		}
		if (now >= end)
			break;
		/* Publish while the average subscriber is within the window
		 * and the replies keep up. */
		while (published * (unsigned long long)nsubs <
		    delivered + (unsigned long long)window * (unsigned)nsubs &&
		    published - replies < (unsigned long long)window) {
			write_all(pub, out, req_len * (size_t)burst);
			published += (unsigned long long)burst;
		}
		n = epoll_wait(ep, evs, 256, 100);
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			ssize_t r;

			if (i == (uint32_t)nsubs) {
				r = read(pub, rbuf, sizeof(rbuf));
				if (r <= 0)
					die("read from the publisher");
				for (ssize_t j = 0; j < r; j++)
					replies += rbuf[j] == '\n';
				continue;
			}
			r = read(subs[i].fd, rbuf, sizeof(rbuf));
			if (r <= 0) {
				fprintf(stderr, "pubsub_client: subscriber %u "
				    "closed\n", i);
				return 1;
			}
			subs[i].rem += (size_t)r;
			subs[i].msgs += subs[i].rem / push;
			delivered += subs[i].rem / push;
			subs[i].rem %= push;
		}
	}
	{
		double t = now_s() - t0;
		double cpu = pid ? procstat_cpu_seconds(pid) - c0 : -1;
		unsigned long long d = delivered - d0, lo = ~0ULL, hi = 0;

		for (int i = 0; i < nsubs; i++) {
			lo = subs[i].msgs < lo ? subs[i].msgs : lo;
			hi = subs[i].msgs > hi ? subs[i].msgs : hi;
		}
		printf("{\"delivered_per_s\": %.1f, \"published_per_s\": %.1f, "
		    "\"seconds\": %.3f, \"delivered\": %llu, "
		    "\"server_cpu_s\": %.4f, \"server_cpu_ns_per_msg\": %.2f, "
		    "\"client_cpu_share\": %.3f, \"subs\": %d, "
		    "\"min_sub_msgs\": %llu, \"max_sub_msgs\": %llu}\n",
		    (double)d / t, (double)(published - p0) / t, t, d, cpu,
		    cpu >= 0 && d ? cpu * 1e9 / (double)d : -1,
		    (cpu_self() - cc0) / t, nsubs, lo, hi);
	}
	return 0;
}
