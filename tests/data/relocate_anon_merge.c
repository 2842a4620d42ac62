// The merge cases MREMAP_RELOCATE_ANON (v1, June 2025) was posted to make
// possible, as kselftest harness tests of our own (the series' patch 07
// covers the same ten cases in merge.c). No FIXTURE: TEST_F(merge, ...)
// gets merge.c's, a 30-page PROT_NONE carve-out and the procmap.
//
// In each test the VMA that moves ("mover") is faulted somewhere else
// first, so its vm_pgoff and anon_vma are not the destination's: a plain
// mremap() leaves it apart from its new neighbours, and only the
// relocation (MUST, so a fallback would fail the test) lets it merge.

#include "kselftest_harness.h"

TEST_F(merge, relocate_next_to_unfaulted_before_it)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_EQ(moved, left + 5 * ps);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, left));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)left);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)left + 10 * ps);
}

TEST_F(merge, relocate_next_to_unfaulted_after_it)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *right, *mover, *moved;

	right = mmap(area + 10 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[ps] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, right - 5 * ps);
	ASSERT_EQ(moved, right - 5 * ps);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, right));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)moved);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 5 * ps);
}

TEST_F(merge, relocate_into_gap_between_unfaulted)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *right, *mover, *moved;

	left = mmap(area + 2 * ps, 4 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	right = mmap(area + 9 * ps, 4 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	mover = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[2 * ps] = 1;

	moved = sys_mremap(mover, 3 * ps, 3 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 4 * ps);
	ASSERT_NE(moved, MAP_FAILED);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, right));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)left);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 4 * ps);
}

TEST_F(merge, relocate_next_to_faulted_before_it)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	left[0] = 1;
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_EQ(moved, left + 5 * ps);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, moved));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)left);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)left + 10 * ps);
}

TEST_F(merge, relocate_next_to_faulted_after_it)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *right, *mover, *moved;

	right = mmap(area + 10 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	right[4 * ps] = 1;
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, right - 5 * ps);
	ASSERT_EQ(moved, right - 5 * ps);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, moved));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)moved);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 5 * ps);
}

TEST_F(merge, relocate_between_faulted_and_unfaulted)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *right, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	right = mmap(area + 11 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	left[0] = 1;
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_NE(moved, MAP_FAILED);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, left));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)left);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 5 * ps);
}

TEST_F(merge, relocate_between_unfaulted_and_faulted)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *right, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	right = mmap(area + 11 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	right[0] = 1;
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_NE(moved, MAP_FAILED);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, right));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)left);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 5 * ps);
}

/*
 * Both neighbours faulted, each with its own anon_vma: __anon_vma_prepare()
 * can reuse only one of them, and tries the next VMA first, so the mover
 * merges with the VMA after it and the one before stays apart.
 */
TEST_F(merge, relocate_between_two_faulted_joins_the_next)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *right, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	right = mmap(area + 11 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(right, MAP_FAILED);
	left[0] = 1;
	right[0] = 1;
	mover = mmap(NULL, 5 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_NE(moved, MAP_FAILED);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, left));
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)moved);
	ASSERT_TRUE(find_vma_procmap(&self->procmap, moved));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)moved);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)right + 5 * ps);
}

/*
 * The two neighbours are what is left of one faulted VMA: one anon_vma,
 * linear page offsets. The mover fills the hole and all three merge.
 */
TEST_F(merge, relocate_into_hole_of_one_faulted_vma)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *whole, *mover, *moved;

	whole = mmap(area + 2 * ps, 12 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(whole, MAP_FAILED);
	whole[0] = 1;
	whole[11 * ps] = 1;
	ASSERT_EQ(munmap(whole + 4 * ps, 4 * ps), 0);
	/* Not mmap(NULL, ...): the hole is the highest free gap, it would go there. */
	mover = mmap(area + 20 * ps, 4 * ps, PROT_READ | PROT_WRITE,
		     MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[3 * ps] = 1;

	moved = sys_mremap(mover, 4 * ps, 4 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, whole + 4 * ps);
	ASSERT_EQ(moved, whole + 4 * ps);

	ASSERT_TRUE(find_vma_procmap(&self->procmap, moved));
	EXPECT_EQ(self->procmap.query.vma_start, (unsigned long)whole);
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)whole + 12 * ps);
}

/*
 * Protections differ, so the move cannot merge; the relocated VMA keeps
 * its linear page offset and its neighbour's anon_vma, so making the
 * protections equal afterwards merges it.
 */
TEST_F(merge, relocate_then_mprotect_merges)
{
	unsigned long ps = self->page_size;
	char *area = self->carveout;
	char *left, *mover, *moved;

	left = mmap(area + ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(left, MAP_FAILED);
	left[0] = 1;
	mover = mmap(area + 20 * ps, 5 * ps, PROT_READ | PROT_WRITE,
		    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
	ASSERT_NE(mover, MAP_FAILED);
	mover[0] = 1;
	ASSERT_EQ(mprotect(mover, 5 * ps, PROT_READ), 0);

	moved = sys_mremap(mover, 5 * ps, 5 * ps, MREMAP_MAYMOVE | MREMAP_FIXED |
			   MREMAP_MUST_RELOCATE_ANON, left + 5 * ps);
	ASSERT_EQ(moved, left + 5 * ps);
	ASSERT_TRUE(find_vma_procmap(&self->procmap, left));
	ASSERT_EQ(self->procmap.query.vma_end, (unsigned long)moved);

	ASSERT_EQ(mprotect(moved, 5 * ps, PROT_READ | PROT_WRITE), 0);
	ASSERT_TRUE(find_vma_procmap(&self->procmap, left));
	EXPECT_EQ(self->procmap.query.vma_end, (unsigned long)left + 10 * ps);
}

TEST_HARNESS_MAIN
