// Title: A large folio the walk meets mid-folio: wrong index, PTEs skipped
// Note: Patch 03's relocate_anon_pte() aligns the current PTE's address down to the folio
// Note: size (is_thp_fully_spanned), takes the folio's new index from that PTE's address and
// Note: consumes folio_nr_pages() PTEs. A plain move by 1 MiB leaves this THP PTE-mapped and
// Note: not 2 MiB aligned, across two page tables. The relocating move meets it at its head
// Note: in one table (VM_WARN_ON_ONCE: not aligned) and at its page 256 in the next: the
// Note: index is set 256 pages off, and the 512 PTEs consumed from there run past the folio
// Note: over four small folios, which keep the old anon_vma. The invariant checker shows both.
char *area = mmap(NULL, 32 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *buf = mmap(area + (2 << 20), 6 << 20, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(buf, 6 << 20, MADV_HUGEPAGE);
buf[2 << 20] = 'h';
buf = mremap(buf, 6 << 20, 6 << 20, MREMAP_MAYMOVE | MREMAP_FIXED, area + (11 << 20));
memset(buf + (4 << 20), 's', 4 * page_size);
char *moved = mremap(buf, 6 << 20, 6 << 20,
                     MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (24 << 20));
