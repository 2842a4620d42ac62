// Title: MREMAP_DONTUNMAP leaves the old range mapped and empty
// Note: move_vma() with MREMAP_DONTUNMAP copies the VMA (copy_vma()) and moves its page
// Note: tables (move_page_tables()), but does not unmap the source: the old VMA stays, with no
// Note: pages, and a later write there faults in a fresh folio (do_anonymous_page()).
// Note: The moved folios keep their index and anon_vma, as in any move.
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
char *q = mremap(p, 4 * page_size, 4 * page_size, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
p[0] = 'y';
