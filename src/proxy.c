/*
 * The PROXY protocol parser; see proxy.h for what it accepts.  Written
 * from haproxy's doc/proxy-protocol.txt (docs/design.md, facts P1-P3); every rejection names its reason
 * so that an operator reading the log can tell a misconfigured balancer
 * (wrong version, a plain client on a proxy+ port) from a truncated one.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static const char v1_sig[] = "PROXY ";

static ssize_t bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

/* True if the @len bytes at @p are the start of @sig (@siglen bytes). */
static bool is_prefix(const unsigned char *p, size_t len, const void *sig,
    size_t siglen)
{
	return memcmp(p, sig, len < siglen ? len : siglen) == 0;
}

/* A decimal port of 1 to 5 digits, no leading zero, at most 65535. */
static int parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * An address of @family from the @n bytes at @s.  inet_pton() insists on
 * four dotted decimals for IPv4 and refuses leading zeros there (glibc's
 * inet_pton4), which is what the spec asks.
 */
static int parse_addr(int family, const char *s, size_t n,
    union netaddr_ip *a)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text) || memchr(s, '\0', n))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		a->in.sin_family = AF_INET;
		return inet_pton(AF_INET, text, &a->in.sin_addr) == 1 ? 0 : -1;
	}
	a->in6.sin6_family = AF_INET6;
	return inet_pton(AF_INET6, text, &a->in6.sin6_addr) == 1 ? 0 : -1;
}

static void set_port(union netaddr_ip *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET)
		a->in.sin_port = htons(port);
	else
		a->in6.sin6_port = htons(port);
}

/*
 * The next space-separated field of the line [*@p, @end): its start and
 * length; *@p moves past it and one following space, which must be there
 * unless @last.  Returns -1 on an empty field or a missing space.
 */
static int next_field(const char **p, const char *end, bool last,
    const char **field, size_t *n)
{
	const char *s = *p, *sp = memchr(s, ' ', (size_t)(end - s));

	if (last) {
		if (sp)
			return -1;
		sp = end;
	} else if (!sp) {
		return -1;
	}
	if (sp == s)
		return -1;
	*field = s;
	*n = (size_t)(sp - s);
	*p = last ? end : sp + 1;
	return 0;
}

/* Version 1: one text line.  @len >= 1 and @p starts like "PROXY ". */
static ssize_t parse_v1(const unsigned char *p, size_t len,
    struct proxy_header *h, const char **why)
{
	size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	const unsigned char *lf = memchr(p, '\n', scan);
	const char *line = (const char *)p, *cur, *end, *f;
	uint16_t sport, dport;
	size_t n, total;
	int family;

	if (len < sizeof(v1_sig) - 1)
		return 0;
	if (!lf) {
		if (len >= PROXY_V1_MAX)
			return bad(why, "v1 line without CRLF in 107 bytes");
		return 0;
	}
	if (lf == p || lf[-1] != '\r')
		return bad(why, "v1 line ends in a bare LF");
	total = (size_t)(lf - p) + 1;
	end = line + total - 2;		/* the CR */
	if (memchr(line, '\r', (size_t)(end - line)))
		return bad(why, "v1 line holds a bare CR");
	cur = line + sizeof(v1_sig) - 1;
	memset(h, 0, sizeof(*h));
	h->version = 1;
	if ((size_t)(end - cur) >= 7 && memcmp(cur, "UNKNOWN", 7) == 0 &&
	    (end - cur == 7 || cur[7] == ' '))
		return (ssize_t)total;	/* the rest is to be ignored */
	if (next_field(&cur, end, false, &f, &n))
		return bad(why, "v1 line is missing fields");
	if (n == 4 && memcmp(f, "TCP4", 4) == 0)
		family = AF_INET;
	else if (n == 4 && memcmp(f, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return bad(why, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
	if (next_field(&cur, end, false, &f, &n) ||
	    parse_addr(family, f, n, &h->src))
		return bad(why, "v1 source address is invalid");
	if (next_field(&cur, end, false, &f, &n) ||
	    parse_addr(family, f, n, &h->dst))
		return bad(why, "v1 destination address is invalid");
	if (next_field(&cur, end, false, &f, &n) || parse_port(f, n, &sport))
		return bad(why, "v1 source port is invalid");
	if (next_field(&cur, end, true, &f, &n) || parse_port(f, n, &dport))
		return bad(why, "v1 destination port is invalid");
	set_port(&h->src, sport);
	set_port(&h->dst, dport);
	h->has_addr = true;
	return (ssize_t)total;
}

/* Checks that the TLVs in @p[@len] tile it exactly. */
static int check_tlvs(const unsigned char *p, size_t len)
{
	while (len) {
		size_t n;

		if (len < 3)
			return -1;
		n = 3 + ((size_t)p[1] << 8 | p[2]);
		if (n > len)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* Version 2: binary.  @p starts with (a prefix of) the signature. */
static ssize_t parse_v2(const unsigned char *p, size_t len,
    struct proxy_header *h, const char **why)
{
	const unsigned char *a = p + 16;
	size_t body, need;
	unsigned cmd, fam, proto;

	if (len < 13)
		return 0;
	if ((p[12] >> 4) != 2)
		return bad(why, "v2 version is not 2");
	cmd = p[12] & 0x0f;
	if (cmd > 1)
		return bad(why, "v2 command is neither LOCAL nor PROXY");
	if (len < 16)
		return 0;
	fam = p[13] >> 4;
	proto = p[13] & 0x0f;
	/* LOCAL: "discard the protocol block including the family". */
	if (cmd == 1 && (fam > 3 || proto > 2))
		return bad(why, "v2 family or transport is unassigned");
	body = (size_t)p[14] << 8 | p[15];
	if (len < 16 + body)
		return 0;
	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->local = cmd == 0;
	if (h->local)
		return (ssize_t)(16 + body);
	/* UNSPEC family or transport: "the receiver should ignore address
	 * information", and the block with it. */
	if (fam == 0 || proto == 0)
		return (ssize_t)(16 + body);
	/* The spec fixes the address block's size per family. */
	need = fam == 1 ? 12 : fam == 2 ? 36 : 216;
	if (body < need)
		return bad(why, "v2 length is shorter than its addresses");
	if (check_tlvs(a + need, body - need))
		return bad(why, "v2 TLVs overrun the header");
	if (fam == 1 || fam == 2) {
		uint16_t sport, dport;

		if (fam == 1) {
			h->src.in.sin_family = h->dst.in.sin_family = AF_INET;
			memcpy(&h->src.in.sin_addr, a, 4);
			memcpy(&h->dst.in.sin_addr, a + 4, 4);
			a += 8;
		} else {
			h->src.in6.sin6_family = AF_INET6;
			h->dst.in6.sin6_family = AF_INET6;
			memcpy(&h->src.in6.sin6_addr, a, 16);
			memcpy(&h->dst.in6.sin6_addr, a + 16, 16);
			a += 32;
		}
		sport = (uint16_t)(a[0] << 8 | a[1]);
		dport = (uint16_t)(a[2] << 8 | a[3]);
		set_port(&h->src, sport);
		set_port(&h->dst, dport);
		h->has_addr = true;
	}
	return (ssize_t)(16 + body);
}

ssize_t proxy_parse(const void *buf, size_t len, struct proxy_header *h,
    const char **why)
{
	const unsigned char *p = buf;

	if (len == 0)
		return 0;
	if (is_prefix(p, len, v2_sig, sizeof(v2_sig)))
		return parse_v2(p, len, h, why);
	if (is_prefix(p, len, v1_sig, sizeof(v1_sig) - 1))
		return parse_v1(p, len, h, why);
	return bad(why, "not a PROXY protocol header");
}
