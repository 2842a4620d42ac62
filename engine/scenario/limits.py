"""Every limit the scenario language enforces, in one place.

Scenarios come from users (the web page accepts pasted text), so each limit
keeps a hostile or mistaken input from costing unbounded time or memory. Error
messages name the constant, so a user can find the limit they hit.
"""

# Largest source accepted, in UTF-8 bytes: a whole selftest file fits with
# headroom (merge.c with the RELOCATE_ANON series' tests is 67 KB, the
# largest file of tools/testing/selftests/mm about 90 KB).
MAX_SOURCE_BYTES = 256 * 1024

# Most statements in one scenario: each one is a step the viewer renders.
MAX_STATEMENTS = 500

# Most statements in one harness file (every test, fixture and helper): the
# 6.18 merge.c has about 600, with the series' tests about 1100.
MAX_HARNESS_STATEMENTS = 10_000

# Most statements one harness test may execute, loop iterations, conditions
# and every process counted: a loop that would run longer stops here.
MAX_EXECUTED_STATEMENTS = 100_000

# Most processes alive at once, `main` included: each gets its own maps panel.
MAX_PROCESSES = 16

# Deepest expression tree (operators, parentheses, casts): pycparser parses
# recursively, so deeper nesting would exhaust Python's stack.
MAX_EXPRESSION_DEPTH = 64

# Largest value a literal or variable holds: arithmetic is on 64-bit unsigned
# integers, as addresses are, and wraps modulo 2**64.
MAX_U64 = (1 << 64) - 1
