#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "proc.h"

static struct imsgev *parent_iev;
static struct event ev_term, ev_int;
static struct event log_ev;
static int log_queued;

/*
 * How long an info line may wait for company.  Two lines per login, each
 * written on its own, cost the writer a write(2) and the parent a wake-up,
 * a read and a write: at thousands of logins a second that was an eighth
 * of the CPU per login.  A tenth of a second is too short for anyone
 * reading the log to notice; warnings and errors never wait.
 */
#define LOG_DEFER_MSEC 100

static void
proc_log_flush(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	log_queued = 0;
	log_flush();
}

static void
proc_log_soon(void)
{
	struct timeval tv = {0, LOG_DEFER_MSEC * 1000};

	if (log_queued)
		return;
	log_queued = 1;
	evtimer_add(&log_ev, &tv);
}

/* After event_init(): info lines wait up to LOG_DEFER_MSEC. */
void
proc_log_defer(void)
{
	evtimer_set(&log_ev, proc_log_flush, NULL);
	log_defer(proc_log_soon);
}

/*
 * Leaving, a child hands the parent what is still queued for it (audit
 * and access records): the parent reads its children while it waits for
 * them, so a second is plenty, and past it the exit goes on.
 */
static void
proc_flush_parent(void)
{
	struct timespec pause = {0, 10 * 1000 * 1000};
	int i;

	if (parent_iev == NULL)
		return;
	for (i = 0; i < 100 && !TAILQ_EMPTY(&parent_iev->ibuf.wq); i++) {
		if (imsg_write(&parent_iev->ibuf) == -1)
			return;
		if (!TAILQ_EMPTY(&parent_iev->ibuf.wq))
			nanosleep(&pause, NULL);
	}
}

void
proc_child_exit(void)
{
	proc_flush_parent();
	exit(0);
}

static void
proc_child_sig(int sig, short event, void *arg)
{
	(void)sig;
	(void)event;
	(void)arg;
	proc_child_exit();
}

/* After event_init(): signals, and the channel the parent left on fd 3. */
void
proc_child_init(struct imsgev *parent, void (*dispatch)(int, short, void *))
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* "pkill -USR1 postern" is meant for the parent's audit log */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal_set(&ev_term, SIGTERM, proc_child_sig, NULL);
	signal_set(&ev_int, SIGINT, proc_child_sig, NULL);
	signal_add(&ev_term, NULL);
	signal_add(&ev_int, NULL);
	parent_iev = parent;
	proc_log_defer();
	imsgev_init(parent, PROC_PARENT_FD, "parent", dispatch, NULL);
	parent->ibuf.peerpid = getppid();
}

/*
 * The parent is trusted but still checked: a message that breaks the
 * rules means something is badly wrong, and the child gives up.  Without
 * its parent a child has no reason to live.
 */
void
proc_parent_dispatch(struct imsgev *iev, short event,
    void (*handle)(struct imsg *))
{
	struct imsg imsg;
	char err[128];
	ssize_t n;

	if (imsgev_dispatch_io(iev, event) == -1) {
		log_debug("parent went away; exiting");
		exit(0);
	}
	while ((n = imsg_get(&iev->ibuf, &imsg)) > 0) {
		if (imsg_check(parent_to_child_rules, parent_to_child_nrules,
			&imsg, err, sizeof(err)) == -1)
			fatalx("parent: %s", err);
		handle(&imsg);
		imsg_free(&imsg);
	}
	if (n == -1)
		fatalx("parent sent a malformed frame");
}

/* Tell the parent a peer sent garbage, so it restarts that peer. */
void
proc_report_peer(enum proc_role role, pid_t pid)
{
	struct peer_channel pc;

	pc.role = role;
	pc.pid = pid;
	if (parent_iev != NULL)
		imsgev_compose(parent_iev, IMSG_PEER_MISBEHAVED, 0, -1, &pc,
		    sizeof(pc));
}

/*
 * Read a channel from another child.  Each message must pass the
 * channel's rules and then the handler; the first that does not marks
 * the peer as compromised.
 */
enum peer_status
proc_peer_dispatch(struct imsgev *iev, short event, enum proc_role peer,
    const struct imsg_rule *rules, size_t nrules, proc_handler handle,
    void *arg)
{
	struct imsg imsg;
	char err[128];
	ssize_t n;

	if (imsgev_dispatch_io(iev, event) == -1) {
		log_warnx("lost the %s channel", proc_role_name(peer));
		return PEER_CLOSED;
	}
	while ((n = imsg_get(&iev->ibuf, &imsg)) > 0) {
		if (imsg_check(rules, nrules, &imsg, err, sizeof(err)) == -1 ||
		    handle(&imsg, arg) == -1) {
			log_warnx("%s sent a bad message (type %u)",
			    proc_role_name(peer), imsg.hdr.type);
			imsg_free(&imsg);
			proc_report_peer(peer, iev->ibuf.peerpid);
			return PEER_BAD;
		}
		imsg_free(&imsg);
	}
	if (n == -1) {
		log_warnx("%s sent a malformed frame", proc_role_name(peer));
		proc_report_peer(peer, iev->ibuf.peerpid);
		return PEER_BAD;
	}
	return PEER_OK;
}
