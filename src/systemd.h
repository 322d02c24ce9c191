/*
 * Running under systemd: the listening sockets a socket unit passes
 * (socket activation, sd_listen_fds(3)) and the readiness and stopping
 * notices of a Type=notify service (sd_notify(3)), both through
 * libsystemd.  libsystemd is optional at build time (HAVE_LIBSYSTEMD):
 * without it both are off, --version says so, and start-up warns when
 * systemd passed sockets or a notify socket that are being ignored.
 * The units are src/echoserver.service.in and src/echoserver.socket;
 * docs/operations.md, "systemd", says how they fit together.
 *
 * Main thread only: start-up and shutdown call these, never a worker.
 */
#ifndef SYSTEMD_H
#define SYSTEMD_H

/* The first passed descriptor (SD_LISTEN_FDS_START), the rest follow. */
#define SYSTEMD_LISTEN_FDS_START 3

/*
 * The number of sockets systemd passed, from SYSTEMD_LISTEN_FDS_START on,
 * each checked to be a listening TCP socket; 0 when none were (or without
 * libsystemd).  The LISTEN_* variables are removed from the environment.
 * Returns -1 after logging why when a passed descriptor is not one.
 */
int systemd_listen_fds(void);

/*
 * Sends @state ("READY=1\nSTATUS=...", see sd_notify(3)) to the service
 * manager when NOTIFY_SOCKET names one; otherwise does nothing.  Best
 * effort: a failure is logged once, never fatal.
 */
void systemd_notify(const char *state);

/* One line on what this build does with systemd, for --version; static. */
const char *systemd_features(void);

#endif
