/* The fault + MREMAP_RELOCATE_ANON move scenario as a C program: the same
 * syscalls the engine models, on the host kernel. a is 2N pages, b N pages,
 * both memset, then b moved to a + 2N with MREMAP_MAYMOVE | MREMAP_FIXED |
 * MREMAP_RELOCATE_ANON. a sits at the start of a 3N-page PROT_NONE
 * reservation, so a + 2N is free (and below TASK_SIZE) at every N.
 * A mainline kernel refuses the unknown flag (EINVAL):
 * then the program retries without it, so the kernel still does the move.
 *
 *     cc -O2 -o fault_move benchmarks/fault_move.c && ./fault_move N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_RELOCATE_ANON
#define MREMAP_RELOCATE_ANON 8 /* the series' flag (v1, June 2025) */
#endif

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	char *r = mmap(NULL, 3 * n * page, PROT_NONE, flags, -1, 0);
	if (r == MAP_FAILED)
		return perror("mmap r"), 1;
	char *a = mmap(r, 2 * n * page, prot, flags | MAP_FIXED, -1, 0);
	if (a != r)
		return perror("mmap a"), 1;
	char *b = mmap(NULL, n * page, prot, flags, -1, 0);
	if (b == MAP_FAILED)
		return perror("mmap b"), 1;
	memset(a, 'a', 2 * n * page);
	memset(b, 'b', n * page);
	int move = MREMAP_MAYMOVE | MREMAP_FIXED;
	char *c = mremap(b, n * page, n * page, move | MREMAP_RELOCATE_ANON, a + 2 * n * page);
	if (c == MAP_FAILED && errno == EINVAL)
		c = mremap(b, n * page, n * page, move, a + 2 * n * page);
	if (c != a + 2 * n * page)
		return perror("mremap"), 1;
	return 0;
}
