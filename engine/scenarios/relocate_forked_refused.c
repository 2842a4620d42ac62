// Title: RELOCATE_ANON after fork: refused in parent and child (EFAULT under MUST)
// Note: After fork both VMAs may map the same folios. vma_maybe_has_shared_anon_folios()
// Note: sees the child's second anon_vma_chain (a fork child) and the parent's anon_vma
// Note: with num_children 2 (a forked parent): should_relocate_anon() refuses. MUST gives
// Note: -EFAULT (patch 11's fork tests); plain RELOCATE falls back to an ordinary move.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
pid_t child = fork();
int r1 = mremap(ptr2, 5 * page_size, 5 * page_size,
                MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &ptr[5 * page_size]);
child: int r2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                       MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &ptr[5 * page_size]);
int r3 = mremap(ptr2, 5 * page_size, 5 * page_size,
                MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
