/*
 * Logging in the style of OpenBSD daemons.
 *
 * The parent logs to syslog (or stderr with -d).  Children always write
 * to their stderr, which the parent connects to a pipe it reads, so a
 * chrooted, seccomp-confined child never needs a socket for syslog.
 * Every message is escaped before it leaves the process: untrusted bytes
 * can never forge a log line.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_target {
	LOG_TO_STDERR, /* foreground parent: plain lines */
	LOG_TO_SYSLOG, /* daemonised parent */
	LOG_TO_PARENT  /* child: "<prio>line" records on stderr */
};

void log_init(enum log_target, int verbose, const char *procname);
void log_procname(const char *);
int log_getverbose(void);
void log_setverbose(int);
void log_emit(int, const char *);
void log_emit_as(int, const char *, const char *);
void log_defer(void (*soon)(void));
void log_flush(void);
/* while set, every warning is also handed to fn (posternctl reload) */
void log_tee(void (*fn)(int, const char *, void *), void *);

void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatal(const char *, ...)
    __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Escape untrusted bytes for a log line: printable ASCII stays, backslash
 * and everything else become \\, \n, \r, \t or \xNN.  dst always ends up
 * NUL-terminated; the result is truncated (with "...") if it does not fit.
 */
size_t log_escape(char *dst, size_t dstsz, const void *src, size_t srclen);

#endif
