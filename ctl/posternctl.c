/*
 * posternctl: postern's control tool, in the manner of relayctl(8).  It
 * turns its words into one struct ctl_request, sends it on the parent's
 * control socket, prints the text lines that come back and exits with
 * the status the parent gives.  All the knowledge is in the parent.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "proto.h"

#define POSTERN_CONTROL "/run/postern/postern.sock"
#define ANSWER_TIMEOUT_MS 30000

/* words -> command; ARG: one argument follows */
struct ctl_word {
	const char *words[3];
	uint32_t command;
	uint32_t filter;
	int arg;
};

static const struct ctl_word table[] = {
    {{"show", "sessions", NULL}, CTL_SHOW_SESSIONS, CTL_FILTER_NONE, 0},
    {{"show", "sessions", "user"}, CTL_SHOW_SESSIONS, CTL_FILTER_USER, 1},
    {{"show", "sessions", "client"}, CTL_SHOW_SESSIONS, CTL_FILTER_CLIENT,
	1},
    {{"show", "upstreams", NULL}, CTL_SHOW_UPSTREAMS, CTL_FILTER_NONE, 0},
    {{"show", "lookup", NULL}, CTL_SHOW_LOOKUP, CTL_FILTER_NONE, 0},
    {{"show", "stats", NULL}, CTL_SHOW_STATS, CTL_FILTER_NONE, 0},
    {{"kick", "session", NULL}, CTL_KICK_SESSION, CTL_FILTER_NONE, 1},
    {{"kick", "user", NULL}, CTL_KICK_USER, CTL_FILTER_NONE, 1},
    {{"route", "flush", "all"}, CTL_ROUTE_FLUSH_ALL, CTL_FILTER_NONE, 0},
    {{"route", "flush", NULL}, CTL_ROUTE_FLUSH_USER, CTL_FILTER_NONE, 1},
    {{"unblock", "ip", NULL}, CTL_UNBLOCK_IP, CTL_FILTER_NONE, 1},
    {{"unblock", "user", NULL}, CTL_UNBLOCK_USER, CTL_FILTER_NONE, 1},
    {{"reload", NULL, NULL}, CTL_RELOAD, CTL_FILTER_NONE, 0},
    {{"log", "reopen", NULL}, CTL_LOG_REOPEN, CTL_FILTER_NONE, 0},
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: posternctl [-s socket] command [argument]\n"
	    "  show sessions [user U | client A]\n"
	    "  show upstreams | show lookup | show stats\n"
	    "  kick session ID | kick user U\n"
	    "  route flush USER | route flush all\n"
	    "  unblock ip A | unblock user U\n"
	    "  reload\n"
	    "  log reopen\n");
	exit(1);
}

static int
words_match(const struct ctl_word *w, int argc, char **argv)
{
	int n;

	for (n = 0; n < 3 && w->words[n] != NULL; n++)
		if (n >= argc || strcmp(argv[n], w->words[n]) != 0)
			return 0;
	return argc == n + w->arg;
}

static void
build_request(int argc, char **argv, struct ctl_request *r)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (words_match(&table[i], argc, argv))
			break;
	if (i == sizeof(table) / sizeof(table[0]))
		usage();
	r->command = table[i].command;
	r->filter = table[i].filter;
	if (table[i].arg &&
	    (size_t)snprintf(r->arg, sizeof(r->arg), "%s", argv[argc - 1]) >=
		sizeof(r->arg))
		errx(1, "argument too long");
}

static int
connect_control(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		path) >= sizeof(sun.sun_path))
		errx(1, "socket path too long: %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "%s (is postern running?)", path);
	return fd;
}

/* Print one line from the parent; it escaped what clients sent. */
static void
print_text(const struct imsg *imsg)
{
	const char *s = imsg->data;
	size_t i;

	for (i = 0; i < imsg->datalen; i++)
		/* the parent sends ASCII; anything else is shown as '?' */
		putchar((unsigned char)s[i] >= ' ' && (unsigned char)s[i] < 0x7f
			? s[i]
			: '?');
	putchar('\n');
}

static int
read_answer(struct imsgbuf *ibuf)
{
	struct pollfd pfd = {ibuf->fd, POLLIN, 0};
	struct imsg imsg;
	char errbuf[128];
	ssize_t n;
	int status;

	for (;;) {
		while ((n = imsg_get(ibuf, &imsg)) > 0) {
			if (imsg_check(control_reply_rules,
				control_reply_nrules, &imsg, errbuf,
				sizeof(errbuf)) == -1)
				errx(1, "bad answer from postern: %s", errbuf);
			if (imsg.hdr.type == IMSG_CTL_TEXT) {
				print_text(&imsg);
				imsg_free(&imsg);
				continue;
			}
			status = ((struct ctl_end *)imsg.data)->status;
			imsg_free(&imsg);
			return status;
		}
		if (n == -1)
			errx(1, "malformed answer from postern");
		if ((n = poll(&pfd, 1, ANSWER_TIMEOUT_MS)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		if (n == 0)
			errx(1, "no answer from postern in %d s",
			    ANSWER_TIMEOUT_MS / 1000);
		if ((n = imsg_read(ibuf)) == -1 && errno != EAGAIN)
			err(1, "read");
		if (n == 0)
			errx(1, "postern closed the connection");
	}
}

int
main(int argc, char *argv[])
{
	const char *path = POSTERN_CONTROL;
	struct ctl_request r;
	struct imsgbuf ibuf;
	int ch, fd;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	build_request(argc, argv, &r);
	fd = connect_control(path);
	imsgbuf_init(&ibuf, fd);
	if (imsg_compose(&ibuf, IMSG_CTL_REQUEST, 0, -1, &r, sizeof(r)) == -1)
		err(1, "compose");
	while (ibuf.wqlen > 0)
		if (imsg_write(&ibuf) == -1)
			err(1, "write");
	return read_answer(&ibuf);
}
