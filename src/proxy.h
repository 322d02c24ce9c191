/*
 * The PROXY protocol header (haproxy's doc/proxy-protocol.txt, versions 1
 * and 2): what a load balancer such as HAProxy sends first on each
 * connection to name the client it relays.  A pure parser: bytes in, a
 * verdict and the addresses out, no I/O, no allocation, no libevent, so
 * that it can be unit-tested and fuzzed alone.  conn.c feeds it what a
 * proxy+ listener's connection has received so far (docs/design.md,
 * "PROXY protocol").
 *
 * What it accepts, strictly, since a header is only ever sent by a
 * trusted proxy and anything odd is a misconfiguration or an attack:
 * - v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (or TCP6), canonical
 *   addresses and ports without leading zeros, single spaces, CRLF within
 *   the first 107 bytes; "PROXY UNKNOWN" followed by anything up to the
 *   CRLF.
 * - v2: the 12-byte signature (it holds a NUL byte: never a C string),
 *   version 2, command LOCAL or PROXY, a valid family and transport, and
 *   a length that covers the addresses; TLVs after the addresses are
 *   checked for shape and skipped (CRC32C is not verified).
 * LOCAL, v1 UNKNOWN, and families without an IP address (AF_UNSPEC,
 * AF_UNIX) leave has_addr false: the connection keeps the socket's own
 * addresses, as the spec asks.
 */
#ifndef PROXY_H
#define PROXY_H

#include "netaddr.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The longest v1 line, CRLF included. */
#define PROXY_V1_MAX 107
/* The longest v2 header: 16 fixed bytes and a 16-bit length. */
#define PROXY_V2_MAX (16 + 65535)
/* Nothing longer is ever a header. */
#define PROXY_HEADER_MAX PROXY_V2_MAX

struct proxy_header {
	int version;		/* 1 or 2 */
	bool local;		/* v2 LOCAL: the proxy's own connection
				 * (a health check) */
	bool has_addr;		/* src and dst name the relayed client
				 * and the address it reached */
	union netaddr_ip src, dst;	/* valid when has_addr */
};

/*
 * Parses the header at the front of @buf (@len bytes, borrowed).
 * Returns its length (> 0) when a complete, valid header is there,
 * filling @h; the bytes after it are the connection's own.  Returns 0
 * when @buf is a valid start of a header and more bytes are needed.
 * Returns -1 when it cannot become a valid header, with *@why (if not
 * NULL) set to a static lowercase reason.
 */
ssize_t proxy_parse(const void *buf, size_t len, struct proxy_header *h,
    const char **why);

#endif
