#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 1024

static enum log_target log_target = LOG_TO_STDERR;
static int log_verbose;
static char log_name[32] = "postern";

/*
 * Deferred lines: info and debug lines wait in a buffer until the caller's
 * log_soon() hook says so (proc.c: at most 100 ms) or the buffer is full,
 * so a burst of sessions costs one write(2) (and one wake-up of the
 * parent) rather than one per line.  Anything more urgent writes the
 * buffer out first, then itself, so order is kept; exit writes out what
 * is left.
 */
#define LOG_DEFER_MAX 16384
static char log_deferred[LOG_DEFER_MAX];
static size_t log_deferred_len;
static void (*log_soon)(void);

void
log_init(enum log_target target, int verbose, const char *procname)
{
	log_target = target;
	log_verbose = verbose;
	log_procname(procname);
	if (target == LOG_TO_SYSLOG)
		openlog("postern", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

static void
log_write(const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(STDERR_FILENO, buf, len);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += w;
		len -= w;
	}
}

void
log_flush(void)
{
	size_t len = log_deferred_len;

	log_deferred_len = 0;
	log_write(log_deferred, len);
}

void
log_defer(void (*soon)(void))
{
	if (log_target == LOG_TO_SYSLOG)
		return;
	if (log_soon == NULL)
		atexit(log_flush);
	log_soon = soon;
}

void
log_procname(const char *name)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
}

int
log_getverbose(void)
{
	return log_verbose;
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

size_t
log_escape(char *dst, size_t dstsz, const void *src, size_t srclen)
{
	const unsigned char *s = src;
	size_t i, o = 0;
	char tmp[5];
	const char *rep;
	size_t replen;

	if (dstsz == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		switch (s[i]) {
		case '\\':
			rep = "\\\\";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\t':
			rep = "\\t";
			break;
		default:
			if (s[i] >= 0x20 && s[i] < 0x7f) {
				tmp[0] = s[i];
				tmp[1] = '\0';
			} else
				snprintf(tmp, sizeof(tmp), "\\x%02x", s[i]);
			rep = tmp;
		}
		replen = strlen(rep);
		if (o + replen + 1 > dstsz) {
			/* leave room for the truncation marker */
			while (o > 0 && o + 4 > dstsz)
				o--;
			if (o + 4 <= dstsz) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(dst + o, rep, replen);
		o += replen;
	}
	dst[o] = '\0';
	return o;
}

static void (*tee_fn)(int, const char *, void *);
static void *tee_arg;

void
log_tee(void (*fn)(int, const char *, void *), void *arg)
{
	tee_fn = fn;
	tee_arg = arg;
}

/* Emit one already formatted message; escapes control bytes first. */
void
log_emit(int pri, const char *msg)
{
	char line[LOG_LINE_MAX * 2];

	if (tee_fn != NULL && pri <= LOG_WARNING) {
		log_escape(line, sizeof(line), msg, strlen(msg));
		tee_fn(pri, line, tee_arg);
	}
	log_emit_as(pri, log_name, msg);
}

/* As log_emit(), for a line a child already labelled (name NULL). */
void
log_emit_as(int pri, const char *name, const char *msg)
{
	char line[LOG_LINE_MAX * 2];
	char out[LOG_LINE_MAX * 2 + 64];
	int n;

	log_escape(line, sizeof(line), msg, strlen(msg));
	switch (log_target) {
	case LOG_TO_SYSLOG:
		if (name != NULL)
			syslog(pri, "%s: %s", name, line);
		else
			syslog(pri, "%s", line);
		return;
	case LOG_TO_PARENT:
		n = snprintf(out, sizeof(out), "<%d>%s: %s\n", pri,
		    name ? name : "?", line);
		break;
	case LOG_TO_STDERR:
	default:
		if (name != NULL)
			n = snprintf(out, sizeof(out), "%s: %s\n", name, line);
		else
			n = snprintf(out, sizeof(out), "%s\n", line);
		break;
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(out))
		n = sizeof(out) - 1;
	if (log_soon != NULL && pri >= LOG_INFO) {
		if (log_deferred_len + n > sizeof(log_deferred))
			log_flush();
		if (log_deferred_len == 0)
			log_soon();
		memcpy(log_deferred + log_deferred_len, out, n);
		log_deferred_len += n;
		return;
	}
	/*
	 * Whole lines per write(2), so lines from several processes never
	 * mix; what waited goes first.
	 */
	log_flush();
	log_write(out, n);
}

static void
vlog(int pri, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_emit(pri, msg);
}

static void
vlog_errno(int pri, int saved, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	char full[LOG_LINE_MAX + 128];

	if (fmt == NULL) {
		log_emit(pri, strerror(saved));
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(full, sizeof(full), "%s: %s", msg, strerror(saved));
	log_emit(pri, full);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
