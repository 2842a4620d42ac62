// Title: Moved away and back again: the pieces merge
// Note: Moving two pages out of a faulted VMA split_vma()s it in three; move_vma() and
// Note: copy_vma() carry the piece's vm_pgoff and anon_vma to the new place, and
// Note: move_page_tables() takes the PTEs along. Moved back to where it came from, the piece
// Note: has the pgoff its neighbours expect, so vma_merge_new_range() merges all three again.
char *carveout = mmap(NULL, 40 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *p = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(p, 'x', 10 * page_size);
char *q = mremap(p + 4 * page_size, 2 * page_size, 2 * page_size,
                 MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[25 * page_size]);
q = mremap(q, 2 * page_size, 2 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, p + 4 * page_size);
