"""A kselftest harness file (tools/testing/selftests/mm/merge.c and the like) -> ast.HarnessFile.

The file is parsed as it is, by pycparser, as one translation unit. Only
what a C preprocessor would do is done first, in place so every line and
column stays the user's: comments and preprocessor lines are blanked (each
`#` line becomes a note), `TEST_HARNESS_MAIN` is blanked, and the first
argument of `SKIP(statement, reason)` (a statement, which no C parser takes
as an argument) becomes `0`. The harness's macros then read as K&R function
definitions: `TEST_F(merge, name) { ... }` is a function named TEST_F whose
parameters are `merge` and `name`; `FIXTURE(merge) { members; };` is one
whose body declares the members.

Inside a test, what the engine cannot run (a file, `sizeof`, a call it does
not know) becomes an ast.Unmodelled node: reaching it skips that test with
"not modelled: <what> at line:col"; the rest of the file still runs. A
source that names no harness block but uses `self->` or the ASSERT macros is
a pasted test body, run as `TEST_F(merge, pasted)` with merge.c's fixture.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, NoReturn

from pycparser import c_ast

from engine.scenario import ast, directives
from engine.scenario.errors import ScenarioError
from engine.scenario.lex import TOKEN, Lines, blank, newlines
from engine.scenario.limits import MAX_EXPRESSION_DEPTH, MAX_HARNESS_STATEMENTS
from engine.scenario.parse import (
    CALLS,
    FILENAME,
    TYPEDEF_NAMES,
    TYPEDEFS_C,
    UNSIGNED_TYPEDEFS,
    Parser,
    character_value,
    decode,
    integer_value,
    syntax_error,
    token_position,
)

# The calls a harness test may make besides the scenario language's: the
# selftests' helpers (vm_util.h) and the libc calls merge.c makes, each with
# the argument counts it takes. engine.scenario.machine gives their meaning.
HARNESS_CALLS: dict[str, tuple[int, ...]] = {
    "sys_mremap": (5,),
    "psize": (0,),
    "getpagesize": (0,),
    "open_self_procmap": (1,),
    "close_procmap": (1,),
    "find_vma_procmap": (2,),
    "wait": (1,),
    "prctl": (5,),
}

CHECKS = frozenset(
    f"{kind}_{op}"
    for kind in ("ASSERT", "EXPECT")
    for op in ("EQ", "NE", "LT", "LE", "GT", "GE", "TRUE", "FALSE")
)

_BLOCKS = {"TEST_F": 2, "TEST": 1, "FIXTURE": 1, "FIXTURE_SETUP": 1, "FIXTURE_TEARDOWN": 1}
_HARNESS_LINE = re.compile(
    r"^[ \t]*(?:TEST_F|TEST|FIXTURE|FIXTURE_SETUP|FIXTURE_TEARDOWN)[ \t]*\(|^[ \t]*TEST_HARNESS_MAIN\b",
    re.MULTILINE,
)
_PASTED_BODY = re.compile(r"\bself\s*->|\b(?:ASSERT|EXPECT)_[A-Z]+\s*\(")
_UNSIGNED_WORDS = frozenset({"unsigned", "_Bool"}) | UNSIGNED_TYPEDEFS
_COMPOUND = frozenset({"+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "|=", "&=", "^="})
_BINARY = frozenset(
    {"+", "-", "*", "/", "%", "<<", ">>", "|", "&", "^"}
    | {"==", "!=", "<", "<=", ">", ">=", "&&", "||"}
)

# merge.c's fixture (6.18), for a TEST_F(merge, ...) pasted without it: the
# members and what setup and teardown do, in the harness's own words.
MERGE_FIXTURE = """\
FIXTURE(merge)
{
    unsigned int page_size;
    char *carveout;
    struct procmap_fd procmap;
};

FIXTURE_SETUP(merge)
{
    self->page_size = psize();
    self->carveout = mmap(NULL, 30 * self->page_size, PROT_NONE,
        MAP_ANON | MAP_PRIVATE, -1, 0);
    ASSERT_NE(self->carveout, MAP_FAILED);
    ASSERT_EQ(open_self_procmap(&self->procmap), 0);
}

FIXTURE_TEARDOWN(merge)
{
    ASSERT_EQ(munmap(self->carveout, 30 * self->page_size), 0);
    ASSERT_EQ(close_procmap(&self->procmap), 0);
    prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
}
"""


def is_harness(source: str | bytes) -> bool:
    """Whether a source is a harness file or a pasted test body, not a scenario."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    return bool(_HARNESS_LINE.search(text) or _PASTED_BODY.search(text))


def parse_harness(source: str | bytes) -> ast.HarnessFile:
    """Parse a harness file; a syntax error is a ScenarioError at the user's line and column."""
    text = newlines(decode(source))
    pasted = not _HARNESS_LINE.search(text)
    prepared, notes, chosen = _prepare(text)
    tree = _parse(prepared, pasted)
    built = _Translator(prepared, notes).translate(tree)
    if pasted:
        pasted_note = ast.Note(1, 1, "a test body without TEST_F: run as TEST_F(merge, pasted)")
        built = replace(built, notes=(pasted_note, *built.notes))
    return replace(built, policy=chosen.policy, rmap_model=chosen.rmap_model)


def _prepare(text: str) -> tuple[Lines, list[ast.Note], directives.Settings]:
    """Comments and preprocessor lines blanked, SKIP's statement argument
    replaced; what the directives among the comments choose."""
    pieces: list[str] = []
    found: list[directives.Directive] = []
    for match in TOKEN.finditer(text):
        if match.lastgroup == "open_comment":
            raise Lines(text).error(match.start(), "unterminated comment '/*'")
        pieces.append(blank(match.group()) if match.lastgroup == "comment" else match.group())
        if (d := directives.directive(match)) is not None:
            found.append(d)
    blanked = "".join(pieces)
    lines = Lines(blanked)
    chosen = directives.settings(lines, found)
    notes: list[ast.Note] = []
    out = list(blanked)
    continued = False
    for index, start in enumerate(lines.starts):
        end = blanked.find("\n", start)
        end = len(blanked) if end < 0 else end
        line = blanked[start:end]
        if continued or line.lstrip().startswith("#"):
            if not continued:
                shown = " ".join(line.split())
                notes.append(ast.Note(index + 1, 1, f"skipped: {shown[:60]}"))
            continued = line.rstrip().endswith("\\")
            out[start:end] = " " * (end - start)
    blanked = "".join(out)
    for match in re.finditer(r"\bTEST_HARNESS_MAIN\b", blanked):
        at = lines.position(match.start())
        notes.append(ast.Note(*at, "TEST_HARNESS_MAIN: every test runs, in order"))
        blanked = blanked[: match.start()] + blank(match.group()) + blanked[match.end() :]
    blanked = _skip_statements(blanked)
    _check_depth(Lines(blanked))
    return Lines(blanked), notes, chosen


def _skip_statements(text: str) -> str:
    """`SKIP(return, "why")` as `SKIP(0     , "why")`: same length, an expression."""
    for match in re.finditer(r"\bSKIP\s*\(", text):
        end = _argument_end(text, match.end())
        if end < len(text) and text[end] == ",":
            argument = text[match.end() : end]
            text = text[: match.end()] + "0" + blank(argument)[1:] + text[end:]
    return text


def _argument_end(text: str, pos: int) -> int:
    """Where the argument starting at pos ends: its ',', the call's ')', or a ';'."""
    depth = 0
    while pos < len(text):
        char = text[pos]
        if char in "([":
            depth += 1
        elif char in ")]":
            if depth == 0:
                break
            depth -= 1
        elif (char == "," and depth == 0) or char in ";{}":
            break
        pos += 1
    return pos


def _check_depth(lines: Lines) -> None:
    """Deep parentheses would exhaust pycparser's recursion: stop them first."""
    depth = 0
    for match in TOKEN.finditer(lines.text):
        token = match.group()
        if token in "([":
            depth += 1
            if depth > MAX_EXPRESSION_DEPTH:
                raise lines.error(
                    match.start(),
                    f"expression nested too deeply (limit MAX_EXPRESSION_DEPTH = "
                    f"{MAX_EXPRESSION_DEPTH})",
                )
        elif token in ")]":
            depth = max(depth - 1, 0)
        elif token in "{};":
            depth = 0


def _parse(lines: Lines, pasted: bool = False) -> Any:
    """The translation unit; a pasted body is wrapped in `TEST_F(merge, pasted)`,
    written before the body's line 1 so its lines stay the user's."""
    parser = Parser()
    head, tail = ("TEST_F(merge, pasted) {\n", "\n}\n") if pasted else ("", "")
    try:
        return parser.parse(TYPEDEFS_C + head + f'# 1 "{FILENAME}"\n' + lines.text + tail, FILENAME)
    except RecursionError:
        where = token_position(parser) or lines.end()
        raise ScenarioError(*where, "expression nested too deeply") from None
    except ScenarioError:
        raise
    except Exception as exc:  # pycparser's ParseError, or a bug in it
        message = str(exc)
        if type(exc).__name__ == "ParseError":
            raise syntax_error(lines, message) from None
        where = token_position(parser) or lines.end()
        raise ScenarioError(*where, f"syntax error ({type(exc).__name__})") from None


class _NotModelled(Exception):
    def __init__(self, where: tuple[int, int], what: str) -> None:
        super().__init__(what)
        self.where = where
        self.what = what


class _Translator:
    """pycparser's tree -> the harness nodes, one function (test, setup, teardown) at a time."""

    def __init__(self, lines: Lines, notes: list[ast.Note]) -> None:
        self.lines = lines
        self.notes = notes
        self.constants: dict[str, int] = {}
        self.fixtures: dict[str, ast.Fixture] = {}
        self.signed: dict[str, bool] = {}
        self.members: dict[str, bool] = {}
        self.count = 0

    # --- the file -------------------------------------------------------------

    def translate(self, tree: Any) -> ast.HarnessFile:
        pending: list[tuple[str, str, Any]] = []
        setups: dict[str, ast.Block] = {}
        teardowns: dict[str, ast.Block] = {}
        members: dict[str, tuple[tuple[str, bool], ...]] = {}
        for node in tree.ext:
            if isinstance(node, c_ast.Typedef) and node.name in TYPEDEF_NAMES:
                continue
            if isinstance(node, c_ast.FuncDef):
                name = node.decl.name
                args = self.block_args(node, name)
                if name == "FIXTURE":
                    members[args[0]] = self.fixture_members(node.body)
                elif name in ("FIXTURE_SETUP", "FIXTURE_TEARDOWN"):
                    (setups if name == "FIXTURE_SETUP" else teardowns)[args[0]] = self.function(
                        node.body, args[0], members
                    )
                elif name in ("TEST_F", "TEST"):
                    pending.append((name, ",".join(args), node))
                else:
                    self.note(node, f"function '{name}' is not run: a call to it is not modelled")
            else:
                self.top_level(node)
        tests = []
        for kind, joined, node in pending:
            fixture = None
            if kind == "TEST_F":
                fixture_name, test_name = joined.split(",")
                fixture = self.fixture(fixture_name, members, setups, teardowns, node)
                full = f"{fixture_name}.{test_name}"
            else:
                full = f"global.{joined}"
            body = self.function(node.body, fixture.name if fixture else None, members)
            where = (1, 1) if full == "merge.pasted" else self.at(node)
            tests.append(ast.HarnessTest(full, *where, fixture, body))
        if not tests:
            self.fail((1, 1), "no TEST_F() or TEST() in the file: nothing to run")
        names = [t.name for t in tests]
        for index, name in enumerate(names):
            if name in names[:index]:
                self.fail((tests[index].line, tests[index].col), f"test '{name}' defined twice")
        return ast.HarnessFile(tuple(tests), tuple(self.constants.items()), tuple(self.notes))

    def fixture(
        self,
        name: str,
        members: dict[str, tuple[tuple[str, bool], ...]],
        setups: dict[str, ast.Block],
        teardowns: dict[str, ast.Block],
        node: Any,
    ) -> ast.Fixture:
        if name not in members and name == "merge":
            if "merge" not in self.fixtures:
                self.fixtures["merge"] = _default_merge_fixture()
                self.note(node, "FIXTURE(merge) is not in the file: merge.c's (6.18) is used")
            return self.fixtures["merge"]
        if name not in members:
            self.fail(self.at(node), f"unknown fixture '{name}': define it with FIXTURE({name})")
        if name not in self.fixtures:
            self.fixtures[name] = ast.Fixture(
                name, members[name], setups.get(name), teardowns.get(name)
            )
        return self.fixtures[name]

    def block_args(self, node: Any, name: str) -> list[str]:
        if name not in _BLOCKS:
            return []
        params = node.decl.type.args
        args = [p.name for p in (params.params if params else []) if isinstance(p, c_ast.ID)]
        if len(args) != _BLOCKS[name] or (params and len(params.params) != len(args)):
            self.fail(self.at(node), f"{name}() takes {_BLOCKS[name]} name(s)")
        return [str(arg) for arg in args]

    def fixture_members(self, body: Any) -> tuple[tuple[str, bool], ...]:
        found = []
        for item in body.block_items or []:
            if isinstance(item, c_ast.Decl) and item.name:
                found.append((str(item.name), _signed(item.type)))
            else:
                self.fail(self.at(item), "a FIXTURE() holds member declarations only")
        return tuple(found)

    def top_level(self, node: Any) -> None:
        enum = node.type if isinstance(node, c_ast.Decl) else None
        if isinstance(enum, c_ast.Enum) and enum.values is not None:
            value = 0
            for item in enum.values.enumerators:
                if item.value is not None:
                    value = self.constant(item.value)
                self.constants[str(item.name)] = value
                value += 1
            return
        if isinstance(node, c_ast.Pragma):
            return
        what = getattr(node, "name", None) or type(node).__name__
        self.note(node, f"skipped top-level declaration '{what}'")

    def constant(self, node: Any) -> int:
        if isinstance(node, c_ast.Constant) and node.type == "int":
            return integer_value(str(node.value), self.at(node))
        if isinstance(node, c_ast.ID) and node.name in self.constants:
            return self.constants[node.name]
        if isinstance(node, c_ast.UnaryOp) and node.op == "-":
            return -self.constant(node.expr)
        self.fail(self.at(node), "an enum value must be an integer")

    # --- one function ---------------------------------------------------------

    def function(
        self, body: Any, fixture: str | None, members: dict[str, tuple[tuple[str, bool], ...]]
    ) -> ast.Block:
        self.signed = {}
        known = members.get(fixture or "", ())
        if fixture == "merge" and fixture not in members:
            known = _default_merge_fixture().members
        self.members = dict(known)
        return self.block(body)

    def block(self, node: Any) -> ast.Block:
        if isinstance(node, c_ast.Compound):
            items = [self.code(item) for item in node.block_items or []]
        else:
            items = [self.code(node)]
        return ast.Block(tuple(item for item in items if item is not None))

    def code(self, node: Any) -> ast.Code | None:
        self.count += 1
        if self.count > MAX_HARNESS_STATEMENTS:
            self.fail(
                self.at(node),
                f"too many statements (limit MAX_HARNESS_STATEMENTS = {MAX_HARNESS_STATEMENTS})",
            )
        try:
            return self.statement(node)
        except _NotModelled as missing:
            declaration = isinstance(node, c_ast.Decl)
            return ast.Unmodelled(*missing.where, self.source(node, declaration), missing.what)

    def statement(self, node: Any) -> ast.Code | None:
        if isinstance(node, c_ast.Compound):
            return self.block(node)
        if isinstance(node, c_ast.EmptyStatement):
            return None
        if isinstance(node, c_ast.DeclList):
            return ast.Block(tuple(c for d in node.decls if (c := self.code(d)) is not None))
        if isinstance(node, c_ast.Decl):
            return self.declaration(node)
        if isinstance(node, c_ast.Assignment):
            if node.op != "=" and node.op not in _COMPOUND:
                raise _NotModelled(self.at(node), f"operator '{node.op}'")
            target, signed = self.lvalue(node.lvalue)
            return ast.Step(
                *self.start(node), self.source(node), target, node.op, self.expr(node.rvalue, 1),
                signed,
            )  # fmt: skip
        if isinstance(node, c_ast.UnaryOp) and node.op in ("p++", "++", "p--", "--"):
            target, signed = self.lvalue(node.expr)
            op = "+=" if "+" in node.op else "-="
            line, col = self.at(node)
            return ast.Step(line, col, self.source(node), target, op, ast.Num(1, line, col), signed)
        if isinstance(node, c_ast.FuncCall) and isinstance(node.name, c_ast.ID):
            name = str(node.name.name)
            if name in CHECKS:
                return self.check(node, name)
            if name == "SKIP":
                return self.skip(node)
        if isinstance(node, c_ast.If):
            then = self.block(node.iftrue)
            orelse = self.block(node.iffalse) if node.iffalse is not None else None
            return ast.If(*self.at(node), self.head(node), self.expr(node.cond, 1), then, orelse)
        if isinstance(node, c_ast.For):
            init = self.code(node.init) if node.init is not None else None
            cond = self.expr(node.cond, 1) if node.cond is not None else None
            step = self.code(node.next) if node.next is not None else None
            return ast.Loop(
                *self.at(node), self.head(node), "for", init, cond, step, self.block(node.stmt)
            )
        if isinstance(node, (c_ast.While, c_ast.DoWhile)):
            kind = "while" if isinstance(node, c_ast.While) else "do"
            cond = self.expr(node.cond, 1)
            return ast.Loop(*self.at(node), self.head(node), kind, None, cond, None,
                            self.block(node.stmt))  # fmt: skip
        if isinstance(node, (c_ast.Return, c_ast.Break, c_ast.Continue)):
            kind = type(node).__name__.lower()
            return ast.Jump(*self.at(node), self.source(node), kind)
        if isinstance(node, c_ast.Label):
            return self.code(node.stmt)
        if isinstance(node, c_ast.Goto):
            raise _NotModelled(self.at(node), f"goto {node.name}")
        if isinstance(node, (c_ast.Switch, c_ast.Case, c_ast.Default)):
            raise _NotModelled(self.at(node), "switch")
        line, col = self.start(node)
        return ast.Step(line, col, self.source(node), None, "", self.expr(node, 1))

    def declaration(self, node: Any) -> ast.Code | None:
        if isinstance(node.type, c_ast.FuncDecl):
            raise _NotModelled(self.at(node), f"a function declaration '{node.name}'")
        if isinstance(node.type, c_ast.ArrayDecl):
            raise _NotModelled(self.at(node), f"an array '{node.name}'")
        signed = _signed(node.type)
        name = str(node.name)
        self.signed[name] = signed
        if node.init is None:
            return None
        if isinstance(node.init, c_ast.InitList):
            raise _NotModelled(self.at(node.init), "an initializer list")
        line, col = self.start(node, declaration=True)
        target = ast.Name(name, *self.at(node))
        return ast.Step(line, col, self.source(node, declaration=True), target, "=",
                        self.expr(node.init, 1), signed)  # fmt: skip

    def lvalue(self, node: Any) -> tuple[ast.HExpr, bool | None]:
        if isinstance(node, c_ast.ID):
            return ast.Name(str(node.name), *self.at(node)), self.signed.get(node.name, True)
        if isinstance(node, c_ast.StructRef):
            member = self.expr(node, 1)
            return member, self.members.get(str(node.field.name), True)
        if isinstance(node, c_ast.ArrayRef) or (isinstance(node, c_ast.UnaryOp) and node.op == "*"):
            return self.expr(node, 1), None
        raise _NotModelled(self.at(node), "an assignment to this")

    def check(self, node: Any, macro: str) -> ast.Check:
        exprs = node.args.exprs if node.args is not None else []
        single = macro.endswith(("_TRUE", "_FALSE"))
        if len(exprs) != (1 if single else 2):
            self.fail(self.at(node), f"{macro}() takes {1 if single else 2} argument(s)")
        left = self.expr(exprs[0], 1)
        right = None if single else self.expr(exprs[1], 1)
        texts = [self.text_of(e) for e in exprs] + [""]
        line, col = self.at(node)
        return ast.Check(line, col, self.source(node), macro, left, right, texts[0], texts[1])

    def skip(self, node: Any) -> ast.Skip:
        exprs = node.args.exprs if node.args is not None else []
        reason = ""
        if len(exprs) > 1 and isinstance(exprs[1], c_ast.Constant) and exprs[1].type == "string":
            reason = _string(str(exprs[1].value))
        return ast.Skip(*self.at(node), self.source(node), reason)

    # --- expressions ----------------------------------------------------------

    def expr(self, node: Any, depth: int) -> ast.HExpr:
        where = self.at(node)
        if depth > MAX_EXPRESSION_DEPTH:
            self.fail(where, f"expression nested too deeply (limit MAX_EXPRESSION_DEPTH = "
                             f"{MAX_EXPRESSION_DEPTH})")  # fmt: skip
        if isinstance(node, c_ast.Constant):
            if node.type == "string":
                return ast.Text(_string(str(node.value)), *where)
            if node.type in ("float", "double"):
                raise _NotModelled(where, f"floating point '{node.value}'")
            return ast.Num(_literal(str(node.value), where), *where)
        if isinstance(node, c_ast.ID):
            return ast.Name(str(node.name), *where)
        if isinstance(node, c_ast.Cast):
            return ast.Cast(_signed(node.to_type.type), self.expr(node.expr, depth + 1), *where)
        if isinstance(node, c_ast.StructRef):
            base = self.expr(node.name, depth + 1)
            return ast.Member(base, str(node.field.name), node.type == "->", *where)
        if isinstance(node, c_ast.ArrayRef):
            return ast.Load(self.element(node, depth), *where)
        if isinstance(node, c_ast.FuncCall):
            return self.call(node, depth)
        if isinstance(node, c_ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, c_ast.BinaryOp):
            if node.op not in _BINARY:
                raise _NotModelled(where, f"operator '{node.op}'")
            left = self.expr(node.left, depth + 1)
            right = self.expr(node.right, depth + 1)
            return ast.Binary(str(node.op), left, right, *where)
        if isinstance(node, c_ast.TernaryOp):
            raise _NotModelled(where, "'?:'")
        raise _NotModelled(where, type(node).__name__)

    def unary(self, node: Any, depth: int) -> ast.HExpr:
        where = self.at(node)
        if node.op == "sizeof":
            raise _NotModelled(where, self.text_of(node))
        if node.op == "&":
            if isinstance(node.expr, c_ast.ArrayRef):
                return self.element(node.expr, depth)
            return ast.AddressOf(self.expr(node.expr, depth + 1), *where)
        if node.op == "*":
            return ast.Load(self.expr(node.expr, depth + 1), *where)
        if node.op in ("-", "+", "~", "!"):
            return ast.Unary(str(node.op), self.expr(node.expr, depth + 1), *where)
        raise _NotModelled(where, f"operator '{node.op}' inside an expression")

    def element(self, node: Any, depth: int) -> ast.HExpr:
        """`p[n]`'s address, p + n: as in the scenario language, every pointer is a char *."""
        base = self.expr(node.name, depth + 1)
        index = self.expr(node.subscript, depth + 1)
        return ast.Binary("+", base, index, *self.at(node))

    def call(self, node: Any, depth: int) -> ast.Call:
        where = self.at(node)
        if not isinstance(node.name, c_ast.ID):
            raise _NotModelled(where, "a call through a pointer")
        name = str(node.name.name)
        counts = CALLS.get(name) or HARNESS_CALLS.get(name)
        if counts is None:
            raise _NotModelled(where, f"{name}()")
        exprs = node.args.exprs if node.args is not None else []
        if len(exprs) not in counts:
            self.fail(where, f"'{name}' takes {' or '.join(map(str, counts))} argument(s), "
                             f"not {len(exprs)}")  # fmt: skip
        return ast.Call(name, tuple(self.expr(arg, depth + 1) for arg in exprs), *where)

    # --- positions and text ---------------------------------------------------

    def fail(self, where: tuple[int, int], message: str) -> NoReturn:
        raise ScenarioError(where[0], where[1], message)

    def note(self, node: Any, text: str) -> None:
        self.notes.append(ast.Note(*self.at(node), text))

    def at(self, node: Any) -> tuple[int, int]:
        coord = getattr(node, "coord", None)
        line = getattr(coord, "line", None)
        col = getattr(coord, "column", None)
        if not isinstance(line, int):
            return (1, 1)
        return line, col if isinstance(col, int) else 1

    def start(self, node: Any, declaration: bool = False) -> tuple[int, int]:
        return self.lines.position(self.start_offset(node, declaration))

    def start_offset(self, node: Any, declaration: bool = False) -> int:
        """Where a statement's text starts: a declaration's at its type, not its name."""
        offset = self.lines.offset(*self.at(node))
        if not declaration:
            return offset
        text = self.lines.text
        pos = offset - 1
        while pos >= 0 and text[pos] not in ";{},(":
            pos -= 1
        pos += 1
        while pos < offset and text[pos].isspace():
            pos += 1
        return pos

    def source(self, node: Any, declaration: bool = False) -> str:
        """The statement's text up to its ';' (or the ')' closing a for header)."""
        text = self.lines.text
        start = self.start_offset(node, declaration)
        depth, pos = 0, start
        while pos < len(text):
            char = text[pos]
            if char in "([":
                depth += 1
            elif char in ")]":
                depth -= 1
                if depth < 0:
                    break
            elif char in "'\"":
                close = text.find(char, pos + 1)
                pos = close if close > 0 else pos
            elif char == ";" and depth == 0:
                pos += 1
                break
            elif char in "{}" and depth == 0:
                break
            pos += 1
        return " ".join(text[start:pos].split())

    def head(self, node: Any) -> str:
        """`if (cond)`, `while (cond)`, `for (...)`: a condition's step shows this."""
        text = self.lines.text
        start = self.lines.offset(*self.at(node))
        if isinstance(node, c_ast.DoWhile):
            return "while (" + self.text_of(node.cond) + ")"
        open_at = text.find("(", start)
        depth, pos = 0, open_at
        while 0 <= pos < len(text):
            depth += {"(": 1, ")": -1}.get(text[pos], 0)
            pos += 1
            if depth == 0:
                break
        return " ".join(text[start:pos].split())

    def text_of(self, node: Any) -> str:
        """An expression's own text, for an assertion's message, as the harness prints it."""
        start = self.lines.offset(*self.at(node))
        end = _argument_end(self.lines.text, start)
        return " ".join(self.lines.text[start:end].split())


def _default_merge_fixture() -> ast.Fixture:
    """merge.c's fixture, parsed from MERGE_FIXTURE (its lines are its own)."""
    prepared, _, _ = _prepare(MERGE_FIXTURE + "TEST_F(merge, none) {}\n")
    tree = _parse(prepared)
    translator = _Translator(prepared, [])
    members: dict[str, tuple[tuple[str, bool], ...]] = {}
    setup = teardown = None
    for node in tree.ext:
        if not isinstance(node, c_ast.FuncDef):
            continue
        if node.decl.name == "FIXTURE":
            members["merge"] = translator.fixture_members(node.body)
        elif node.decl.name == "FIXTURE_SETUP":
            setup = translator.function(node.body, "merge", members)
        elif node.decl.name == "FIXTURE_TEARDOWN":
            teardown = translator.function(node.body, "merge", members)
    return ast.Fixture("merge", members["merge"], setup, teardown)


def _signed(node: Any) -> bool:
    """Whether a declared C type is signed: pointers, unsigned types, structs are not."""
    if isinstance(node, (c_ast.PtrDecl, c_ast.ArrayDecl, c_ast.FuncDecl)):
        return False
    inner = getattr(node, "type", None)
    if isinstance(inner, c_ast.IdentifierType):
        return not (set(inner.names) & _UNSIGNED_WORDS)
    return not isinstance(inner, (c_ast.Struct, c_ast.Union))


def _literal(text: str, where: tuple[int, int]) -> int:
    if "'" in text:
        return character_value(text, where)
    return integer_value(text, where)


def _string(literal: str) -> str:
    """A C string literal's text, quotes and simple escapes removed."""
    body = literal[1:-1] if literal.endswith('"') else literal[1:]
    return re.sub(r"\\(.)", r"\1", body)
