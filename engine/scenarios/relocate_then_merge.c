// Title: RELOCATE_ANON: a faulted VMA moved next to another, relocated, merged
// Note: The v1 series (June 2025, never merged). copy_vma() first tries an ordinary
// Note: vma_merge_new_range(): the two anon_vmas differ, so it fails. The new VMA gets a
// Note: linear vm_pgoff; __anon_vma_prepare() reuses the prev VMA's anon_vma
// Note: (find_mergeable_anon_vma); relocate_anon_folios() rewrites each folio's mapping and
// Note: index; move_page_tables() moves the PTEs; vma_merge_existing_range() merges.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
