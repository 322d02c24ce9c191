/*
 * The open-file limit of a program that holds many sockets: echoserver
 * (its default connection limit) and echobench (whether --conns fits).
 * Both raise the soft RLIMIT_NOFILE to the hard one first, because the
 * soft default (1024) is far below what either needs, and an
 * unprivileged process may raise it up to the hard limit.
 */
#ifndef FDLIMIT_H
#define FDLIMIT_H

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft
 * limit now in force: the hard one, or the old one if the kernel refused
 * the raise.  Returns LONG_MAX for RLIM_INFINITY (which Linux never grants,
 * as fs.nr_open caps the hard limit), and -1 with errno set if the limit
 * cannot be read.
 */
long fdlimit_raise(void);

#endif
