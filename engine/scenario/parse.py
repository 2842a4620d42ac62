"""Scenario source text -> ast.Scenario.

pycparser parses the C. This module does what a C parser cannot do for us:
comments are blanked in place and process labels are taken out before parsing
(so pycparser's coordinates are the user's lines and columns, and a label may
precede a declaration, which C99 forbids), and the parsed C is then checked
against the much smaller language the engine runs. No preprocessor runs.
"""

import bisect
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from pycparser import c_ast, c_parser

from engine.scenario import ast, directives
from engine.scenario.constants import CONSTANTS
from engine.scenario.errors import ScenarioError
from engine.scenario.lex import TOKEN, Lines, blank, newlines
from engine.scenario.limits import (
    MAX_EXPRESSION_DEPTH,
    MAX_PROCESSES,
    MAX_SOURCE_BYTES,
    MAX_STATEMENTS,
    MAX_U64,
)

# Every call a scenario may make, with the argument counts it accepts. The
# engine-only calls model events a C program cannot cause on demand:
# gup_fast_pin(addr, when) lands a concurrent GUP-fast pin during the next
# operation; swapout(addr, len) and migrate_entry(addr, len) put pages into
# swap or migration entries. exit(status) ends the process that calls it:
# its mm goes (exit_mmap), and later calls from it are ESRCH.
CALLS: dict[str, tuple[int, ...]] = {
    "mmap": (6,),
    "munmap": (2,),
    "mprotect": (3,),
    "mremap": (4, 5),
    "madvise": (3,),
    "memset": (3,),
    "fork": (0,),
    "pin": (2,),
    "unpin": (2,),
    "gup_fast_pin": (2,),
    "swapout": (2,),
    "migrate_entry": (2,),
    "exit": (1,),
}

MAIN = "main"

_FILENAME = "scenario"

# The types selftests declare variables with, so pycparser can tell a
# declaration from an expression. The `# 1` line marker makes the first line
# of the scenario line 1 in pycparser's coordinates.
_TYPEDEFS = {
    "size_t": "unsigned long",
    "ssize_t": "long",
    "off_t": "long",
    "loff_t": "long long",
    "pid_t": "int",
    "bool": "_Bool",
    "int8_t": "signed char",
    "uint8_t": "unsigned char",
    "int16_t": "short",
    "uint16_t": "unsigned short",
    "int32_t": "int",
    "uint32_t": "unsigned int",
    "int64_t": "long",
    "uint64_t": "unsigned long",
    "intptr_t": "long",
    "uintptr_t": "unsigned long",
    "__u8": "unsigned char",
    "__u16": "unsigned short",
    "__u32": "unsigned int",
    "__u64": "unsigned long long",
    "__s32": "int",
    "__s64": "long long",
}
TYPEDEFS_C = "".join(f"typedef {c_type} {name};\n" for name, c_type in _TYPEDEFS.items())
UNSIGNED_TYPEDEFS = frozenset(name for name, c_type in _TYPEDEFS.items() if "unsigned" in c_type)
FILENAME = _FILENAME
TYPEDEF_NAMES = frozenset(_TYPEDEFS)
_HEADER = TYPEDEFS_C + f'void __scenario(void)\n{{\n# 1 "{_FILENAME}"\n'

_FOOTER = "\n}\n"

_C_KEYWORDS = frozenset(
    {
        "auto", "break", "case", "char", "const", "continue", "default", "do", "double",
        "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
        "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
        "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool",
        "_Complex", "_Imaginary", "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn",
        "_Static_assert", "_Thread_local",
    }
)  # fmt: skip

_INTEGER = re.compile(
    r"(?:0[xX](?P<hex>[0-9a-fA-F]+)|0[bB](?P<bin>[01]+)|(?P<oct>0[0-7]*)|(?P<dec>[1-9][0-9]*))"
    r"(?:[uU](?:ll|LL|[lL])?|(?:ll|LL|[lL])[uU]?)?"
)
_CHARACTER = re.compile(
    r"\\(?P<oct>[0-7]{1,3})|\\x(?P<hex>[0-9a-fA-F]+)|\\(?P<simple>[ntrabfve\\'\"?])"
    r"|(?P<plain>[^\\'\n])"
)
_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "e": 27,
    "\\": 92,
    "'": 39,
    '"': 34,
    "?": 63,
}
_BINARY_OPS = frozenset({"+", "-", "*", "/", "%", "<<", ">>", "|", "&", "^"})
_UNARY_OPS = frozenset({"-", "+", "~"})
_PYCPARSER_UNARY = {"p++": "++", "p--": "--"}
_STATEMENT_KINDS = {
    "If": "if",
    "While": "while",
    "DoWhile": "do",
    "For": "for",
    "Switch": "switch",
    "Case": "case",
    "Default": "default",
    "Return": "return",
    "Goto": "goto",
    "Break": "break",
    "Continue": "continue",
    "Pragma": "#pragma",
    "StaticAssert": "_Static_assert",
    "Typedef": "typedef",
}
_ERROR = re.compile(r"(?P<file>[^:\n]*):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.*)", re.DOTALL)
_DEPTH_MESSAGE = (
    f"expression nested too deeply (limit MAX_EXPRESSION_DEPTH = {MAX_EXPRESSION_DEPTH})"
)


def parse(source: str | bytes) -> ast.Scenario:
    """Parse a scenario; any problem is a ScenarioError at the user's line and column."""
    text = newlines(decode(source))
    lines, spans, chosen = _scan(text)
    statements: tuple[ast.Statement, ...] = ()
    processes: tuple[str, ...] = (MAIN,)
    if spans:
        statements, processes = _Builder(lines, spans).build(_parse_c(lines))
    return ast.Scenario(statements, processes, chosen.policy, chosen.rmap_model)


def decode(source: str | bytes) -> str:
    """The source as text, within MAX_SOURCE_BYTES."""
    data = source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        prefix = data[:MAX_SOURCE_BYTES].decode("utf-8", "ignore")
        raise Lines(newlines(prefix)).error(
            len(prefix),
            f"scenario too large: {len(data)} bytes (limit MAX_SOURCE_BYTES = {MAX_SOURCE_BYTES})",
        )
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = source[: exc.start].decode("utf-8")
        raise Lines(newlines(prefix)).error(
            len(prefix), f"not UTF-8 text: byte 0x{source[exc.start]:02x}"
        ) from None


@dataclass(frozen=True)
class _Span:
    """Where one statement's text is: from its first character to just past its ';'."""

    start: int
    end: int
    label: tuple[str, int] | None


def _scan(text: str) -> tuple[Lines, list[_Span], directives.Settings]:
    """Blank comments and labels, split statements, find the directives among
    the comments, and reject what must not reach pycparser.

    Braces would let a scenario close the function it is wrapped in, '#' lines
    would move pycparser's line numbers, and deep parentheses would exhaust
    pycparser's recursion, so all three stop here.
    """
    pieces: list[str] = []
    tokens: list[tuple[str, str, int]] = []
    found: list[directives.Directive] = []
    for match in TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "open_comment":
            raise Lines(text).error(match.start(), "unterminated comment '/*'")
        if kind == "comment":
            pieces.append(blank(match.group()))
            if (d := directives.directive(match)) is not None:
                found.append(d)
            continue
        pieces.append(match.group())
        if kind != "space":
            tokens.append((str(kind), match.group(), match.start()))
    stripped = "".join(pieces)
    lines = Lines(stripped)
    chosen = directives.settings(lines, found)

    spans: list[_Span] = []
    blanks: list[tuple[int, int]] = []
    start: int | None = None
    label: tuple[str, int] | None = None
    depth = 0
    index = 0
    while index < len(tokens):
        kind, token, offset = tokens[index]
        if start is None:
            following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
            if kind == "word" and token not in _C_KEYWORDS and following == ":":
                if label is not None:
                    raise lines.error(offset, "a statement takes one process label")
                label = (token, offset)
                blanks.append((offset, tokens[index + 1][2] + 1))
                index += 2
                continue
            if token == ";":
                if label is not None:
                    raise lines.error(label[1], f"label '{label[0]}' has no statement")
                index += 1
                continue
            start = offset
        if token in "([":
            depth += 1
            if depth > MAX_EXPRESSION_DEPTH:
                raise lines.error(offset, _DEPTH_MESSAGE)
        elif token in ")]":
            depth = max(depth - 1, 0)
        elif token in "{}":
            raise lines.error(offset, f"'{token}' is not supported: a scenario has no blocks")
        elif token == "#":
            raise lines.error(offset, "preprocessor directives are not supported")
        elif token == ";":
            if len(spans) == MAX_STATEMENTS:
                raise lines.error(
                    start, f"too many statements (limit MAX_STATEMENTS = {MAX_STATEMENTS})"
                )
            spans.append(_Span(start, offset + 1, label))
            start, label, depth = None, None, 0
        index += 1
    if start is not None:
        _, last, offset = tokens[-1]
        raise lines.error(offset + len(last), "expected ';' at the end of the statement")
    if label is not None:
        raise lines.error(label[1], f"label '{label[0]}' has no statement")

    if blanks:
        pieces, done = [], 0
        for begin, end in blanks:
            pieces += [stripped[done:begin], blank(stripped[begin:end])]
            done = end
        stripped = "".join([*pieces, stripped[done:]])
    return Lines(stripped), spans, chosen


class Parser(c_parser.CParser):  # type: ignore[misc]
    """pycparser's parser, made to locate the errors it reports without a column."""

    def _parse_error(self, msg: str, coord: Any) -> NoReturn:
        if getattr(coord, "column", None) is None:
            position = token_position(self)
            if position is not None:
                coord = f"{_FILENAME}:{position[0]}:{position[1]}"
        raise c_parser.ParseError(f"{coord}: {msg}")


def token_position(parser: Any) -> tuple[int, int] | None:
    """Best estimate of where pycparser stopped: its next token (private API, so guarded)."""
    try:
        token = parser._tokens.peek()
    except Exception:  # an older pycparser, or a lexer error on the next token
        return None
    if token is None or token.filename != _FILENAME:
        return None
    return int(token.lineno), int(token.column)


def _parse_c(lines: Lines) -> list[Any]:
    """The C statements pycparser finds; none of pycparser's own exceptions escape."""
    parser = Parser()
    try:
        tree = parser.parse(_HEADER + lines.text + _FOOTER, _FILENAME)
    except c_parser.ParseError as exc:
        raise syntax_error(lines, str(exc)) from None
    except RecursionError:
        raise ScenarioError(*(token_position(parser) or lines.end()), _DEPTH_MESSAGE) from None
    except Exception as exc:  # a pycparser bug must still be a user-facing error
        where = token_position(parser) or lines.end()
        raise ScenarioError(*where, f"syntax error ({type(exc).__name__})") from None
    return list(tree.ext[-1].body.block_items or [])


def syntax_error(lines: Lines, message: str) -> ScenarioError:
    """pycparser's "scenario:LINE:COL: msg" as a ScenarioError in the user's words."""
    line, col = lines.end()
    match = _ERROR.fullmatch(message)
    if match is not None:
        message = match["msg"]
        if match["file"] == _FILENAME and int(match["line"]) <= len(lines.starts):
            line, col = int(match["line"]), int(match["col"] or 1)
    if message.startswith("before: "):
        return ScenarioError(line, col, f"syntax error before '{message[8:]}'")
    return ScenarioError(line, col, f"syntax error: {message[:1].lower()}{message[1:]}")


class _Builder:
    """Checks pycparser's statements against the scenario language, in statement order."""

    def __init__(self, lines: Lines, spans: list[_Span]) -> None:
        self.lines = lines
        self.spans = spans
        self.variables: set[str] = set()
        self.processes = [MAIN]
        self.start = (1, 1)

    def build(self, items: list[Any]) -> tuple[tuple[ast.Statement, ...], tuple[str, ...]]:
        """The statements, and every process they create."""
        ends = [span.end for span in self.spans]
        grouped: list[list[Any]] = [[] for _ in self.spans]
        for item in items:
            if isinstance(item, c_ast.EmptyStatement):
                continue
            offset = self.lines.offset(*self.at(item))
            grouped[min(bisect.bisect_right(ends, offset), len(ends) - 1)].append(item)
        statements = []
        for span, group in zip(self.spans, grouped, strict=True):
            self.start = self.lines.position(span.start)
            if not group:
                self.fail(self.start, "not a statement the engine can run")
            if len(group) > 1:
                self.fail(self.at(group[1]), "declare one variable per statement")
            statements.append(self.statement(span, group[0]))
        return tuple(statements), tuple(self.processes)

    def fail(self, where: tuple[int, int], message: str) -> NoReturn:
        raise ScenarioError(where[0], where[1], message)

    def at(self, node: Any) -> tuple[int, int]:
        """A node's position; pycparser sometimes has no column, then the line's start will do."""
        coord = getattr(node, "coord", None)
        line = getattr(coord, "line", None)
        col = getattr(coord, "column", None)
        if not isinstance(line, int):
            return self.start
        return line, col if isinstance(col, int) else 1

    def operator_at(self, operand: Any, op: str) -> tuple[int, int]:
        """Where `op` is, found back from its (right) operand: pycparser keeps no such position."""
        offset = self.lines.offset(*self.at(operand))
        text = self.lines.text
        pos = offset - 1
        while pos >= 0:
            start = pos - len(op) + 1
            if start >= 0 and text.startswith(op, start):
                return self.lines.position(start)
            if text[pos] not in " \t\n\r\f\v(-+~!*&":
                break
            pos -= 1
        return self.at(operand)

    def statement(self, span: _Span, node: Any) -> ast.Statement:
        process = MAIN
        if span.label is not None:
            process, offset = span.label
            if process not in self.processes:
                self.fail(
                    self.lines.position(offset),
                    f"unknown process '{process}': create it first with "
                    f"'pid_t {process} = fork();'",
                )
        target: str | None = None
        action: ast.Expr | ast.Store
        if isinstance(node, c_ast.Decl):
            target = self.declared_name(node)
            action = self.expr(node.init, 1, top=True)
        elif isinstance(node, c_ast.Assignment):
            if node.op != "=":
                self.fail(
                    self.operator_at(node.rvalue, node.op), f"unsupported operator '{node.op}'"
                )
            if isinstance(node.lvalue, c_ast.ID):
                target = self.target(node.lvalue.name, self.at(node.lvalue))
                action = self.expr(node.rvalue, 1, top=True)
            else:
                action = self.store(node)
        elif type(node).__name__ in _STATEMENT_KINDS:
            kind = _STATEMENT_KINDS[type(node).__name__]
            self.fail(
                self.at(node),
                f"'{kind}' is not supported: a scenario is a list of calls, assignments and stores",
            )
        else:
            action = self.expr(node, 1, top=True)
            if not isinstance(action, (ast.Call, ast.Load)):
                self.fail(
                    self.start, "this statement does nothing: use a call, an assignment or a store"
                )
        creates = None
        if isinstance(action, ast.Call) and action.name == "fork":
            creates = self.new_process(target, (action.line, action.col))
        if target is not None:
            self.variables.add(target)
        source = " ".join(self.lines.text[span.start : span.end].split())
        return ast.Statement(*self.start, source, process, target, action, creates)

    def declared_name(self, node: Any) -> str:
        declarator = node.type
        while isinstance(declarator, (c_ast.PtrDecl, c_ast.ArrayDecl, c_ast.FuncDecl)):
            declarator = declarator.type
        where = self.at(declarator)  # the name's position; the Decl's may be a '*'
        if node.name is None:
            self.fail(where, "a declaration must name a variable")
        if isinstance(node.type, c_ast.FuncDecl):
            self.fail(where, "function declarations are not supported")
        if isinstance(node.type, c_ast.ArrayDecl):
            self.fail(where, "arrays are not supported")
        name = self.target(node.name, where)
        if node.init is None:
            self.fail(where, f"'{name}' is declared without a value")
        if isinstance(node.init, c_ast.InitList):
            self.fail(self.at(node.init), "initializer lists are not supported")
        return name

    def target(self, name: str, where: tuple[int, int]) -> str:
        if name in CONSTANTS:
            self.fail(where, f"'{name}' is a constant and cannot be assigned")
        return str(name)

    def store(self, node: Any) -> ast.Store:
        lvalue = node.lvalue
        line, col = self.at(lvalue)
        address: ast.Expr
        if isinstance(lvalue, c_ast.ArrayRef):
            address = self.element(lvalue, 1)
        elif isinstance(lvalue, c_ast.UnaryOp) and lvalue.op == "*":
            address = self.expr(lvalue.expr, 2, top=False)
        else:
            self.fail((line, col), "only a variable or memory (p[n], *p) can be assigned")
        return ast.Store(address, self.expr(node.rvalue, 1, top=False), line, col)

    def new_process(self, name: str | None, where: tuple[int, int]) -> str:
        if len(self.processes) == MAX_PROCESSES:
            self.fail(where, f"too many processes (limit MAX_PROCESSES = {MAX_PROCESSES})")
        if name is None:
            number = 1
            while f"child{number}" in self.processes:
                number += 1
            name = f"child{number}"
        elif name in self.processes:
            self.fail(where, f"process '{name}' already exists")
        self.processes.append(name)
        return name

    def expr(self, node: Any, depth: int, top: bool) -> ast.Expr:
        """One expression; `top` when it is a whole right-hand side, where a call or load may be."""
        line, col = self.at(node)
        if depth > MAX_EXPRESSION_DEPTH:
            self.fail((line, col), _DEPTH_MESSAGE)
        if isinstance(node, c_ast.Cast):
            return self.expr(node.expr, depth + 1, top)
        if isinstance(node, c_ast.Constant):
            return ast.Num(self.literal(str(node.value), (line, col)), line, col)
        if isinstance(node, c_ast.ID):
            if node.name not in CONSTANTS and node.name not in self.variables:
                self.fail((line, col), f"unknown identifier '{node.name}'")
            return ast.Name(str(node.name), line, col)
        if isinstance(node, c_ast.FuncCall):
            if not top:
                self.fail(
                    (line, col),
                    "a call must be a statement of its own or the whole right-hand side "
                    "of an assignment to a variable",
                )
            return self.call(node, depth)
        if isinstance(node, c_ast.ArrayRef) or (isinstance(node, c_ast.UnaryOp) and node.op == "*"):
            if isinstance(node, c_ast.UnaryOp):
                line, col = self.operator_at(node.expr, "*")
            if not top:
                self.fail(
                    (line, col),
                    "a memory read must be a statement of its own or the whole right-hand "
                    "side of an assignment to a variable",
                )
            if isinstance(node, c_ast.ArrayRef):
                return ast.Load(self.element(node, depth + 1), line, col)
            return ast.Load(self.expr(node.expr, depth + 1, top=False), line, col)
        if isinstance(node, c_ast.UnaryOp):
            op = _PYCPARSER_UNARY.get(node.op, node.op)
            if op == "&" and isinstance(node.expr, c_ast.ArrayRef):
                return self.element(node.expr, depth + 1)
            where = self.operator_at(node.expr, op)
            if op == "&":
                self.fail(where, "'&' only takes an element's address, as in &p[n]")
            if op not in _UNARY_OPS:
                self.fail(where, f"unsupported operator '{op}'")
            return ast.Unary(op, self.expr(node.expr, depth + 1, top=False), *where)
        if isinstance(node, c_ast.BinaryOp):
            where = self.operator_at(node.right, node.op)
            if node.op not in _BINARY_OPS:
                self.fail(where, f"unsupported operator '{node.op}'")
            left = self.expr(node.left, depth + 1, top=False)
            right = self.expr(node.right, depth + 1, top=False)
            return ast.Binary(str(node.op), left, right, *where)
        self.fail((line, col), "unsupported expression: use integers, variables and arithmetic")

    def element(self, node: Any, depth: int) -> ast.Binary:
        """`p[n]`'s address, p + n: no pointer scaling, every pointer is a char *."""
        if depth > MAX_EXPRESSION_DEPTH:
            self.fail(self.at(node), _DEPTH_MESSAGE)
        base = self.expr(node.name, depth + 1, top=False)
        index = self.expr(node.subscript, depth + 1, top=False)
        return ast.Binary("+", base, index, *self.operator_at(node.subscript, "["))

    def call(self, node: Any, depth: int) -> ast.Call:
        where = self.at(node)
        if not isinstance(node.name, c_ast.ID):
            self.fail(where, "only the engine's calls can be called")
        name = str(node.name.name)
        counts = CALLS.get(name)
        if counts is None:
            self.fail(where, f"unknown call '{name}'")
        exprs = node.args.exprs if node.args is not None else []
        if len(exprs) not in counts:
            self.fail(where, f"'{name}' takes {_arguments(counts)}, not {len(exprs)}")
        args = tuple(self.expr(arg, depth + 1, top=False) for arg in exprs)
        return ast.Call(name, args, *where)

    def literal(self, text: str, where: tuple[int, int]) -> int:
        if "'" in text or '"' in text:
            return character_value(text, where)
        return integer_value(text, where)


def integer_value(text: str, where: tuple[int, int]) -> int:
    """An integer literal's value, within 64 bits."""
    match = _INTEGER.fullmatch(text)
    if match is None:
        raise ScenarioError(*where, f"invalid number '{text}': only integers are supported")
    base, digits = next(
        (base, match[group])
        for group, base in (("hex", 16), ("bin", 2), ("oct", 8), ("dec", 10))
        if match[group] is not None
    )
    digits = digits.lstrip("0") or "0"
    if len(digits) > 64 or int(digits, base) > MAX_U64:
        raise ScenarioError(*where, f"integer literal '{text}' does not fit in 64 bits")
    return int(digits, base)


def character_value(text: str, where: tuple[int, int]) -> int:
    """A plain character literal's byte ('x', '\\n', '\\x41')."""
    if text.endswith('"'):
        raise ScenarioError(*where, "string literals are not supported")
    if not text.startswith("'"):
        raise ScenarioError(*where, "only plain character literals like 'x' are supported")
    match = _CHARACTER.fullmatch(text[1:-1])
    if match is None or len(text) < 3 or not text.endswith("'"):
        raise ScenarioError(*where, f"character literal {text} must hold one character")
    if match["oct"] is not None:
        value = int(match["oct"], 8)
    elif match["hex"] is not None:
        digits = match["hex"].lstrip("0") or "0"
        value = int(digits, 16) if len(digits) <= 2 else 256
    elif match["simple"] is not None:
        value = _SIMPLE_ESCAPES[match["simple"]]
    else:
        value = ord(match["plain"])
    if value > 255 or (match["plain"] is not None and value > 127):
        raise ScenarioError(*where, f"character literal {text} is not one byte")
    return value


def _arguments(counts: tuple[int, ...]) -> str:
    """'no arguments', '1 argument', '4 or 5 arguments'."""
    if counts == (0,):
        return "no arguments"
    if counts == (1,):
        return "1 argument"
    return " or ".join(str(count) for count in counts) + " arguments"
