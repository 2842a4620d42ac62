// Title: RELOCATE_ANON over a swap entry: skipped as posted
// Note: relocate_anon_pte() skips every !pte_present() entry: swap and migration entries
// Note: are passed over (David Hildenbrand: "you cannot simply skip" them). The page comes
// Note: back through do_swap_page(), which gives the new folio the faulting VMA's anon_vma
// Note: and linear index: this scenario shows what the skip leaves until then.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
swapout(ptr2 + page_size, page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
ptr2[0] = 'z';
ptr[6 * page_size] = 'z';
