// Title: After anon_vma: moved pieces stay apart under both rmap models
// Note: Three faulted VMAs moved side by side. Linux 6.18 refuses each merge twice over:
// Note: different anon_vmas and vm_pgoffs that do not line up. The COW-context proposal
// Note: (branch project/cow-context at a4ac1966, not a kernel anyone runs) drops the anon_vma
// Note: rule, since is_mergeable_anon_vma() is always true, but keeps the pgoff rule. So the
// Note: pieces still do not merge, and each moved piece records its offset in the mm's remap
// Note: tree. What it gives: no anon_vma or chain per VMA, and no folio rewritten. What it
// Note: costs: a remap entry per moved range, and an rmap walk that tries each offset.
// @rmap cow_context
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *a = mmap(&carveout[1 * page_size], 3 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *b = mmap(&carveout[10 * page_size], 3 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *c = mmap(&carveout[20 * page_size], 3 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(a, 'a', 3 * page_size);
memset(b, 'b', 3 * page_size);
memset(c, 'c', 3 * page_size);
b = mremap(b, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[4 * page_size]);
c = mremap(c, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[7 * page_size]);
