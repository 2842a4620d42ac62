// Title: mprotect splits a VMA, and mprotect back merges it
// Note: mprotect_fixup() calls vma_modify_flags(), which split_vma()s the middle page out
// Note: of a faulted VMA. Restoring PROT_WRITE runs vma_merge_existing_range(): the three
// Note: pieces share one anon_vma (is_mergeable_anon_vma) and contiguous vm_pgoff, so they
// Note: merge back into one VMA, and every folio's index still equals linear_page_index.
char *p = mmap(NULL, 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 5 * page_size);
mprotect(p + 2 * page_size, page_size, PROT_READ);
mprotect(p + 2 * page_size, page_size, PROT_READ | PROT_WRITE);
