// Title: After anon_vma: moved away and back, the pieces stay apart
// Note: Three faulted VMAs moved side by side, then away together. Linux 6.18 refuses each
// Note: merge twice over: different anon_vmas, and vm_pgoffs that do not line up. The
// Note: COW-context proposal (branch project/cow-context at a4ac1966, not a kernel anyone
// Note: runs) drops the anon_vma rule (is_mergeable_anon_vma() is always true) but keeps the
// Note: pgoff rule, so the pieces still do not merge; each move records its offset in the
// Note: mm's remap tree. What it gives: no anon_vma or chain per VMA, no folio rewritten.
// Note: What it costs: remap entries (some left stale by the unmaps), and a walk per folio
// Note: that tries each offset.
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
a = mremap(a, 9 * page_size, 9 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[15 * page_size]);
