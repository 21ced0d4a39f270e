/*
 * The audit log: one JSON object per line per login attempt, written by
 * the parent from records authproc and relay send it; and the HTTP
 * access log, one JSON object per request, from relay's records.  The file is
 * opened for appending and reopened on SIGUSR1, so logrotate can move it
 * away; each record is a single write(2), so records never interleave.
 */
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "parent.h"

#define AUDIT_LINE_MAX 8192

static int access_fd = -1;
static char access_path[256];
static int audit_fd = -1;
static char audit_path[256];
static int audit_syslog;
static char audit_node[64];

void
audit_init(const char *path, int use_syslog, const char *node)
{
	snprintf(audit_path, sizeof(audit_path), "%s", path ? path : "");
	audit_syslog = use_syslog;
	snprintf(audit_node, sizeof(audit_node), "%s", node);
	audit_reopen();
}

/* Open a log file again (rotation); on failure keep the old one. */
static void
log_file_reopen(const char *path, int *fdp, const char *what)
{
	int fd;

	if (path[0] == '\0')
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_warn("%s %s", what, path);
		return; /* keep writing to the old file, if any */
	}
	if (*fdp != -1)
		close(*fdp);
	*fdp = fd;
}

void
audit_reopen(void)
{
	log_file_reopen(audit_path, &audit_fd, "audit log");
}

static void
fmt_time(char *buf, size_t len, uint64_t ms)
{
	time_t t = ms / 1000;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (unsigned int)(ms % 1000));
}

static void
client_addr(const struct sockaddr_storage *ss, char *host, size_t len,
    unsigned int *port)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, len);
		*port = ntohs(sin6->sin6_port);
	} else {
		inet_ntop(AF_INET, &sin->sin_addr, host, len);
		*port = ntohs(sin->sin_port);
	}
}

/* "name": "value" (or null when value is empty), with a leading comma. */
static int
field(char *buf, size_t len, size_t *off, const char *name, const char *value)
{
	if (json_append_raw(buf, len, off, ",\"") == -1 ||
	    json_append_raw(buf, len, off, name) == -1 ||
	    json_append_raw(buf, len, off, "\":") == -1)
		return -1;
	if (value == NULL || value[0] == '\0')
		return json_append_raw(buf, len, off, "null");
	return json_append_string(buf, len, off, value, strlen(value));
}

/* A record's first member: {"time":"...". */
static int
record_open(char *buf, size_t len, size_t *off, uint64_t time_ms)
{
	char when[80];

	fmt_time(when, sizeof(when), time_ms);
	buf[0] = '\0';
	if (json_append_raw(buf, len, off, "{\"time\":\"") == -1 ||
	    json_append_raw(buf, len, off, when) == -1 ||
	    json_append_raw(buf, len, off, "\"") == -1)
		return -1;
	return 0;
}

/* Format one record as a JSON line; returns its length or -1. */
ssize_t
audit_format(char *buf, size_t len, const struct audit_record *a,
    const char *node, const char *listener)
{
	char host[INET6_ADDRSTRLEN], num[64];
	unsigned int port = 0;
	size_t off = 0;

	client_addr(&a->client, host, sizeof(host), &port);
	snprintf(num, sizeof(num), "%016llx", (unsigned long long)a->sid);
	if (record_open(buf, len, &off, a->time_ms) == -1 ||
	    field(buf, len, &off, "node", node) == -1 ||
	    field(buf, len, &off, "session", num) == -1 ||
	    field(buf, len, &off, "protocol", mail_proto_name(a->proto)) ==
		-1 ||
	    field(buf, len, &off, "listener", listener) == -1 ||
	    field(buf, len, &off, "tls", a->tls ? a->facts.version : NULL) ==
		-1 ||
	    field(buf, len, &off, "sni", a->tls ? a->facts.servername : NULL) ==
		-1 ||
	    field(buf, len, &off, "client_ip", host) == -1)
		return -1;
	snprintf(num, sizeof(num), ",\"client_port\":%u", port);
	if (json_append_raw(buf, len, &off, num) == -1 ||
	    field(buf, len, &off, "user", a->user) == -1 ||
	    field(buf, len, &off, "mechanism", a->mech) == -1 ||
	    field(buf, len, &off, "result",
		audit_result_word(a->proto, a->result)) == -1 ||
	    field(buf, len, &off, "reason", a->reason) == -1 ||
	    field(buf, len, &off, "upstream", a->upstream) == -1)
		return -1;
	if (a->proto == PROTO_HTTP) {
		if (field(buf, len, &off, "path_class", a->path_class) == -1)
			return -1;
		if ((a->result == AUDIT_THROTTLED_IP ||
			a->result == AUDIT_THROTTLED_USER) &&
		    field(buf, len, &off, "limit",
			a->result == AUDIT_THROTTLED_IP ? "ip" : "user") == -1)
			return -1;
		if (a->http_status != 0) {
			snprintf(num, sizeof(num), ",\"http_status\":%u",
			    a->http_status);
			if (json_append_raw(buf, len, &off, num) == -1)
				return -1;
		}
	}
	snprintf(num, sizeof(num), ",\"duration_ms\":%u}\n", a->duration_ms);
	if (json_append_raw(buf, len, &off, num) == -1)
		return -1;
	return off;
}

void
access_init(const char *path)
{
	snprintf(access_path, sizeof(access_path), "%s", path ? path : "");
	access_reopen();
}

void
access_reopen(void)
{
	log_file_reopen(access_path, &access_fd, "access log");
}

ssize_t
access_format(char *buf, size_t len, const struct access_record *a)
{
	char host[INET6_ADDRSTRLEN], num[160];
	unsigned int port = 0;
	size_t off = 0;

	client_addr(&a->client, host, sizeof(host), &port);
	snprintf(num, sizeof(num), "%016llx", (unsigned long long)a->sid);
	if (record_open(buf, len, &off, a->time_ms) == -1 ||
	    field(buf, len, &off, "session", num) == -1 ||
	    field(buf, len, &off, "client_ip", host) == -1)
		return -1;
	snprintf(num, sizeof(num), ",\"client_port\":%u", port);
	if (json_append_raw(buf, len, &off, num) == -1 ||
	    field(buf, len, &off, "method", a->method) == -1 ||
	    field(buf, len, &off, "path", a->path) == -1 ||
	    field(buf, len, &off, "user", a->user) == -1 ||
	    field(buf, len, &off, "upstream", a->upstream) == -1)
		return -1;
	snprintf(num, sizeof(num),
	    ",\"status\":%u,\"bytes_in\":%llu,\"bytes_out\":%llu,"
	    "\"duration_ms\":%u}\n",
	    a->status, (unsigned long long)a->bytes_up,
	    (unsigned long long)a->bytes_down, a->duration_ms);
	if (json_append_raw(buf, len, &off, num) == -1)
		return -1;
	return off;
}

void
access_write(const struct access_record *a)
{
	char line[AUDIT_LINE_MAX];
	ssize_t n, w;

	if (access_fd == -1)
		return;
	if ((n = access_format(line, sizeof(line), a)) == -1) {
		log_warnx("access record too long; dropped");
		return;
	}
	do {
		w = write(access_fd, line, n);
	} while (w == -1 && errno == EINTR);
	if (w != n)
		log_warn("access log %s: write", access_path);
}

void
audit_write(const struct audit_record *a, const char *listener)
{
	char line[AUDIT_LINE_MAX];
	ssize_t n, w;

	if ((n = audit_format(line, sizeof(line), a, audit_node, listener)) ==
	    -1) {
		log_warnx("audit record too long; dropped");
		return;
	}
	if (audit_fd != -1) {
		do {
			w = write(audit_fd, line, n);
		} while (w == -1 && errno == EINTR);
		if (w != n) {
			log_warn("audit log %s: write", audit_path);
			/* never let the next record run on from a torn one */
			if (w > 0 && write(audit_fd, "\n", 1) == -1)
				log_warn("audit log %s: write", audit_path);
		}
	}
	if (audit_syslog) {
		line[n - 1] = '\0';
		syslog(LOG_AUTH | LOG_INFO, "%s", line);
	}
}
