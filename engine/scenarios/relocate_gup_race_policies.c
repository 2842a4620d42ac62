// Title: A pinned folio in the walk: skipped, aborted, split or moved, by policy
// Note: The same move under the posted code (skip the pinned folio, count a success), the
// Note: changelog's abort, Harry Yoo's split at the failure, and David Hildenbrand's "just
// Note: allow moving these" (no_pin_check). Switch the policy in the compare view; the
// Note: invariant checker says which leaves a folio rmap cannot find.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
gup_fast_pin(ptr2 + 2 * page_size, 1);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
