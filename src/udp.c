/*
 * UDP echo on a worker's event loop: the group bind, the batched
 * recvmmsg/sendmmsg echo, the source guards and the per-source rate
 * limit.  See udp.h for the design.
 */
#include "udp.h"

#include "log.h"
#include "netaddr.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/*
 * Batches one read callback takes before it returns to the loop, so that
 * a flooded socket cannot starve the worker's TCP connections; the
 * level-triggered event calls back at once for the rest.
 */
#define UDP_ROUNDS 4

/* Ways per set of the rate table: a new source evicts the entry of its
 * set seen longest ago. */
#define UDP_RATE_WAYS 4

/* One source address's token buckets.  IPv4 sources are kept in their
 * IPv4-mapped form, so that a dual-stack socket and a v4 one agree. */
struct udp_rate {
	struct in6_addr addr;
	uint64_t seen_ns;	/* last refill; 0: the entry is free */
	double pkts;		/* tokens, at most cfg->rate_pkts */
	double bytes;		/* tokens, at most cfg->rate_bytes */
};

struct udp_socket {
	int fd;
	struct event *ev;
	struct udp_worker *uw;
	bool pktinfo;		/* wildcard-bound: reply from the address
				 * each datagram was sent to */
};

/* Room for one IP_PKTINFO or IPV6_PKTINFO control message. */
union udp_ctl {
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

struct udp_worker {
	struct event_base *base;		/* borrowed */
	const struct udp_config *cfg;		/* borrowed */
	struct worker_stats *stats;		/* borrowed */
	struct udp_socket **socks;	/* each its own allocation */
	int n_socks;
	char *bufs;		/* UDP_BATCH buffers of UDP_MAX_DATAGRAM */
	struct mmsghdr rx[UDP_BATCH], tx[UDP_BATCH];
	struct iovec rx_iov[UDP_BATCH], tx_iov[UDP_BATCH];
	struct sockaddr_storage names[UDP_BATCH];
	union udp_ctl rx_ctl[UDP_BATCH], tx_ctl[UDP_BATCH];
	struct udp_rate *rates;	/* n_sets * UDP_RATE_WAYS; NULL: no limit */
	unsigned n_sets;
	uint64_t seed[2];	/* keys the set hash, so that a sender
				 * cannot aim spoofed sources at one set */
};

void udp_config_init(struct udp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->min_src_port = UDP_DEFAULT_MIN_SRC_PORT;
	cfg->rate_pkts = UDP_DEFAULT_RATE_PKTS;
	cfg->rate_bytes = UDP_DEFAULT_RATE_BYTES;
	cfg->rate_table = UDP_DEFAULT_RATE_TABLE;
}

/* 0.0.0.0/8 ("this network"), multicast and 240/4, whose top is the
 * limited broadcast address; @a in host order. */
static bool udp_bad_ipv4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 28) == 0xe || (a >> 28) == 0xf;
}

enum udp_verdict udp_guard_source(const struct udp_config *cfg,
    const struct sockaddr *sa)
{
	uint16_t port = 0;
	bool bad = false;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		port = ntohs(sin->sin_port);
		bad = udp_bad_ipv4(ntohl(sin->sin_addr.s_addr));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		const struct in6_addr *a = &sin6->sin6_addr;

		port = ntohs(sin6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			uint32_t v4;

			memcpy(&v4, &a->s6_addr[12], sizeof(v4));
			bad = udp_bad_ipv4(ntohl(v4));
		} else {
			bad = IN6_IS_ADDR_MULTICAST(a) ||
			    IN6_IS_ADDR_UNSPECIFIED(a);
		}
	}
	if (port < cfg->min_src_port)
		return UDP_DROP_PORT;
	if (bad && !cfg->allow_broadcast)
		return UDP_DROP_ADDR;
	return UDP_PASS;
}

/* Sets an int socket option; 0 or -errno. */
static int udp_setopt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) ? -errno : 0;
}

/* A bound socket, or -errno; @reuseport: join the address's group. */
static int udp_bind_one(const struct sockaddr *sa, socklen_t len,
    int dual_stack, int reuseport)
{
	int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return -errno;
	rc = udp_setopt(fd, SOL_SOCKET, SO_REUSEPORT, reuseport);
	if (!rc && sa->sa_family == AF_INET6)
		rc = udp_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !dual_stack);
	if (!rc && bind(fd, sa, len))
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int udp_bind_group(const struct sockaddr *sa, socklen_t len, int dual_stack,
    int n, int *fds, struct sockaddr_storage *bound)
{
	struct sockaddr_storage addr;
	socklen_t alen = len;
	int i, rc = 0;

	memcpy(&addr, sa, len);
	if (netaddr_port(sa)) {
		/* A group of another process of the same user would take
		 * us in silently and split the traffic with us: first make
		 * sure the port is free, with a socket that joins no group.
		 * The group binds just after, so the window is small. */
		rc = udp_bind_one(sa, len, dual_stack, 0);
		if (rc < 0 && !(rc == -EAFNOSUPPORT && dual_stack))
			return rc;
		if (rc >= 0)
			close(rc);
	}
	for (i = 0; i < n; i++) {
		rc = udp_bind_one((struct sockaddr *)&addr, alen, dual_stack,
		    1);
		if (rc == -EAFNOSUPPORT && i == 0 && dual_stack) {
			/* No IPv6 in this kernel: all of IPv4 instead, as
			 * the TCP default listener does. */
			struct sockaddr_in *sin = (void *)&addr;
			uint16_t port = ((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_port;

			memset(&addr, 0, sizeof(addr));
			sin->sin_family = AF_INET;
			sin->sin_port = port;
			alen = sizeof(*sin);
			rc = udp_bind_one((struct sockaddr *)&addr, alen, 0,
			    1);
		}
		if (rc < 0)
			goto fail;
		fds[i] = rc;
		if (i == 0) {
			/* Port 0: the rest of the group joins the port the
			 * kernel picked for the first. */
			alen = sizeof(addr);
			if (getsockname(fds[0], (struct sockaddr *)&addr,
			    &alen)) {
				rc = -errno;
				i++;
				goto fail;
			}
			memcpy(bound, &addr, sizeof(addr));
		}
	}
	return 0;
fail:
	while (i-- > 0)
		close(fds[i]);
	return rc;
}

static uint64_t udp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The source address alone (no port: a sender may spread over ports),
 * IPv4 as IPv4-mapped. */
static void udp_source_key(const struct sockaddr *sa, struct in6_addr *key)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET6) {
		*key = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr;
	} else if (sa->sa_family == AF_INET) {
		key->s6_addr[10] = key->s6_addr[11] = 0xff;
		memcpy(&key->s6_addr[12], &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, 4);
	}
}

/* A keyed mix of the 128-bit address; not cryptographic, but the key is
 * random per worker, so a sender does not know which sources collide. */
static unsigned udp_rate_set(const struct udp_worker *uw,
    const struct in6_addr *key)
{
	uint64_t a, b, h;

	memcpy(&a, key->s6_addr, 8);
	memcpy(&b, key->s6_addr + 8, 8);
	h = (a ^ uw->seed[0]) * 0x9e3779b97f4a7c15ull;
	h ^= (b ^ uw->seed[1]) + (h >> 29);
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (unsigned)(h % uw->n_sets);
}

/* The entry for @key: found, or a free or the stalest way of its set,
 * reset to full buckets. */
static struct udp_rate *udp_rate_entry(struct udp_worker *uw,
    const struct in6_addr *key)
{
	struct udp_rate *set = &uw->rates[udp_rate_set(uw, key) *
	    UDP_RATE_WAYS];
	struct udp_rate *victim = set;

	for (int i = 0; i < UDP_RATE_WAYS; i++) {
		if (set[i].seen_ns && !memcmp(&set[i].addr, key,
		    sizeof(*key)))
			return &set[i];
		if (set[i].seen_ns < victim->seen_ns)
			victim = &set[i];
	}
	victim->addr = *key;
	victim->seen_ns = 0;
	victim->pkts = (double)uw->cfg->rate_pkts;
	victim->bytes = (double)uw->cfg->rate_bytes;
	return victim;
}

/*
 * Token buckets per source address: each holds at most one second's
 * worth, so a source may send a burst of rate_pkts packets or rate_bytes
 * bytes and then the rate.  True if the datagram of @len bytes may pass
 * (and takes its tokens); dropped datagrams take none.
 */
static bool udp_rate_allow(struct udp_worker *uw, const struct sockaddr *sa,
    size_t len, uint64_t now)
{
	const struct udp_config *cfg = uw->cfg;
	struct in6_addr key;
	struct udp_rate *r;

	if (!uw->rates)
		return true;
	udp_source_key(sa, &key);
	r = udp_rate_entry(uw, &key);
	if (r->seen_ns && now > r->seen_ns) {
		double dt = (double)(now - r->seen_ns) / 1e9;

		r->pkts += dt * (double)cfg->rate_pkts;
		if (r->pkts > (double)cfg->rate_pkts)
			r->pkts = (double)cfg->rate_pkts;
		r->bytes += dt * (double)cfg->rate_bytes;
		if (r->bytes > (double)cfg->rate_bytes)
			r->bytes = (double)cfg->rate_bytes;
	}
	r->seen_ns = now ? now : 1;
	if ((cfg->rate_pkts && r->pkts < 1) ||
	    (cfg->rate_bytes && r->bytes < (double)len))
		return false;
	if (cfg->rate_pkts)
		r->pkts -= 1;
	if (cfg->rate_bytes)
		r->bytes -= (double)len;
	return true;
}

/*
 * The control message that makes a reply leave from the local address
 * the datagram @rx was sent to, written to @ctl; returns its length, 0
 * for none.  Without it, a socket bound to a wildcard address replies
 * from whatever address routing picks, which on a host with several
 * addresses need not be the one the client sent to, and a connected
 * client drops the echo.  For IPv4 the kernel already computed a unicast
 * source fit for a reply (ipi_spec_dst); IPv6 gives the destination
 * itself (also for IPv4 on a dual-stack socket, as IPv4-mapped), which
 * is no source when it is multicast or broadcast: then routing picks.
 */
static size_t udp_reply_source(const struct msghdr *rx, union udp_ctl *ctl)
{
	struct msghdr tx = { .msg_control = ctl->buf,
		.msg_controllen = sizeof(ctl->buf) };
	struct cmsghdr *out = CMSG_FIRSTHDR(&tx);

	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)rx); c;
	    c = CMSG_NXTHDR((struct msghdr *)rx, c)) {
		if (c->cmsg_level == IPPROTO_IP &&
		    c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_ifindex = 0;	/* let routing pick */
			pi.ipi_addr.s_addr = 0;
			out->cmsg_level = IPPROTO_IP;
			out->cmsg_type = IP_PKTINFO;
			out->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(out), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			uint32_t v4;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			memcpy(&v4, &pi.ipi6_addr.s6_addr[12], sizeof(v4));
			if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr) &&
			    udp_bad_ipv4(ntohl(v4))))
				return 0;
			/* The interface matters only for a link-local
			 * address, whose scope it is. */
			if (!IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
				pi.ipi6_ifindex = 0;
			out->cmsg_level = IPPROTO_IPV6;
			out->cmsg_type = IPV6_PKTINFO;
			out->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(out), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
	}
	return 0;
}

/*
 * Sends the @n datagrams gathered in uw->tx.  A datagram the kernel
 * refuses (sendmmsg reports it on the next call) is skipped and counted
 * as an error; a full send buffer (EAGAIN) drops the rest of the batch,
 * counted: UDP has no backpressure, and the loop must not block.
 */
static void udp_send(struct udp_worker *uw, int fd, int n)
{
	uint64_t out = 0, bytes = 0;
	int sent = 0;

	while (sent < n) {
		int r = sendmmsg(fd, uw->tx + sent, (unsigned)(n - sent),
		    MSG_DONTWAIT);

		if (r > 0) {
			for (int i = sent; i < sent + r; i++)
				bytes += uw->tx[i].msg_len;
			sent += r;
			out += (uint64_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else if (r < 0 && (errno == EAGAIN ||
		    errno == EWOULDBLOCK || errno == ENOBUFS)) {
			stat_add(&uw->stats->udp_send_drops,
			    (uint64_t)(n - sent));
			break;
		} else {
			log_debug("udp: sendmmsg: %s", strerror(errno));
			stat_add(&uw->stats->errors, 1);
			sent++;
		}
	}
	stat_add(&uw->stats->udp_out, out);
	stat_add(&uw->stats->bytes_out, bytes);
}

/* Reads up to UDP_BATCH datagrams and echoes those that pass.  Returns
 * the number read, 0 when there was none, -1 on a read error. */
static int udp_echo_batch(struct udp_worker *uw, const struct udp_socket *us)
{
	uint64_t drop_port = 0, drop_addr = 0, limited = 0, trunc = 0;
	uint64_t bytes = 0, now;
	int n, m = 0, fd = us->fd;

	for (int i = 0; i < UDP_BATCH; i++) {
		uw->rx[i].msg_hdr.msg_namelen = sizeof(uw->names[i]);
		uw->rx[i].msg_hdr.msg_flags = 0;
		uw->rx[i].msg_hdr.msg_control = us->pktinfo ?
		    uw->rx_ctl[i].buf : NULL;
		uw->rx[i].msg_hdr.msg_controllen = us->pktinfo ?
		    sizeof(uw->rx_ctl[i].buf) : 0;
	}
	do
		n = recvmmsg(fd, uw->rx, UDP_BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		log_debug("udp: recvmmsg: %s", strerror(errno));
		stat_add(&uw->stats->errors, 1);
		return -1;
	}
	now = udp_now_ns();
	for (int i = 0; i < n; i++) {
		const struct sockaddr *src = (const void *)&uw->names[i];
		unsigned len = uw->rx[i].msg_len;

		bytes += len;
		if (uw->rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
			/* Not the datagram that was sent: never echo it. */
			trunc++;
			continue;
		}
		switch (udp_guard_source(uw->cfg, src)) {
		case UDP_DROP_PORT:
			drop_port++;
			continue;
		case UDP_DROP_ADDR:
			drop_addr++;
			continue;
		case UDP_PASS:
			break;
		}
		if (!udp_rate_allow(uw, src, len, now)) {
			limited++;
			continue;
		}
		uw->tx[m].msg_hdr = (struct msghdr){
			.msg_name = &uw->names[i],
			.msg_namelen = uw->rx[i].msg_hdr.msg_namelen,
			.msg_iov = &uw->tx_iov[m],
			.msg_iovlen = 1,
		};
		uw->tx_iov[m].iov_base = uw->rx_iov[i].iov_base;
		uw->tx_iov[m].iov_len = len;
		if (us->pktinfo) {
			size_t cl = udp_reply_source(&uw->rx[i].msg_hdr,
			    &uw->tx_ctl[m]);

			uw->tx[m].msg_hdr.msg_control = cl ?
			    uw->tx_ctl[m].buf : NULL;
			uw->tx[m].msg_hdr.msg_controllen = cl;
		}
		m++;
	}
	if (m)
		udp_send(uw, fd, m);
	/* Counted after the echoes are sent, so that a reader who sees
	 * the datagrams counted can expect their echoes queued. */
	stat_add(&uw->stats->bytes_in, bytes);
	stat_add(&uw->stats->udp_guard_port, drop_port);
	stat_add(&uw->stats->udp_guard_addr, drop_addr);
	stat_add(&uw->stats->udp_rate_limited, limited);
	stat_add(&uw->stats->udp_truncated, trunc);
	stat_add(&uw->stats->udp_in, (uint64_t)n);
	return n;
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct udp_socket *us = arg;

	for (int round = 0; round < UDP_ROUNDS; round++)
		if (udp_echo_batch(us->uw, us) < UDP_BATCH)
			break;
}

struct udp_worker *udp_worker_new(struct event_base *base,
    const struct udp_config *cfg, struct worker_stats *stats)
{
	struct udp_worker *uw = calloc(1, sizeof(*uw));

	if (!uw)
		return NULL;
	uw->base = base;
	uw->cfg = cfg;
	uw->stats = stats;
	uw->bufs = malloc((size_t)UDP_BATCH * UDP_MAX_DATAGRAM);
	if (!uw->bufs)
		goto fail;
	for (int i = 0; i < UDP_BATCH; i++) {
		uw->rx_iov[i].iov_base = uw->bufs + (size_t)i *
		    UDP_MAX_DATAGRAM;
		uw->rx_iov[i].iov_len = UDP_MAX_DATAGRAM;
		uw->rx[i].msg_hdr.msg_name = &uw->names[i];
		uw->rx[i].msg_hdr.msg_iov = &uw->rx_iov[i];
		uw->rx[i].msg_hdr.msg_iovlen = 1;
	}
	if (cfg->rate_pkts || cfg->rate_bytes) {
		uw->n_sets = cfg->rate_table / UDP_RATE_WAYS;
		if (uw->n_sets == 0)
			uw->n_sets = 1;
		uw->rates = calloc((size_t)uw->n_sets * UDP_RATE_WAYS,
		    sizeof(*uw->rates));
		if (!uw->rates)
			goto fail;
		if (getrandom(uw->seed, sizeof(uw->seed), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(uw->seed)) {
			uw->seed[0] = udp_now_ns();
			uw->seed[1] = (uint64_t)(uintptr_t)uw;
		}
	}
	return uw;
fail:
	udp_worker_free(uw);
	return NULL;
}

/*
 * On a socket bound to a wildcard address, asks for the destination of
 * each datagram (udp_reply_source()).  True if that is on; best effort,
 * since without it replies still go out, from the routing's choice.
 */
static bool udp_wildcard_pktinfo(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return false;
	if (ss.ss_family == AF_INET)
		return ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY) && !udp_setopt(fd, IPPROTO_IP,
		    IP_PKTINFO, 1);
	if (ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->
		    sin6_addr) && !udp_setopt(fd, IPPROTO_IPV6,
		    IPV6_RECVPKTINFO, 1);
	return false;
}

int udp_worker_add(struct udp_worker *uw, int fd)
{
	struct udp_socket **socks, *us = calloc(1, sizeof(*us));

	/* Each socket is allocated alone: its event points at it, so it
	 * must not move when the array grows. */
	socks = us ? realloc(uw->socks, (size_t)(uw->n_socks + 1) *
	    sizeof(*socks)) : NULL;
	if (!socks)
		goto fail;
	uw->socks = socks;
	us->fd = fd;
	us->uw = uw;
	us->pktinfo = udp_wildcard_pktinfo(fd);
	us->ev = event_new(uw->base, fd, EV_READ | EV_PERSIST, udp_read_cb,
	    us);
	if (!us->ev || event_add(us->ev, NULL))
		goto fail;
	uw->socks[uw->n_socks++] = us;
	return 0;
fail:
	if (us && us->ev)
		event_free(us->ev);
	free(us);
	close(fd);
	return -ENOMEM;
}

void udp_worker_close(struct udp_worker *uw)
{
	if (!uw)
		return;
	for (int i = 0; i < uw->n_socks; i++) {
		struct udp_socket *us = uw->socks[i];

		if (us->ev)
			event_free(us->ev);
		us->ev = NULL;
		if (us->fd >= 0)
			close(us->fd);
		us->fd = -1;
	}
}

void udp_worker_free(struct udp_worker *uw)
{
	if (!uw)
		return;
	udp_worker_close(uw);
	for (int i = 0; i < uw->n_socks; i++)
		free(uw->socks[i]);
	free(uw->socks);
	free(uw->rates);
	free(uw->bufs);
	free(uw);
}
