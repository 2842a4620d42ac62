/*
 * The real-kernel side of `python -m engine verify`: runs a scenario's calls
 * on the host so their results and /proc/self/maps can be compared with the
 * simulated kernel's.
 *
 * Built static and started with ASLR off, so the only top-down mappings are
 * the vDSO's and a scenario's first mmap(NULL) lands where the simulator's
 * does.  It never calls malloc or stdio: the executor must not add mappings
 * of its own once the baseline has been taken.
 *
 * Protocol, on a unix stream socket at fd 0, all integers native-endian:
 *   command: u64 op, u64 arg[6]            (fork carries a socket, SCM_RIGHTS)
 *   reply:   i64 kind, i64 value, u64 len, then len bytes (maps text)
 * kind is REPLY_OK, REPLY_ERRNO (value = errno) or REPLY_SIGNAL (value = signo).
 * On start, and in a forked child, the first reply is a hello: REPLY_OK with
 * the personality flags.  EOF on the socket ends the process.
 *
 * OP_PAGES(start, end) answers one struct page_record per populated page
 * (pagemap says present or swapped) of [start, end): the pagemap entry and,
 * when /proc/kpagecount and /proc/kpageflags can be read (root), the page's
 * count and flags and where its folio starts and how long it is, found from
 * the COMPOUND_HEAD/TAIL flags of the pages around it.  The reply's value
 * says which: PAGES_PAGEMAP_ONLY or PAGES_FULL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum op {
	OP_MMAP = 1,
	OP_MUNMAP = 2,
	OP_MPROTECT = 3,
	OP_MREMAP = 4,
	OP_MADVISE = 5,
	OP_MEMSET = 6,
	OP_STORE = 7,
	OP_LOAD = 8,
	OP_FORK = 9,
	OP_MAPS = 10,
	OP_PAGES = 11,
};

enum pages_kind { PAGES_PAGEMAP_ONLY = 0, PAGES_FULL = 1 };

#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_SWAP (1ULL << 62)
#define PM_PRESENT (1ULL << 63)
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
/* The largest folio looked for: a PMD's worth of pages. */
#define FOLIO_SPAN 512

struct page_record {
	uint64_t addr;
	uint64_t pagemap;
	uint64_t count;
	uint64_t flags;
	uint64_t head;	/* pages from the folio's head to this page */
	uint64_t nr;	/* pages in the folio */
};

enum reply_kind { REPLY_OK = 0, REPLY_ERRNO = 1, REPLY_SIGNAL = 2 };

struct command {
	uint64_t op;
	uint64_t arg[6];
};

struct reply {
	int64_t kind;
	int64_t value;
	uint64_t len;
};

/* Keeps the stack limit under the kernel's 128 MiB minimum gap, and never
 * RLIM_INFINITY (the legacy bottom-up layout), so mmap_base is fixed. */
#define STACK_LIMIT (8UL << 20)

static char maps_buf[1 << 20];
static struct page_record pages_buf[1 << 16];
static uint64_t pagemap_chunk[4096];
static uint64_t flags_block[FOLIO_SPAN];
static uint64_t flags_block_base = UINT64_MAX;
static int kpagecount_fd = -2, kpageflags_fd = -2;
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed;

static void die(void)
{
	syscall(SYS_exit_group, 1);
}

static void on_fault(int sig)
{
	if (!fault_armed) {
		/* A fault in the executor itself: let it kill the process. */
		signal(sig, SIG_DFL);
		return;
	}
	fault_armed = 0;
	siglongjmp(fault_jmp, sig);
}

static void write_all(const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(0, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die();
		p += n;
		len -= (size_t)n;
	}
}

static void reply(int64_t kind, int64_t value, const char *data, uint64_t len)
{
	struct reply r = { kind, value, len };

	write_all(&r, sizeof(r));
	if (len)
		write_all(data, len);
}

/* A raw syscall's answer: the kernel's value, or its errno. */
static void reply_syscall(long ret)
{
	if (ret == -1)
		reply(REPLY_ERRNO, errno, 0, 0);
	else
		reply(REPLY_OK, ret, 0, 0);
}

/* Reads one command; a descriptor passed with it lands in *fd. */
static void read_command(struct command *cmd, int *fd)
{
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { cmd, sizeof(*cmd) };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	size_t got = 0;
	ssize_t n;

	*fd = -1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = sizeof(control);
	do
		n = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		syscall(SYS_exit_group, n == 0 ? 0 : 1);
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	got = (size_t)n;
	while (got < sizeof(*cmd)) {
		n = read(0, (char *)cmd + got, sizeof(*cmd) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			syscall(SYS_exit_group, n == 0 ? 0 : 1);
		got += (size_t)n;
	}
}

/* Touches memory; a fault is the scenario's SIGSEGV, not the executor's. */
static void guarded_access(uint64_t op, const uint64_t *arg)
{
	int sig = sigsetjmp(fault_jmp, 1);

	if (sig) {
		reply(REPLY_SIGNAL, sig, 0, 0);
		return;
	}
	fault_armed = 1;
	if (op == OP_MEMSET)
		memset((void *)arg[0], (int)arg[1], arg[2]);
	else if (op == OP_STORE)
		*(volatile char *)arg[0] = (char)arg[1];
	else
		(void)*(volatile char *)arg[0];
	__asm__ volatile("" ::: "memory");
	fault_armed = 0;
	reply(REPLY_OK, 0, 0, 0);
}

/* /proc/self/maps, or /proc/self/smaps when asked (resident pages). */
static void send_maps(uint64_t smaps)
{
	int fd = open(smaps ? "/proc/self/smaps" : "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		reply(REPLY_ERRNO, errno, 0, 0);
		return;
	}
	while ((n = read(fd, maps_buf + len, sizeof(maps_buf) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || len + (size_t)n == sizeof(maps_buf)) {
			close(fd);
			reply(REPLY_ERRNO, n < 0 ? errno : EOVERFLOW, 0, 0);
			return;
		}
		len += (size_t)n;
	}
	close(fd);
	reply(REPLY_OK, 0, maps_buf, len);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, (off_t)offset);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* Opened once, before a fork shares them: never by a scenario's statement. */
static void open_kpage_files(void)
{
	if (kpagecount_fd == -2)
		kpagecount_fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	if (kpageflags_fd == -2)
		kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
}

/* The flags of the FOLIO_SPAN-aligned block of pfns holding pfn, cached:
 * a PMD-sized folio's pages all fall in one block. */
static int block_flags(uint64_t pfn, const uint64_t **block)
{
	uint64_t base = pfn & ~(uint64_t)(FOLIO_SPAN - 1);

	if (base != flags_block_base) {
		flags_block_base = UINT64_MAX;
		if (pread_all(kpageflags_fd, flags_block, sizeof(flags_block), base * 8))
			return -1;
		flags_block_base = base;
	}
	*block = flags_block;
	return 0;
}

/* Count, flags and folio position of one pfn; -1 if the files failed. */
static int describe_pfn(uint64_t pfn, struct page_record *r)
{
	const uint64_t *block;
	uint64_t at = pfn & (FOLIO_SPAN - 1), head = at, end;

	if (pread_all(kpagecount_fd, &r->count, 8, pfn * 8) || block_flags(pfn, &block))
		return -1;
	r->flags = block[at];
	if (block[at] & (1ULL << KPF_COMPOUND_TAIL))
		while (head > 0 && !(block[head] & (1ULL << KPF_COMPOUND_HEAD)))
			head--;
	end = head + 1;
	if (block[head] & (1ULL << KPF_COMPOUND_HEAD))
		while (end < FOLIO_SPAN && (block[end] & (1ULL << KPF_COMPOUND_TAIL)))
			end++;
	r->head = at - head;
	r->nr = end - head;
	return 0;
}

/* The populated pages of [start, end), as described above OP_PAGES. */
static void send_pages(uint64_t start, uint64_t end)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int full = kpagecount_fd >= 0 && kpageflags_fd >= 0;
	size_t count = 0;
	uint64_t vpn = start >> 12, last = end >> 12;

	if (fd < 0) {
		reply(REPLY_ERRNO, errno, 0, 0);
		return;
	}
	flags_block_base = UINT64_MAX;
	while (vpn < last) {
		uint64_t n = last - vpn, i;

		if (n > sizeof(pagemap_chunk) / 8)
			n = sizeof(pagemap_chunk) / 8;
		if (pread_all(fd, pagemap_chunk, n * 8, vpn * 8)) {
			close(fd);
			reply(REPLY_ERRNO, errno ? errno : EIO, 0, 0);
			return;
		}
		for (i = 0; i < n; i++) {
			uint64_t pm = pagemap_chunk[i];
			struct page_record *r = &pages_buf[count];

			if (!(pm & (PM_PRESENT | PM_SWAP)))
				continue;
			if (count == sizeof(pages_buf) / sizeof(pages_buf[0])) {
				close(fd);
				reply(REPLY_ERRNO, EOVERFLOW, 0, 0);
				return;
			}
			memset(r, 0, sizeof(*r));
			r->addr = (vpn + i) << 12;
			r->pagemap = pm;
			r->nr = 1;
			if (full && (pm & PM_PRESENT) && (pm & PM_PFN_MASK) &&
			    describe_pfn(pm & PM_PFN_MASK, r)) {
				close(fd);
				reply(REPLY_ERRNO, errno ? errno : EIO, 0, 0);
				return;
			}
			count++;
		}
		vpn += n;
	}
	close(fd);
	reply(REPLY_OK, full ? PAGES_FULL : PAGES_PAGEMAP_ONLY, (const char *)pages_buf,
	      count * sizeof(pages_buf[0]));
}

/* The child takes the passed socket as its channel and says hello. */
static void do_fork(int fd)
{
	pid_t pid;

	if (fd < 0) {
		reply(REPLY_ERRNO, EBADF, 0, 0);
		return;
	}
	pid = fork();
	if (pid == 0) {
		if (dup2(fd, 0) < 0)
			die();
		close(fd);
		reply(REPLY_OK, personality(0xffffffff), 0, 0);
		return;
	}
	close(fd);
	if (pid < 0)
		reply(REPLY_ERRNO, errno, 0, 0);
	else
		reply(REPLY_OK, pid, 0, 0);
}

static void run(const struct command *c, int fd)
{
	const uint64_t *a = c->arg;

	switch (c->op) {
	case OP_MMAP:
		reply_syscall(syscall(SYS_mmap, a[0], a[1], a[2], a[3], a[4], a[5]));
		break;
	case OP_MUNMAP:
		reply_syscall(syscall(SYS_munmap, a[0], a[1]));
		break;
	case OP_MPROTECT:
		reply_syscall(syscall(SYS_mprotect, a[0], a[1], a[2]));
		break;
	case OP_MREMAP:
		reply_syscall(syscall(SYS_mremap, a[0], a[1], a[2], a[3], a[4]));
		break;
	case OP_MADVISE:
		reply_syscall(syscall(SYS_madvise, a[0], a[1], a[2]));
		break;
	case OP_MEMSET:
	case OP_STORE:
	case OP_LOAD:
		guarded_access(c->op, a);
		break;
	case OP_FORK:
		do_fork(fd);
		return;
	case OP_MAPS:
		send_maps(a[0]);
		break;
	case OP_PAGES:
		send_pages(a[0], a[1]);
		break;
	default:
		reply(REPLY_ERRNO, ENOSYS, 0, 0);
	}
	if (fd >= 0)
		close(fd);
}

/* Re-executes once with ASLR off and a fixed stack limit, as setarch -R
 * would, so the layout does not depend on the caller's settings. */
static void fix_layout(char **argv, char **envp)
{
	int persona = personality(0xffffffff);
	struct rlimit stack;
	int again = 0;

	if (getrlimit(RLIMIT_STACK, &stack) == 0 &&
	    (stack.rlim_cur == RLIM_INFINITY || stack.rlim_cur > STACK_LIMIT)) {
		stack.rlim_cur = STACK_LIMIT;
		if (setrlimit(RLIMIT_STACK, &stack) == 0)
			again = 1;
	}
	if (persona != -1 && !(persona & ADDR_NO_RANDOMIZE) &&
	    personality((unsigned long)persona | ADDR_NO_RANDOMIZE) != -1)
		again = 1;
	if (again)
		execve("/proc/self/exe", argv, envp);
}

/* Pins this process (and the children it forks) to the CPU it runs on.
 * Folios wait in per-CPU LRU batches, and madvise drains only the current
 * CPU's: a process that moved between MADV_FREE and MADV_PAGEOUT would see
 * some folios not on the LRU yet, and reclaim would skip them at random;
 * a batch's reference would also make a write fault copy a folio it could
 * reuse (wp_can_reuse_anon_folio counts references), as cow #11 once did. */
static void stay_on_one_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

int main(int argc, char **argv, char **envp)
{
	struct sigaction sa = { 0 };
	struct command cmd;
	int fd;

	(void)argc;
	fix_layout(argv, envp);
	stay_on_one_cpu();
	open_kpage_files();
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, 0);
	sigaction(SIGBUS, &sa, 0);
	/* Children are reaped by the kernel: none lingers as a zombie. */
	signal(SIGCHLD, SIG_IGN);
	reply(REPLY_OK, personality(0xffffffff), 0, 0);
	for (;;) {
		read_command(&cmd, &fd);
		run(&cmd, fd);
	}
}
