/*
 * The UDP flows of echobench --udp; see udpgen.h.  Each flow is a
 * connected, non-blocking UDP socket (connected, so the kernel drops
 * strangers' datagrams and reports an ICMP port-unreachable as an error),
 * filled up to its window with sendmmsg and drained with recvmmsg.
 */
#include "udpgen.h"

#include "loadgen.h"
#include "common/xalloc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Datagrams per sendmmsg and recvmmsg. */
#define UDPGEN_BATCH 64
/* How often in-flight datagrams are checked against the loss timeout. */
#define UDPGEN_SCAN_NS 5000000ull

struct udpgen_slot {
	uint32_t gen;		/* of the datagram in flight; 0: free */
	bool measured;		/* sent while measuring */
	uint64_t sent_ns;
};

struct udpgen_flow {
	int fd;
	struct udpgen_slot *slots;	/* window of them */
	uint32_t *free;		/* a stack of free slot numbers */
	unsigned n_free;
	bool ready;		/* had a first echo */
};

struct udpgen {
	const struct udpgen_config *cfg;	/* borrowed */
	struct udpgen_flow *flows;
	unsigned nflows;
	int epfd;
	uint32_t gen_next;
	uint64_t inflight;
	struct udpgen_counters local;	/* this thread's */
	struct udpgen_counters published;	/* atomic copies */
	struct histogram hist;
	char *tx, *rx;		/* UDPGEN_BATCH datagrams each */
	size_t rx_size;		/* per datagram: one more than expected,
				 * so that a longer echo shows */
	struct mmsghdr msgs[UDPGEN_BATCH];
	struct iovec iov[UDPGEN_BATCH];
};

static uint64_t udpgen_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int udpgen_phase(const struct udpgen *ug)
{
	return __atomic_load_n(ug->cfg->phase, __ATOMIC_ACQUIRE);
}

/* The byte at @i of a datagram of generation @gen, past the header. */
static inline uint8_t udpgen_byte(uint32_t gen, size_t i)
{
	return (uint8_t)((gen * 131u + (uint32_t)i * 7u) ^ (uint32_t)(i >> 8));
}

static void udpgen_fill(char *buf, size_t size, uint32_t slot, uint32_t gen)
{
	memcpy(buf, &slot, 4);
	memcpy(buf + 4, &gen, 4);
	for (size_t i = UDPGEN_MIN_SIZE; i < size; i++)
		buf[i] = (char)udpgen_byte(gen, i);
}

static bool udpgen_check(const char *buf, size_t size, uint32_t gen)
{
	for (size_t i = UDPGEN_MIN_SIZE; i < size; i++)
		if ((uint8_t)buf[i] != udpgen_byte(gen, i))
			return false;
	return true;
}

struct udpgen *udpgen_new(const struct udpgen_config *cfg, unsigned nflows)
{
	struct udpgen *ug = xcalloc(1, sizeof(*ug));

	ug->cfg = cfg;
	ug->nflows = nflows;
	ug->flows = xcalloc(nflows, sizeof(*ug->flows));
	ug->tx = xmalloc((size_t)UDPGEN_BATCH * cfg->size);
	ug->rx_size = (size_t)cfg->size + 1;
	ug->rx = xmalloc((size_t)UDPGEN_BATCH * ug->rx_size);
	histogram_init(&ug->hist);
	ug->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ug->epfd < 0) {
		perror("echobench: epoll_create1");
		exit(1);
	}
	for (unsigned i = 0; i < nflows; i++) {
		struct udpgen_flow *f = &ug->flows[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (f->fd < 0 || connect(f->fd,
		    (const struct sockaddr *)&cfg->target,
		    sizeof(cfg->target)) ||
		    epoll_ctl(ug->epfd, EPOLL_CTL_ADD, f->fd, &ev)) {
			perror("echobench: udp socket");
			exit(1);
		}
		f->slots = xcalloc(cfg->window, sizeof(*f->slots));
		f->free = xcalloc(cfg->window, sizeof(*f->free));
		for (unsigned s = 0; s < cfg->window; s++)
			f->free[f->n_free++] = cfg->window - 1 - s;
	}
	return ug;
}

void udpgen_free(struct udpgen *ug)
{
	if (!ug)
		return;
	for (unsigned i = 0; i < ug->nflows; i++) {
		close(ug->flows[i].fd);
		free(ug->flows[i].slots);
		free(ug->flows[i].free);
	}
	close(ug->epfd);
	free(ug->flows);
	free(ug->tx);
	free(ug->rx);
	free(ug);
}

static void udpgen_release(struct udpgen *ug, struct udpgen_flow *f,
    uint32_t slot)
{
	f->slots[slot].gen = 0;
	f->free[f->n_free++] = slot;
	ug->inflight--;
}

/* Tops @f up to its window (while opening: one datagram until the first
 * echo). */
static void udpgen_send(struct udpgen *ug, struct udpgen_flow *f, int phase,
    uint64_t now)
{
	unsigned want = f->n_free, m;
	uint32_t slots[UDPGEN_BATCH];
	int r;

	if (phase == LOADGEN_OPENING)
		want = f->ready || f->n_free < ug->cfg->window ? 0 : 1;
	m = want < UDPGEN_BATCH ? want : UDPGEN_BATCH;
	for (unsigned k = 0; k < m; k++) {
		uint32_t s = f->free[--f->n_free];
		char *buf = ug->tx + (size_t)k * ug->cfg->size;

		if (++ug->gen_next == 0)
			ug->gen_next = 1;	/* 0 marks a free slot */
		f->slots[s] = (struct udpgen_slot){
			.gen = ug->gen_next,
			.measured = phase == LOADGEN_MEASURE,
			.sent_ns = now,
		};
		ug->inflight++;
		slots[k] = s;
		udpgen_fill(buf, ug->cfg->size, s, ug->gen_next);
		ug->iov[k].iov_base = buf;
		ug->iov[k].iov_len = ug->cfg->size;
		ug->msgs[k].msg_hdr = (struct msghdr){
			.msg_iov = &ug->iov[k],
			.msg_iovlen = 1,
		};
	}
	if (!m)
		return;
	r = sendmmsg(f->fd, ug->msgs, m, 0);
	if (r < 0) {
		/* A full send buffer just waits; anything else is an
		 * error, such as the server's port being closed. */
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOBUFS)
			ug->local.errors++;
		r = 0;
	}
	ug->local.sent += (uint64_t)r;
	/* What was not sent goes back, last first, so the stack keeps its
	 * order. */
	for (unsigned k = m; k-- > (unsigned)r;)
		udpgen_release(ug, f, slots[k]);
}

static void udpgen_receive(struct udpgen *ug, struct udpgen_flow *f,
    int phase, uint64_t now)
{
	const unsigned size = ug->cfg->size;

	for (;;) {
		int n;

		for (int k = 0; k < UDPGEN_BATCH; k++) {
			ug->iov[k].iov_base = ug->rx + (size_t)k * ug->rx_size;
			ug->iov[k].iov_len = ug->rx_size;
			ug->msgs[k].msg_hdr = (struct msghdr){
				.msg_iov = &ug->iov[k],
				.msg_iovlen = 1,
			};
		}
		n = recvmmsg(f->fd, ug->msgs, UDPGEN_BATCH, MSG_DONTWAIT,
		    NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				ug->local.errors++;
			return;
		}
		for (int k = 0; k < n; k++) {
			const char *buf = ug->iov[k].iov_base;
			uint32_t slot, gen;

			if (ug->msgs[k].msg_len != size) {
				ug->local.errors++;
				continue;
			}
			memcpy(&slot, buf, 4);
			memcpy(&gen, buf + 4, 4);
			if (!udpgen_check(buf, size, gen)) {
				ug->local.errors++;
				continue;
			}
			if (slot >= ug->cfg->window || !gen ||
			    f->slots[slot].gen != gen) {
				ug->local.late++;
				continue;
			}
			if (f->slots[slot].measured &&
			    phase == LOADGEN_MEASURE)
				histogram_record(&ug->hist,
				    now - f->slots[slot].sent_ns);
			ug->local.echoed++;
			if (!f->ready) {
				f->ready = true;
				ug->local.ready++;
			}
			udpgen_release(ug, f, slot);
		}
		if (n < UDPGEN_BATCH)
			return;
	}
}

/* Counts datagrams in flight longer than the loss timeout as lost. */
static void udpgen_expire(struct udpgen *ug, uint64_t now)
{
	uint64_t limit = (uint64_t)(ug->cfg->loss_timeout * 1e9);

	for (unsigned i = 0; i < ug->nflows; i++) {
		struct udpgen_flow *f = &ug->flows[i];

		for (uint32_t s = 0; s < ug->cfg->window; s++)
			if (f->slots[s].gen &&
			    now - f->slots[s].sent_ns > limit) {
				ug->local.lost++;
				udpgen_release(ug, f, s);
			}
	}
}

static void udpgen_publish(struct udpgen *ug)
{
	const uint64_t *src = (const uint64_t *)&ug->local;
	uint64_t *dst = (uint64_t *)&ug->published;

	for (size_t i = 0; i < sizeof(ug->local) / sizeof(uint64_t); i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
}

void udpgen_counters(const struct udpgen *ug, struct udpgen_counters *out)
{
	const uint64_t *src = (const uint64_t *)&ug->published;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void *udpgen_run(void *arg)
{
	struct udpgen *ug = arg;
	struct epoll_event evs[64];
	uint64_t last_scan = udpgen_now(), drain_until = 0;

	for (;;) {
		int phase = udpgen_phase(ug), n;
		uint64_t now = udpgen_now();

		if (phase == LOADGEN_DRAIN) {
			if (!drain_until)
				drain_until = now + (uint64_t)
				    (ug->cfg->loss_timeout * 1e9);
			if (!ug->inflight || now >= drain_until)
				break;
		} else {
			for (unsigned i = 0; i < ug->nflows; i++)
				udpgen_send(ug, &ug->flows[i], phase, now);
		}
		n = epoll_wait(ug->epfd, evs, 64, 1);
		now = udpgen_now();
		for (int i = 0; i < n; i++)
			udpgen_receive(ug, &ug->flows[evs[i].data.u32], phase,
			    now);
		if (now - last_scan >= UDPGEN_SCAN_NS) {
			udpgen_expire(ug, now);
			last_scan = now;
		}
		udpgen_publish(ug);
	}
	/* What the drain did not see back is lost. */
	ug->local.lost += ug->inflight;
	udpgen_publish(ug);
	return NULL;
}

const struct histogram *udpgen_histogram(const struct udpgen *ug)
{
	return &ug->hist;
}
