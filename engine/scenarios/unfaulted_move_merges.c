// Title: An unfaulted VMA moved next to its neighbour merges
// Note: A VMA that never faulted has no anon_vma and no folios, so copy_vma() is free to
// Note: give it the vm_pgoff of its new address. vma_merge_new_range() finds the faulted
// Note: neighbour compatible (is_mergeable_anon_vma() accepts a NULL anon_vma) and extends it:
// Note: the moved range joins the neighbour's anon_vma and no new VMA is made.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
memset(ptr2, 'y', 5 * page_size);
