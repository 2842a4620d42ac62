// Title: Away and back, repeatedly: VMAs and anon_vmas with and without the flag
// Note: Each plain move of a faulted piece keeps its vm_pgoff, so pieces moved elsewhere never
// Note: merge and every piece keeps its anon_vma_chains. With MREMAP_RELOCATE_ANON each moved
// Note: piece is relocated and merged: compare the VMA, anon_vma and anon_vma_chain counts
// Note: (the metadata the series set out to cut) in the compare view.
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
b = mremap(b, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &carveout[4 * page_size]);
c = mremap(c, 3 * page_size, 3 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &carveout[7 * page_size]);
a = mremap(a, 9 * page_size, 9 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &carveout[15 * page_size]);
