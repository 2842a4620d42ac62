// Two harness tests for the web's tests: the same move with and without
// MREMAP_MUST_RELOCATE_ANON. The second expects a merge a plain mremap()
// does not give (the moved VMA keeps its faulted vm_pgoff), so it fails.
#include "kselftest_harness.h"

TEST_F(merge, relocated_move_merges)
{
	unsigned long ps = self->page_size;
	char *ptr, *ptr2;

	ptr = mmap(&self->carveout[ps], 5 * ps, PROT_READ | PROT_WRITE,
		   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(ptr, MAP_FAILED);
	ptr[0] = 'x';
	ptr2 = mmap(&self->carveout[20 * ps], 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(ptr2, MAP_FAILED);
	ptr2[0] = 'x';
	ptr2 = sys_mremap(ptr2, 5 * ps, 5 * ps,
			  MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &ptr[5 * ps]);
	ASSERT_NE(ptr2, MAP_FAILED);
	ASSERT_TRUE(find_vma_procmap(&self->procmap, ptr));
	ASSERT_EQ(self->procmap.query.vma_end, (unsigned long)ptr + 10 * ps);
}

TEST_F(merge, plain_move_merges_too)
{
	unsigned long ps = self->page_size;
	char *ptr, *ptr2;

	ptr = mmap(&self->carveout[ps], 5 * ps, PROT_READ | PROT_WRITE,
		   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(ptr, MAP_FAILED);
	ptr[0] = 'x';
	ptr2 = mmap(&self->carveout[20 * ps], 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(ptr2, MAP_FAILED);
	ptr2[0] = 'x';
	ptr2 = sys_mremap(ptr2, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * ps]);
	ASSERT_NE(ptr2, MAP_FAILED);
	ASSERT_TRUE(find_vma_procmap(&self->procmap, ptr));
	ASSERT_EQ(self->procmap.query.vma_end, (unsigned long)ptr + 10 * ps);
}

TEST_HARNESS_MAIN
