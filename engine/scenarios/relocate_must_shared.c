// Title: MREMAP_MUST_RELOCATE_ANON on MAP_SHARED memory: EFAULT
// Note: A MAP_SHARED anonymous mapping is shmem: vma_is_anonymous() is false, so
// Note: should_relocate_anon() refuses; under MUST that is fatal and mremap() returns
// Note: -EFAULT before copy_vma() runs. Without MUST it is an ordinary move.
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *shared = mmap(&carveout[10 * page_size], 4 * page_size, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(shared, 's', 4 * page_size);
char *r1 = mremap(shared, 4 * page_size, 4 * page_size,
                  MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &carveout[20 * page_size]);
char *r2 = mremap(shared, 4 * page_size, 4 * page_size,
                  MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, &carveout[20 * page_size]);
