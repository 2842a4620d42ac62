// Title: RELOCATE_ANON with a pinned folio: skipped, yet counted a success
// Note: relocate_anon_pte() skips a folio_maybe_dma_pinned() folio and carries on, as
// Note: posted (the RFC v2 changelog said it would abort). The move succeeds and merges,
// Note: but that folio keeps its old mapping and index: the invariant checker shows an
// Note: rmap walk from it can no longer find the VMA that maps it. Compare the policies.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
pin(ptr2 + 2 * page_size, page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
