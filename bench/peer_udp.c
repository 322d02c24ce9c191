/*
 * Bench peer: the thinnest UDP echo, as the limit for echoserver -u.
 * Each thread owns one socket bound to the same port with SO_REUSEPORT
 * (as echoserver's workers do), blocks in recvmmsg for up to 64 datagrams
 * and sends them back with one sendmmsg.  No event loop, no guards, no
 * counters: every real server does at least this much.  A send the
 * kernel refuses is dropped, as UDP allows.
 *
 * Usage: peer_udp PORT [THREADS] (PORT 0 picks a free port; THREADS
 * defaults to the CPUs this process may run on); the bound port is
 * printed as "port N" on stdout, like the other peers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DATAGRAM 65536

static void *echo_thread(void *arg)
{
	int fd = (int)(long)arg;
	static __thread struct mmsghdr msgs[BATCH];
	static __thread struct iovec iov[BATCH];
	static __thread struct sockaddr_storage names[BATCH];
	char *bufs = malloc((size_t)BATCH * MAX_DATAGRAM);

	if (!bufs) {
		perror("peer_udp: malloc");
		exit(1);
	}
	for (;;) {
		int n, sent = 0;

		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs + (size_t)i * MAX_DATAGRAM;
			iov[i].iov_len = MAX_DATAGRAM;
			msgs[i].msg_hdr = (struct msghdr){
				.msg_name = &names[i],
				.msg_namelen = sizeof(names[i]),
				.msg_iov = &iov[i],
				.msg_iovlen = 1,
			};
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("peer_udp: recvmmsg");
			exit(1);
		}
		for (int i = 0; i < n; i++)
			iov[i].iov_len = msgs[i].msg_len;
		while (sent < n) {
			int r = sendmmsg(fd, msgs + sent, (unsigned)(n - sent),
			    0);

			if (r > 0)
				sent += r;
			else if (r < 0 && errno == EINTR)
				continue;
			else
				sent++;		/* drop the refused one */
		}
	}
	return NULL;
}

static int bind_one(struct sockaddr_in *sin)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) || bind(fd, (struct sockaddr *)sin, sizeof(*sin))) {
		perror("peer_udp: bind");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	cpu_set_t set;
	int threads = 1, fd;
	pthread_t t;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: peer_udp PORT [THREADS]\n");
		return 64;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		threads = CPU_COUNT(&set);
	if (argc == 3)
		threads = atoi(argv[2]);
	if (threads < 1)
		threads = 1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	fd = bind_one(&sin);
	if (getsockname(fd, (struct sockaddr *)&sin, &len)) {
		perror("peer_udp: getsockname");
		return 1;
	}
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, echo_thread,
		    (void *)(long)bind_one(&sin))) {
			fprintf(stderr, "peer_udp: cannot start a thread\n");
			return 1;
		}
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	echo_thread((void *)(long)fd);
	return 0;
}
