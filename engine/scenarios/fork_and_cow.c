// Title: fork() and copy-on-write
// Note: dup_mmap() copies every VMA; anon_vma_fork() gives the child's VMA its own anon_vma,
// Note: a child of the parent's (anon_vma_clone() chains it to the parent's too), so rmap
// Note: still finds the shared folios from both processes. A write in the child takes
// Note: do_wp_page() -> wp_page_copy(): a new folio in the child's anon_vma. The parent's
// Note: write then finds its folio mapped once and reuses it (wp_can_reuse_anon_folio).
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
pid_t child = fork();
child: p[page_size] = 'c';
p[page_size] = 'p';
