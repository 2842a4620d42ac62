// Title: The undo can fail: a GUP-fast pin lands during a failing relocation
// Note: David Hildenbrand: "You'd assume this cannot fail, but I think it can: imagine
// Note: concurrent GUP-fast". The walk relocates page 0, then fails on a pinned page (the
// Note: pinned_aborts policy, as the changelog describes); meanwhile a GUP-fast pin lands on
// Note: page 0. The undo walk skips the now-pinned folio: it keeps the new anon_vma, which is
// Note: freed with the new VMA. Compare with the split, isolate and no_pin_check policies.
// @policy pinned_aborts
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
pin(ptr2 + 3 * page_size, page_size);
gup_fast_pin(ptr2, 2);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &carveout[10 * page_size]);
