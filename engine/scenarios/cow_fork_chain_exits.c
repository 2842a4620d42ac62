// Title: After anon_vma: a deep fork chain with exits
// Note: main forks b, b forks c, b exits, c forks d, then d and c exit. Under Linux 6.18 each
// Note: level adds an anon_vma and a chain per VMA, and d reuses the anon_vma b left orphaned.
// Note: Under the COW-context proposal (a4ac1966) each mm has a context in the fork tree. b's
// Note: context outlives b, with mm NULL, while c and the folio b wrote hold it. A walk skips
// Note: it. When d and c exit and b's folio goes, the put cascade frees d, c and b's contexts.
// Note: Costs: one small context per process that ever forked into the chain and still has
// Note: referents; walks of main's folios visit every live context below main's.
// @rmap cow_context
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'm', 4 * page_size);
pid_t b = fork();
b: p[page_size] = 'b';
b: pid_t c = fork();
b: exit(0);
c: pid_t d = fork();
d: p[2 * page_size] = 'd';
d: exit(0);
c: exit(0);
