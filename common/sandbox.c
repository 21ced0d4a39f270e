#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <netinet/in.h>

#include <linux/landlock.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <grp.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/* Newer Landlock ABI bits than Debian 12's headers know about. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define POSTERN_LL_FS_IOCTL_DEV	       (1ULL << 15)
#define POSTERN_LL_NET_BIND_TCP	       (1ULL << 0)
#define POSTERN_LL_NET_CONNECT_TCP     (1ULL << 1)
#define POSTERN_LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define POSTERN_LL_SCOPE_SIGNAL	       (1ULL << 1)

/* The kernel's ruleset attribute, as of Landlock ABI 6. */
struct postern_ll_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

static void
sandbox_drop_privileges(const struct conf_sandbox *sb)
{
	gid_t gid = sb->gid;
	uid_t uid = sb->uid;

	if (chroot(sb->chroot) == -1)
		fatal("chroot %s", sb->chroot);
	if (chdir("/") == -1)
		fatal("chdir /");
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("cannot drop privileges");
	/* make sure root cannot be regained */
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		fatalx("privileges could be regained after dropping them");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_NO_NEW_PRIVS)");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_DUMPABLE)");
}

int
sandbox_landlock_abi(void)
{
	long abi;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

/*
 * Landlock on top of the chroot: no file system access at all, no TCP
 * for processes that must not make connections, and (ABI 6) no signals
 * to processes outside the sandbox.
 */
static void
sandbox_landlock(enum proc_role role)
{
	struct postern_ll_attr attr;
	size_t attrsz;
	int abi, fd;

	if ((abi = sandbox_landlock_abi()) <= 0) {
		log_debug("landlock not available");
		return;
	}
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= POSTERN_LL_FS_IOCTL_DEV;
	attrsz = sizeof(attr.handled_access_fs);
	if (abi >= 4) {
		attr.handled_access_net = POSTERN_LL_NET_BIND_TCP;
		if (role != PROC_RELAY)
			attr.handled_access_net |= POSTERN_LL_NET_CONNECT_TCP;
		attrsz = offsetof(struct postern_ll_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped =
		    POSTERN_LL_SCOPE_ABSTRACT_UNIX | POSTERN_LL_SCOPE_SIGNAL;
		attrsz = sizeof(attr);
	}
	fd = syscall(SYS_landlock_create_ruleset, &attr, attrsz, 0);
	if (fd == -1)
		fatal("landlock_create_ruleset");
	if (syscall(SYS_landlock_restrict_self, fd, 0) == -1)
		fatal("landlock_restrict_self");
	close(fd);
	log_debug("landlock ABI %d enforced", abi);
}

static void
allow(scmp_filter_ctx ctx, int nr)
{
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0)
		fatalx("seccomp: cannot allow syscall %d", nr);
}

/* A memory mapping may never be executable. */
static void
allow_noexec(scmp_filter_ctx ctx, int nr)
{
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
		SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0)
		fatalx("seccomp: cannot allow syscall %d", nr);
}

static void
sandbox_seccomp_common(scmp_filter_ctx ctx)
{
	static const int calls[] = {
	    SCMP_SYS(read),
	    SCMP_SYS(write),
	    SCMP_SYS(readv),
	    SCMP_SYS(writev),
	    SCMP_SYS(close),
	    SCMP_SYS(recvmsg),
	    SCMP_SYS(sendmsg),
	    SCMP_SYS(recvfrom),
	    SCMP_SYS(sendto),
	    SCMP_SYS(epoll_wait),
	    SCMP_SYS(epoll_pwait),
	    SCMP_SYS(epoll_ctl),
	    SCMP_SYS(clock_gettime),
	    SCMP_SYS(gettimeofday),
	    SCMP_SYS(getpid),
	    SCMP_SYS(gettid),
	    SCMP_SYS(brk),
	    SCMP_SYS(munmap),
	    SCMP_SYS(mremap),
	    SCMP_SYS(madvise),
	    SCMP_SYS(rt_sigreturn),
	    SCMP_SYS(rt_sigprocmask),
	    SCMP_SYS(exit),
	    SCMP_SYS(exit_group),
	    SCMP_SYS(setsockopt),
	    SCMP_SYS(getsockname),
	    SCMP_SYS(getpeername),
	    SCMP_SYS(shutdown),
	    SCMP_SYS(getrandom),
	    SCMP_SYS(futex),
	    SCMP_SYS(fstat),
	    SCMP_SYS(restart_syscall),
	    SCMP_SYS(nanosleep),
	    SCMP_SYS(clock_nanosleep),
	};
	size_t i;

	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		allow(ctx, calls[i]);
	allow_noexec(ctx, SCMP_SYS(mmap));
	allow_noexec(ctx, SCMP_SYS(mprotect));
	/* fstat(2) is newfstatat(fd, "", AT_EMPTY_PATH) in glibc 2.36 */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
		SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)) != 0)
		fatalx("seccomp: newfstatat");
	/*
	 * fcntl(2) only for descriptor flags: F_SETOWN/F_SETSIG with
	 * O_ASYNC would let one child signal another running as the same
	 * user where Landlock cannot scope signals.
	 */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
		SCMP_A1(SCMP_CMP_EQ, F_GETFL, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2,
		SCMP_A1(SCMP_CMP_EQ, F_SETFL, 0),
		SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
		SCMP_A1(SCMP_CMP_EQ, F_GETFD, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
		SCMP_A1(SCMP_CMP_EQ, F_SETFD, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
		SCMP_A1(SCMP_CMP_EQ, F_DUPFD_CLOEXEC, 0)) != 0)
		fatalx("seccomp: fcntl");
	/* libevent sizes its reads with FIONREAD */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		SCMP_A1(SCMP_CMP_EQ, FIONREAD, 0)) != 0)
		fatalx("seccomp: ioctl");
	/* abort(3) signals itself, and only itself */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0)) != 0)
		fatalx("seccomp: tgkill");
}

static void
allow_tcp_socket(scmp_filter_ctx ctx, int family, int protocol)
{
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
		SCMP_A0(SCMP_CMP_EQ, family, 0),
		SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM),
		SCMP_A2(SCMP_CMP_EQ, protocol, 0)) != 0)
		fatalx("seccomp: socket");
}

/*
 * relay's memcached worker thread is created inside the sandbox.  clone
 * is allowed only for threads (no new processes); clone3 cannot be
 * filtered by its flags, so it fails with ENOSYS and glibc falls back.
 */
static void
sandbox_seccomp_threads(scmp_filter_ctx ctx)
{
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
		0) != 0)
		fatalx("seccomp: clone");
	allow(ctx, SCMP_SYS(set_robust_list));
	allow(ctx, SCMP_SYS(rseq));
	/*
	 * glibc installs its internal cancel and set-id handlers (kernel
	 * signals 32 and 33) on the first pthread_create; libmemcached
	 * sets SIGPIPE aside.
	 */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
		SCMP_A0(SCMP_CMP_EQ, SIGPIPE, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
		SCMP_A0(SCMP_CMP_EQ, 32, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
		SCMP_A0(SCMP_CMP_EQ, 33, 0)) != 0)
		fatalx("seccomp: rt_sigaction");
	allow(ctx, SCMP_SYS(sched_yield));
	/* what a sanitizer build's thread start-up adds */
	allow(ctx, SCMP_SYS(sigaltstack));
	allow(ctx, SCMP_SYS(sched_getaffinity));
}

static void
sandbox_seccomp(enum proc_role role)
{
	scmp_filter_ctx ctx;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		fatalx("seccomp_init failed");
	sandbox_seccomp_common(ctx);
	switch (role) {
	case PROC_AUTHPROC:
		/* accepts clients; creates, opens and connects nothing */
		allow(ctx, SCMP_SYS(accept4));
		allow(ctx, SCMP_SYS(accept));
#ifdef POSTERN_SANITIZE
		/* ASan's exit path, when a drained child exits */
		allow(ctx, SCMP_SYS(sigaltstack));
#endif
		break;
	case PROC_RELAY:
		/* TCP only: no datagram or raw sockets */
		allow_tcp_socket(ctx, AF_INET, 0);
		allow_tcp_socket(ctx, AF_INET6, 0);
		/* libmemcached names the protocol */
		allow_tcp_socket(ctx, AF_INET, IPPROTO_TCP);
		allow_tcp_socket(ctx, AF_INET6, IPPROTO_TCP);
		allow(ctx, SCMP_SYS(connect));
		allow(ctx, SCMP_SYS(getsockopt));
		allow(ctx, SCMP_SYS(pipe2));
		allow(ctx, SCMP_SYS(splice));
		/* HTTP to a TLS upstream: the bridge's plaintext pair */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair),
			1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0)) != 0)
			fatalx("seccomp: socketpair");
		/* larger splice pipes */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
			SCMP_A1(SCMP_CMP_EQ, F_SETPIPE_SZ, 0)) != 0)
			fatalx("seccomp: fcntl");
		/* libmemcached waits in poll(2) */
		allow(ctx, SCMP_SYS(poll));
		allow(ctx, SCMP_SYS(ppoll));
		sandbox_seccomp_threads(ctx);
		break;
	case PROC_TLSPROC:
		/* accepts clients; makes plaintext socketpairs, nothing else */
		allow(ctx, SCMP_SYS(accept4));
#ifdef POSTERN_SANITIZE
		allow(ctx, SCMP_SYS(sigaltstack));
#endif
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair),
			1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0)) != 0)
			fatalx("seccomp: socketpair");
		break;
	default:
		fatalx("no seccomp policy for %s", proc_role_name(role));
	}
	if (seccomp_load(ctx) != 0)
		fatalx("seccomp_load failed");
	seccomp_release(ctx);
}

void
sandbox_enter(enum proc_role role, const struct conf_sandbox *sb)
{
	sandbox_drop_privileges(sb);
	sandbox_landlock(role);
	sandbox_seccomp(role);
	log_debug("sandboxed as uid %u in %s", sb->uid, sb->chroot);
}
