// Title: The split that fails: a GUP-fast pin breaks split_folio() mid-walk
// Note: Patch 03 splits a PTE-mapped large folio that the range covers only in part:
// Note: relocate_anon_pte() takes a reference, drops the PTE lock and calls split_folio(),
// Note: which write-locks the folio's old anon_vma and wants the refcount to be the mapcount
// Note: plus that one reference. A GUP-fast pin landing in that window (after the walk's
// Note: pin check) makes it fail with -EAGAIN; `if (err || !state->ptep) return 0;` fails
// Note: the walk. The undo re-walks the range: the four small folios go back, the large
// Note: folio, pinned now, is skipped PTE by PTE. The new VMA is unmapped and the move redone
// Note: plainly (MUST: -EFAULT). Switch the policy in the compare view: the split fails
// Note: under every one. This is the failure that ended the series: in his respin the author
// Note: split folios up front, yet a split became unavoidable midway, where a racing GUP-fast
// Note: reference breaks it; he called the approach "far too fragile" (7 July 2025).
char *area = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *buf = mmap(area + (2 << 20) - 4 * page_size, (2 << 20) + 4 * page_size,
                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(buf, (2 << 20) + 4 * page_size, MADV_HUGEPAGE);
memset(buf, 's', 4 * page_size);
buf[4 * page_size] = 'h';
mprotect(buf + 4 * page_size + (1 << 20), page_size, PROT_READ);
mprotect(buf + 4 * page_size + (1 << 20), page_size, PROT_READ | PROT_WRITE);
gup_fast_pin(buf + 4 * page_size, 3);
char *moved = mremap(buf, 4 * page_size + (1 << 20), 4 * page_size + (1 << 20),
                     MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (5 << 20));
