// Title: RELOCATE_ANON with MREMAP_DONTUNMAP
// Note: The series allows DONTUNMAP: the folios are relocated to the destination's
// Note: anon_vma, the page tables move, and dontunmap_complete() leaves the source VMA
// Note: mapped but empty, its anon_vma chains dropped (unlink_anon_vmas) since all of it
// Note: moved. A later touch of the source faults in fresh zeroed pages.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
char *moved = mremap(ptr2, 5 * page_size, 5 * page_size,
                     MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP | MREMAP_RELOCATE_ANON,
                     &ptr[5 * page_size]);
ptr2[0] = 'z';
