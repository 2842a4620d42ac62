// Title: RELOCATE_ANON and large folios: a THP moved whole, a THP split
// Note: Patch 03: a PMD-mapped THP fully inside the range and 2 MiB aligned on both sides
// Note: is relocated whole (relocate_anon_pmd); one the range only partly covers makes the
// Note: walk fail (extent != HPAGE_PMD_SIZE), so relocate_anon_folios() undoes what it did,
// Note: the new VMA is unmapped and the move falls back to an ordinary one.
char *area = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *thp = mmap(area + (2 << 20), 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(thp, 2 << 20, MADV_HUGEPAGE);
thp[0] = 'h';
char *moved = mremap(thp, 2 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (4 << 20));
char *half = mremap(moved, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area);
