// Title: One mremap() moves several VMAs
// Note: Since Linux 6.17 a MREMAP_FIXED move may span more than one VMA: remap_move()
// Note: walks the range and calls move_vma() for each VMA in it, each through copy_vma()
// Note: and move_page_tables(). check_mremap_params() still refuses a resize of such a range.
// Note: The middle VMA differs in vm_flags (made by mprotect_fixup()), so the three stay three.
char *carveout = mmap(NULL, 40 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *p = mmap(&carveout[page_size], 9 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(p, 'x', 9 * page_size);
mprotect(p + 3 * page_size, 3 * page_size, PROT_READ);
char *q = mremap(p, 9 * page_size, 9 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
                 &carveout[25 * page_size]);
