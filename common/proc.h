/*
 * What every child process does the same way: start its event loop on
 * the parent channel, read and check messages from the parent and from
 * its peers, and tell the parent when a peer breaks the protocol.
 */
#ifndef POSTERN_PROC_H
#define POSTERN_PROC_H

#include "imsg.h"
#include "proto.h"

#define PROC_PARENT_FD 3

enum peer_status {
	PEER_OK,
	PEER_CLOSED, /* EOF or an I/O error: the peer is gone */
	PEER_BAD     /* it broke the protocol; the parent was told */
};

/* Returns -1 to reject a message whose content is invalid. */
typedef int (*proc_handler)(struct imsg *, void *);

void proc_log_defer(void);
/* A child's exit: what is queued for the parent goes out first. */
void proc_child_exit(void) __attribute__((__noreturn__));
void proc_child_init(struct imsgev *parent,
    void (*dispatch)(int, short, void *));
void proc_parent_dispatch(struct imsgev *, short,
    void (*handle)(struct imsg *));
enum peer_status proc_peer_dispatch(struct imsgev *, short, enum proc_role,
    const struct imsg_rule *, size_t, proc_handler, void *);
void proc_report_peer(enum proc_role, pid_t);

#endif
