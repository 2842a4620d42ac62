// Title: RELOCATE_ANON: an unfaulted move merges without relocating
// Note: should_relocate_anon() finds no anon_vma: nothing to relocate, and not an error
// Note: even under MREMAP_MUST_RELOCATE_ANON. copy_vma() re-bases an unfaulted VMA's
// Note: vm_pgoff to its new address, so vma_merge_new_range() merges it (case 2 of
// Note: is_mergeable_anon_vma: the faulted neighbour's anon_vma is used).
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &ptr[5 * page_size]);
