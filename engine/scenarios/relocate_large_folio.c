// Title: RELOCATE_ANON and large folios: moved whole, split, or the walk fails
// Note: Patch 03. A PMD-mapped THP fully inside the range and 2 MiB aligned on both sides
// Note: is relocated whole (relocate_anon_pmd). A THP the range covers only partly makes the
// Note: walk fail (extent != HPAGE_PMD_SIZE): undo, unmap the new VMA, plain move. A
// Note: PTE-mapped large folio straddling the range end is split (split_folio, the PTE lock
// Note: dropped) when its anon_vma root differs from the new VMA's; when it is the same, the
// Note: split would take the lock the walk holds, so the walk fails instead.
char *area = mmap(NULL, 20 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *thp = mmap(area + (2 << 20), 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(thp, 2 << 20, MADV_HUGEPAGE);
thp[0] = 'h';
char *moved = mremap(thp, 2 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (6 << 20));
char *half = mremap(moved, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area);
char *thp2 = mmap(area + (10 << 20), 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(thp2, 2 << 20, MADV_HUGEPAGE);
thp2[0] = 'h';
mprotect(thp2 + (1 << 20), page_size, PROT_READ);
mprotect(thp2 + (1 << 20), page_size, PROT_READ | PROT_WRITE);
char *split = mremap(thp2, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (14 << 20));
char *thp3 = mmap(area + (16 << 20), 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(thp3, 2 << 20, MADV_HUGEPAGE);
thp3[0] = 'h';
mprotect(thp3 + (1 << 20), page_size, PROT_READ);
mprotect(thp3 + (1 << 20), page_size, PROT_READ | PROT_WRITE);
char *fails = mremap(thp3, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, thp3 + (2 << 20));
