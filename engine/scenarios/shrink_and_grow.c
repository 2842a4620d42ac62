// Title: mremap() shrinks in place, grows in place, then moves to grow
// Note: Shrinking unmaps the tail (shrink_vma() -> do_vmi_munmap()). Growing into free space
// Note: right after the VMA is expand_vma_in_place() via vma_merge_extend(): same VMA, larger
// Note: vm_end. When a neighbour is in the way and MREMAP_MAYMOVE is set, expand_vma() falls
// Note: back to move_vma(): a new place found by get_unmapped_area(), and copy_vma().
char *p = mmap(NULL, 8 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 8 * page_size);
p = mremap(p, 8 * page_size, 4 * page_size, 0);
p = mremap(p, 4 * page_size, 6 * page_size, 0);
char *wall = mmap(p + 6 * page_size, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
p = mremap(p, 6 * page_size, 10 * page_size, MREMAP_MAYMOVE);
