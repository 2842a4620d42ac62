// Title: After anon_vma: MREMAP_RELOCATE_ANON under the COW-context proposal
// Note: The proposal (branch project/cow-context at a4ac1966, not a kernel anyone runs) replaces
// Note: the RELOCATE_ANON series, dropped in July 2025. Its check_mremap_params() knows only
// Note: FIXED, MAYMOVE and DONTUNMAP, so the series' flag is EINVAL, as on mainline. The plain
// Note: move that follows rewrites no folio: it records the offset in the remap tree. Compare
// Note: with rmap model anon_vma, which runs the series: there the folios are relocated and
// Note: the moved VMA merges.
// @rmap cow_context
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
int r = mremap(ptr2, 5 * page_size, 5 * page_size,
               MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
