/*
 * What parent.c would provide to control.c and metrics.c.  The unit tests
 * link every object but parent.o (its main() is not theirs); these stand
 * in for the few calls into it.  A test that needs other answers defines
 * its own: these are weak.
 */
#include <stdint.h>
#include <string.h>

#include "parent.h"

__attribute__((weak)) int
children_query(uint32_t id, const struct ctl_query *q, uint32_t roles,
    uint64_t *asked)
{
	(void)id;
	(void)q;
	(void)roles;
	memset(asked, 0, SLOT_WORDS * sizeof(*asked));
	return 0;
}

__attribute__((weak)) const char *
parent_listener_name(uint32_t id)
{
	(void)id;
	return "-";
}

__attribute__((weak)) uint64_t
parent_restarts(enum proc_role role)
{
	(void)role;
	return 0;
}

__attribute__((weak)) int
parent_counters_shared(void)
{
	return 0;
}

__attribute__((weak)) void
parent_logs_reopen(void)
{
}

__attribute__((weak)) int
parent_reload(void (*line)(void *, const char *), void *arg)
{
	(void)line;
	(void)arg;
	return 1;
}

__attribute__((weak)) const char *
child_listener_name(int slot, uint32_t id)
{
	(void)slot;
	(void)id;
	return "-";
}

__attribute__((weak)) int
children_forget(const struct counter_forget *f)
{
	(void)f;
	return -1;
}
