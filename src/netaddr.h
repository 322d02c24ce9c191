/*
 * Socket addresses as the operator writes them: "127.0.0.1", "::1" or
 * "[::1]", each with an optional port ("127.0.0.1:5556", "[::1]:5557"),
 * and back to text as "127.0.0.1:5555" or "[::1]:5555".
 */
#ifndef NETADDR_H
#define NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Longest text netaddr_format() writes, with its NUL. */
#define NETADDR_STRLEN 64

/*
 * Parses @text (borrowed): a numeric IPv4 or IPv6 address with an
 * optional port, as "127.0.0.1", "127.0.0.1:5556", "::1", "[::1]" or
 * "[::1]:5557", into @ss and @len.  Without a port, @default_port is used.
 * Returns 0, or -1 if @text is not of that form.
 */
int netaddr_parse(const char *text, uint16_t default_port,
    struct sockaddr_storage *ss, socklen_t *len);

/*
 * Room for one IPv4 or IPv6 address: 28 bytes where a sockaddr_storage
 * takes 128, for keeping one per connection.
 */
union netaddr_ip {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* The length of @sa (borrowed) by its family: 0 if neither IPv4 nor
 * IPv6. */
socklen_t netaddr_len(const struct sockaddr *sa);

/* Writes "host:port" for @sa (borrowed) into @buf of @size bytes. */
void netaddr_format(const struct sockaddr *sa, char *buf, size_t size);

/* The port of @sa (borrowed), IPv4 or IPv6; 0 for other families. */
unsigned netaddr_port(const struct sockaddr *sa);

#endif
