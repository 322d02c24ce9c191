/*
 * Socket addresses as the operator writes them: "127.0.0.1", "::1" or
 * "[::1]", and back to text as "127.0.0.1:5555" or "[::1]:5555".
 */
#ifndef NETADDR_H
#define NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text netaddr_format() writes, with its NUL. */
#define NETADDR_STRLEN 64

/*
 * Parses the numeric IPv4 or IPv6 address @text (borrowed) with @port into
 * @ss and @len.  Returns 0, or -1 if @text is not a numeric address.
 */
int netaddr_parse(const char *text, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len);

/* Writes "host:port" for @sa (borrowed) into @buf of @size bytes. */
void netaddr_format(const struct sockaddr *sa, char *buf, size_t size);

#endif
