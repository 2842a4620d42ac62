// Title: After anon_vma: an unfaulted VMA takes in a faulted one, then moves
// Note: A faulted VMA moved away and back merges with the unfaulted mapping before its home.
// Note: Linux 6.18's vma_expand() gives the unfaulted target the faulted one's anon_vma
// Note: (dup_anon_vma, copied_from), so the next move keeps the pgoff the folios need. In
// Note: the COW-context proposal (a4ac1966, not a kernel anyone runs) dup_anon_vma() is an
// Note: empty stub: the merged VMA keeps anon_vma NULL while it maps the folios. copy_vma()
// Note: then takes it for unfaulted and re-bases its pgoff, and no rmap walk finds the pages
// Note: where they are. The branch has no comment there; docs/cow-context.md 2.6 point 4.
// @rmap cow_context
char *carveout = mmap(NULL, 40 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *f = mmap(&carveout[5 * page_size], 4 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(f, 'f', 4 * page_size);
char *y = mremap(f, 4 * page_size, 4 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[20 * page_size]);
char *u = mmap(&carveout[page_size], 4 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
f = mremap(y, 4 * page_size, 4 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[5 * page_size]);
char *z = mremap(u, 8 * page_size, 8 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[30 * page_size]);
