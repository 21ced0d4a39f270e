/*
 * Confinement of child processes: chroot to an empty directory, drop to
 * the unprivileged user, no_new_privs, Landlock where the kernel has it,
 * then a seccomp allow-list whose default action kills the process.
 */
#ifndef POSTERN_SANDBOX_H
#define POSTERN_SANDBOX_H

#include "proto.h"

void sandbox_enter(enum proc_role, const struct conf_sandbox *);
int sandbox_landlock_abi(void);

#endif
