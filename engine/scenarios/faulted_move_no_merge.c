// Title: A faulted VMA moved next to its neighbour does not merge
// Note: mremap() with MREMAP_FIXED runs move_vma(), whose copy_vma() keeps the moved VMA's
// Note: vm_pgoff and anon_vma, because its folios' index and mapping must not change.
// Note: vma_merge_new_range() then refuses: is_mergeable_anon_vma() sees two different
// Note: anon_vmas (case 3), and even one anon_vma would not do, as the moved VMA's pgoff is
// Note: not contiguous with its neighbour's. move_page_tables() moves the PTEs.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
