// A faulted VMA moved next to its old neighbour: merge, or not?
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(ptr, 'x', 5 * page_size);
memset(ptr2, 'y', 5 * page_size);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &ptr[5 * page_size]);
