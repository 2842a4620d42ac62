"""The scenario parser: what it accepts, what it builds, and where it says a scenario is wrong."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scenario import ast
from engine.scenario.errors import ScenarioError
from engine.scenario.limits import (
    MAX_EXPRESSION_DEPTH,
    MAX_PROCESSES,
    MAX_SOURCE_BYTES,
    MAX_STATEMENTS,
)
from engine.scenario.parse import CALLS, parse
from tests.support.data import language_example
from tests.support.fuzz import assert_located

MAP = (
    "char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);\n"
)


def error(source: str | bytes) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse(source)
    return info.value


def only(source: str) -> ast.Statement:
    """The last statement of a scenario."""
    return parse(source).statements[-1]


def strip_positions(node: object) -> object:
    """A node as nested tuples without line/col, for comparing shapes."""
    if isinstance(node, tuple):
        return tuple(strip_positions(item) for item in node)
    if isinstance(node, ast.Num):
        return node.value
    if isinstance(node, ast.Name):
        return node.name
    if isinstance(node, ast.Unary):
        return (node.op, strip_positions(node.operand))
    if isinstance(node, ast.Binary):
        return (node.op, strip_positions(node.left), strip_positions(node.right))
    if isinstance(node, ast.Call):
        return (node.name, strip_positions(node.args))
    if isinstance(node, ast.Load):
        return ("load", strip_positions(node.address))
    if isinstance(node, ast.Store):
        return ("store", strip_positions(node.address), strip_positions(node.value))
    raise AssertionError(node)


# -- what a scenario becomes ---------------------------------------------------------------


def test_reference_example() -> None:
    scenario = parse(language_example())
    statements = scenario.statements
    assert [s.line for s in statements] == [2, 3, 5, 7, 8, 9]
    assert [s.col for s in statements] == [1, 1, 1, 1, 1, 1]
    assert [s.target for s in statements] == ["carveout", "ptr", "ptr2", None, None, "ptr2"]
    assert {s.process for s in statements} == {"main"}
    assert scenario.processes == ("main",)
    assert statements[1].source == (
        "char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE, "
        "MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);"
    )
    mremap = statements[5].action
    assert isinstance(mremap, ast.Call)
    assert (mremap.name, mremap.line, mremap.col) == ("mremap", 9, 8)
    assert strip_positions(mremap.args) == (
        "ptr2",
        ("*", 5, "page_size"),
        ("*", 5, "page_size"),
        ("|", ("|", "MREMAP_MAYMOVE", "MREMAP_FIXED"), "MREMAP_RELOCATE_ANON"),
        ("+", "ptr", ("*", 5, "page_size")),
    )


def test_empty_sources_are_empty_scenarios() -> None:
    for source in ("", "\n\n", "// nothing\n/* at\n all */", " ; ;\n;"):
        scenario = parse(source)
        assert scenario.statements == ()
        assert scenario.processes == ("main",)


def test_statement_kinds() -> None:
    statements = parse(
        MAP
        + "munmap(p, page_size);\n"
        + "void *q = p + 2 * page_size;\n"
        + "p[3] = 'x';\n"
        + "*p = 1;\n"
        + "*(p + 5) = 'c';\n"
        + "char c = *p;\n"
        + "c = p[7];\n"
        + "p[0];\n"
    ).statements
    kinds = [(s.target, strip_positions(s.action)) for s in statements[1:]]
    assert kinds == [
        (None, ("munmap", ("p", "page_size"))),
        ("q", ("+", "p", ("*", 2, "page_size"))),
        (None, ("store", ("+", "p", 3), 120)),
        (None, ("store", "p", 1)),
        (None, ("store", ("+", "p", 5), 99)),
        ("c", ("load", "p")),
        ("c", ("load", ("+", "p", 7))),
        (None, ("load", ("+", "p", 0))),
    ]


def test_element_address_is_unscaled_addition() -> None:
    statement = only(MAP + "int *q = &((int *)p)[3];")
    assert strip_positions(statement.action) == ("+", "p", 3)


def test_casts_are_ignored() -> None:
    statements = parse(
        MAP
        + "(void)munmap((void *)p, (size_t)page_size);\n"
        + "unsigned long x = (unsigned long)(char *)p + 1;\n"
        + "char c = *(volatile char *)p;\n"
        + "((char *)p)[1] = (char)300;\n"
    ).statements
    assert [strip_positions(s.action) for s in statements[1:]] == [
        ("munmap", ("p", "page_size")),
        ("+", "p", 1),
        ("load", "p"),
        ("store", ("+", "p", 1), 300),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'x'", 120),
        ("'\\0'", 0),
        ("'\\n'", 10),
        ("'\\\\'", 92),
        ("'\\''", 39),
        ("'\"'", 34),
        ("'\\x41'", 65),
        ("'\\101'", 65),
        ("'\\xff'", 255),
        ("';'", 59),
        ("'/'", 47),
        ("0", 0),
        ("42", 42),
        ("0x1000", 4096),
        ("0X1f", 31),
        ("010", 8),
        ("0b101", 5),
        ("4096u", 4096),
        ("4096UL", 4096),
        ("7lu", 7),
        ("1ull", 1),
        ("0xffffffffffffffff", (1 << 64) - 1),
        ("18446744073709551615", (1 << 64) - 1),
        ("0x00000000000000000000001", 1),
    ],
)
def test_literals(literal: str, value: int) -> None:
    action = only(f"x = {literal};").action
    assert action == ast.Num(value, 1, 5)


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("'ab'", "character literal 'ab' must hold one character"),
        ("''", "syntax error"),
        ("'\\x100'", "character literal '\\x100' is not one byte"),
        ("'\\777'", "character literal '\\777' is not one byte"),
        ("L'a'", "only plain character literals like 'x' are supported"),
        ('"str"', "string literals are not supported"),
        ("1.5", "invalid number '1.5': only integers are supported"),
        ("1e5", "invalid number '1e5': only integers are supported"),
        ("18446744073709551616", "integer literal '18446744073709551616' does not fit in 64 bits"),
        ("0x1" + "0" * 16, "does not fit in 64 bits"),
        ("9" * 5000, "does not fit in 64 bits"),
    ],
)
def test_bad_literals(literal: str, message: str) -> None:
    err = error(f"x = {literal};")
    assert (err.line, err.col) == (1, 5)
    assert message in err.message


def test_labels_choose_the_process() -> None:
    scenario = parse(
        MAP
        + "pid_t child = fork();\n"
        + "child: memset(p, 'z', page_size);\n"
        + "main: p[0] = 1;\n"
        + "child: pid_t grandchild = fork();\n"
        + "grandchild /* a comment */ :\n"
        + "    munmap(p, page_size);\n"
    )
    statements = scenario.statements
    assert [s.process for s in statements] == [
        "main",
        "main",
        "child",
        "main",
        "child",
        "grandchild",
    ]
    fork, memset, store, grandfork, munmap = statements[1:]
    assert (fork.target, fork.creates) == ("child", "child")
    assert (memset.line, memset.col, memset.source) == (3, 8, "memset(p, 'z', page_size);")
    assert (store.line, store.col, store.source) == (4, 7, "p[0] = 1;")
    assert (grandfork.line, grandfork.col) == (5, 8)
    assert (grandfork.target, grandfork.creates) == ("grandchild", "grandchild")
    assert grandfork.source == "pid_t grandchild = fork();"
    assert (munmap.line, munmap.col, munmap.source) == (7, 5, "munmap(p, page_size);")
    assert scenario.processes == ("main", "child", "grandchild")


def test_unassigned_forks_are_numbered() -> None:
    scenario = parse("fork();\npid_t child2 = fork();\nchild1: fork();\n(void)fork();")
    assert [s.creates for s in scenario.statements] == ["child1", "child2", "child3", "child4"]
    assert [s.process for s in scenario.statements] == ["main", "main", "child1", "main"]
    assert scenario.processes == ("main", "child1", "child2", "child3", "child4")


def test_source_text_is_collapsed_without_comments() -> None:
    statement = only("x = 1 +   /* one */\n\t2   // two\n ;")
    assert statement.source == "x = 1 + 2 ;"
    assert (statement.line, statement.col) == (1, 1)


def test_call_table_arities_are_checked() -> None:
    for name, counts in CALLS.items():
        for count in range(7):
            args = ", ".join(["0"] * count)
            source = f"{name}({args});"
            if count in counts:
                assert strip_positions(only(source).action) == (name, (0,) * count)
            else:
                assert error(source).col == 1


# -- where the errors are ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "col", "message"),
    [
        ("x = 1;\ny = x + z;", 2, 9, "unknown identifier 'z'"),
        ("x = x + 1;", 1, 5, "unknown identifier 'x'"),
        (MAP + "  q = mmapp(p, 1);", 2, 7, "unknown call 'mmapp'"),
        ("munmap(0);", 1, 1, "'munmap' takes 2 arguments, not 1"),
        ("x = mremap(0, 0, 0);", 1, 5, "'mremap' takes 4 or 5 arguments, not 3"),
        ("pid_t c = fork(1);", 1, 11, "'fork' takes no arguments, not 1"),
        ("x = 1 + fork();", 1, 9, "a call must be a statement of its own"),
        ("munmap(fork(), 1);", 1, 8, "a call must be a statement of its own"),
        (MAP + "p[0] = munmap(p, 1);", 2, 8, "a call must be a statement of its own"),
        (MAP + "x = 1 + p[2];", 2, 9, "a memory read must be"),
        (MAP + "p[0] = *p;", 2, 8, "a memory read must be"),
        (MAP + "x = p[p[1]];", 2, 7, "a memory read must be"),
        ("x = 1;\nx = x == 2;", 2, 7, "unsupported operator '=='"),
        ("x = 1;\nx = x &&  (x);", 2, 7, "unsupported operator '&&'"),
        ("x = 1;\nx = !x;", 2, 5, "unsupported operator '!'"),
        ("x = 1;\nx++;", 2, 1, "unsupported operator '++'"),
        ("x = 1;\nx += 2;", 2, 3, "unsupported operator '+='"),
        ("x = 1;\nx = &x;", 2, 5, "'&' only takes an element's address"),
        ("x = 1;\nx = x ? 1 : 2;", 2, 5, "unsupported expression"),
        ("x = 1;\nx;", 2, 1, "this statement does nothing"),
        ("x = ;", 1, 5, "syntax error: invalid expression"),
        ("munmap(0 1);", 1, 10, "syntax error before '1'"),
        ("x = 1\ny = 2;", 2, 1, "syntax error before 'y'"),
        ("x = 1;\n  y = 2", 2, 8, "expected ';' at the end of the statement"),
        ("x = 1; /* never\n closed", 1, 8, "unterminated comment '/*'"),
        ("x = 1;\n{ x = 2; }", 2, 1, "'{' is not supported"),
        ("x = 1; }", 1, 8, "'}' is not supported"),
        ("x = 1;\n#define Y 2\n", 2, 1, "preprocessor directives are not supported"),
        ("char *p;", 1, 7, "'p' is declared without a value"),
        ("int a = 1, b = 2;", 1, 12, "declare one variable per statement"),
        ("char buf[2] = 0;", 1, 6, "arrays are not supported"),
        ("int f(int);", 1, 5, "function declarations are not supported"),
        ("typedef int t;", 1, 13, "'typedef' is not supported"),
        ("x = 1;\n  if (x) x = 2;", 2, 3, "'if' is not supported"),
        ("return 0;", 1, 1, "'return' is not supported"),
        ("PAGE_SIZE = 1;", 1, 1, "'PAGE_SIZE' is a constant"),
        ("int MAP_FIXED = 1;", 1, 5, "'MAP_FIXED' is a constant"),
        ("x = 1;\n x[0] += 1;", 2, 7, "unsupported operator '+='"),
        ("x = 1;\n(x + 1) = 2;", 2, 2, "only a variable or memory"),
        ("child: x = 1;", 1, 1, "unknown process 'child'"),
        ("x = 1;\n  child: pid_t child = fork();", 2, 3, "unknown process 'child'"),
        ("pid_t c = fork();\npid_t c = fork();", 2, 11, "process 'c' already exists"),
        ("pid_t main = fork();", 1, 14, "process 'main' already exists"),
        ("a: b: x = 1;", 1, 4, "a statement takes one process label"),
        ("x = 1;\n main: ;", 2, 2, "label 'main' has no statement"),
        ("x = 1;\n main:", 2, 2, "label 'main' has no statement"),
        ("x = 1;\nx = \x00;", 2, 5, "syntax error: illegal character"),
        ("x = 1;\nx = 2 @ 3;", 2, 7, "syntax error"),
        (b"x = 1;\nx = '\xff';", 2, 6, "not UTF-8 text: byte 0xff"),
    ],
)
def test_error_positions(source: str | bytes, line: int, col: int, message: str) -> None:
    err = error(source)
    assert (err.line, err.col) == (line, col), str(err)
    assert message in err.message
    assert str(err) == f"line {line}, column {col}: {err.message}"


def test_comments_keep_columns() -> None:
    err = error("/* one */ x = /* two */ y; // three")
    assert (err.line, err.col, err.message) == (1, 25, "unknown identifier 'y'")
    err = error("/* one\n   two */ x = 1; // ;;\n  /* // */ memset(x, '/', /*,*/ w);")
    assert (err.line, err.col) == (3, 33)
    err = error("x = ';'; // ;\n/* '\n */ x = '*' + q;")
    assert (err.line, err.col) == (3, 15)


# -- directives ----------------------------------------------------------------------------


def test_directives_choose_the_policy_and_the_rmap_model() -> None:
    scenario = parse("// Title: t\n// @policy split\n" + MAP + "  //\t@rmap   cow_context \r\n")
    assert (scenario.policy, scenario.rmap_model) == ("split", "cow_context")
    assert [s.line for s in scenario.statements] == [3]
    plain = parse(MAP)
    assert (plain.policy, plain.rmap_model) == (None, None)
    assert parse("// @policy pinned_aborts\n").policy == "pinned_aborts"  # no statements


def test_other_comments_are_not_directives() -> None:
    source = (
        "// @policysplit\n// @todo split\n/* @policy split */\n/*\n// @rmap cow_context\n*/\n"
        "// see @policy split\n" + MAP
    )
    scenario = parse(source)
    assert (scenario.policy, scenario.rmap_model) == (None, None)
    assert len(scenario.statements) == 1


@pytest.mark.parametrize(
    ("source", "line", "col", "message"),
    [
        (
            MAP + "// @policy spilt\n",
            2,
            12,
            "unknown RELOCATE_ANON policy 'spilt': // @policy takes one of posted, pinned_aborts,",
        ),
        (
            "  // @rmap cow\n" + MAP,
            1,
            12,
            "unknown rmap model 'cow': // @rmap takes one of anon_vma, cow_context",
        ),
        ("// @rmap\n", 1, 9, "// @rmap needs a name: one of anon_vma, cow_context"),
        ("// @policy split isolate\n", 1, 18, "unexpected 'isolate' after the name"),
        ("// @policy=split\n", 1, 11, "unknown RELOCATE_ANON policy '=split'"),
        (
            "// @policy split\n" + MAP + "\t// @policy posted\n",
            3,
            2,
            "a second // @policy line (the first is line 1): a file takes one",
        ),
        ("// @rmap anon_vma\n// @rmap anon_vma\n", 2, 1, "a second // @rmap line"),
    ],
)
def test_directive_errors(source: str, line: int, col: int, message: str) -> None:
    err = error(source)
    assert (err.line, err.col) == (line, col), str(err)
    assert message in err.message


def test_division_position_is_the_operator() -> None:
    statement = only("x = 1;\n\ty = x   /\t(0);")
    assert isinstance(statement.action, ast.Binary)
    assert (statement.action.line, statement.action.col) == (2, 10)


# -- limits --------------------------------------------------------------------------------


def test_source_size_limit() -> None:
    line = "x = 1;" + " " * 57 + "\n"
    assert len(line) == 64
    fits = line * (MAX_SOURCE_BYTES // 64)
    assert len(parse(fits.replace("x = 1;", ";", MAX_SOURCE_BYTES // 64 - 1)).statements) == 1
    err = error(fits + "y")
    assert (err.line, err.col) == (MAX_SOURCE_BYTES // 64 + 1, 1)
    assert f"MAX_SOURCE_BYTES = {MAX_SOURCE_BYTES}" in err.message
    assert "MAX_SOURCE_BYTES" in error((fits + "y").encode()).message
    # Counted in UTF-8 bytes, not characters.
    assert "MAX_SOURCE_BYTES" in error("// " + "é" * (MAX_SOURCE_BYTES // 2)).message


def test_statement_limit() -> None:
    source = "x = 1;\n" * MAX_STATEMENTS
    assert len(parse(source).statements) == MAX_STATEMENTS
    err = error(source + "  x = 2;")
    assert (err.line, err.col) == (MAX_STATEMENTS + 1, 3)
    assert "MAX_STATEMENTS = 500" in err.message


def test_process_limit() -> None:
    source = "".join(f"pid_t c{n} = fork();\n" for n in range(1, MAX_PROCESSES))
    assert len(parse(source).processes) == MAX_PROCESSES
    err = error(source + "c1: fork();")
    assert (err.line, err.col) == (MAX_PROCESSES, 5)
    assert "MAX_PROCESSES = 16" in err.message


def test_expression_depth_limit() -> None:
    deep = MAX_EXPRESSION_DEPTH - 2
    assert only("x = " + "(" * deep + "1" + ")" * deep + ";").action == ast.Num(1, 1, 5 + deep)
    err = error("x = " + "(" * (MAX_EXPRESSION_DEPTH + 1) + "1" + ")" * 65 + ";")
    assert (err.line, err.col) == (1, 5 + MAX_EXPRESSION_DEPTH)
    assert "MAX_EXPRESSION_DEPTH = 64" in err.message
    err = error("x = 1" + " + 1" * MAX_EXPRESSION_DEPTH + ";")
    assert (err.line, err.col) == (1, 5)
    assert "MAX_EXPRESSION_DEPTH" in err.message
    for chain in ("- " * 5000, "~" * 20000, "-~" * 300):
        err = error("x = 1;\nx = " + chain + "1;")
        assert err.line == 2
        assert "MAX_EXPRESSION_DEPTH" in err.message


def test_parse_is_fast() -> None:
    source = MAP + (
        "x = mremap(p, 2 * page_size, 4 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,"
        " &p[8 * page_size]);\n"
    ) * (MAX_STATEMENTS - 1)
    began = time.perf_counter()
    assert len(parse(source).statements) == MAX_STATEMENTS
    assert time.perf_counter() - began < 1.0


# -- nothing but ScenarioError, ever -------------------------------------------------------


def parses_or_scenario_error(source: str | bytes) -> None:
    """parse() succeeds, or its error is at a line and column inside the text."""
    try:
        parse(source)
    except ScenarioError as err:
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        assert_located(text, err.line, err.col)


_C_PIECES = st.sampled_from(
    [
        "x", "p", "child", "main", ":", ";", "=", "(", ")", "[", "]", "*", "&", "-", "~", "+",
        "/", "%", "<<", "|", "0", "1", "0x10", "'a'", "'\\0'", "'", '"', "mmap", "fork",
        "munmap", "char", "pid_t", "(char *)", ",", " ", "\n", "//", "/*", "*/", "NULL",
        "page_size", "{", "#", "?", "!", "\t", "\x00", "é",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=200))
def test_fuzz_printable(source: str) -> None:
    parses_or_scenario_error(source)


@settings(max_examples=300, deadline=None)
@given(st.lists(_C_PIECES, max_size=60).map("".join))
def test_fuzz_c_like(source: str) -> None:
    parses_or_scenario_error(source)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes(source: bytes) -> None:
    parses_or_scenario_error(source)


def test_windows_and_old_mac_newlines() -> None:
    for newline in ("\r\n", "\r"):
        err = error(f"x = 1;{newline}  y = z;")
        assert (err.line, err.col) == (2, 7)
        err = error(f"x = 1;{newline}  ".encode() + b"\x80")  # before the text is decoded
        assert (err.line, err.col) == (2, 3)
