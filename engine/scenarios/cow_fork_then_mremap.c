// Title: After anon_vma: fork, then mremap() in the child
// Note: Under Linux 6.18 the child's VMA is chained to the parent's anon_vma and its own. A
// Note: fresh mapping next to it does not merge (a fork child), and a walk of a shared folio
// Note: is one interval-tree query. Under the COW-context proposal (a4ac1966) the child's
// Note: context joins the parent's in the fork tree. The fresh neighbour merges, since the
// Note: proposal has no fork-child rule. The child's move records its offset in the child's
// Note: remap tree. A shared folio's walk tries the parent's offset 0, then the child's
// Note: offset 0 and its recorded offset. The page the child writes is exclusive, and its
// Note: walk stops early, as coded, before the offset that finds it (unfinished in the proposal).
// @rmap cow_context
char *carveout = mmap(NULL, 40 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *p = mmap(&carveout[page_size], 4 * page_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(p, 'p', 4 * page_size);
pid_t child = fork();
child: char *n = mmap(&p[4 * page_size], 2 * page_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
child: char *q = mremap(p, 4 * page_size, 4 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
                        &carveout[20 * page_size]);
child: q[page_size] = 'c';
