"""engine.variants: the compare view's source transformations keep every statement."""

from engine.scenario.parse import parse
from engine.variants import VARIANTS, apply

MOVE = """\
char *p = mmap(NULL, 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
p = mremap(p, 5 * page_size, 5 * page_size,
           MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, p + 10 * page_size);
p = mremap(p, page_size, page_size, MREMAP_MUST_RELOCATE_ANON | MREMAP_MAYMOVE);
p = mremap(p, page_size, page_size, MREMAP_RELOCATE_ANON);
"""


def test_flags_variant_drops_only_the_relocate_flags() -> None:
    out = apply("flags", MOVE)
    assert "RELOCATE" not in out
    assert "MREMAP_MAYMOVE | MREMAP_FIXED, p + 10 * page_size" in out
    assert "page_size, MREMAP_MAYMOVE);" in out
    assert "page_size, 0);" in out


def test_every_variant_keeps_the_statements() -> None:
    lines = [s.line for s in parse(MOVE).statements]
    for name in VARIANTS:
        assert [s.line for s in parse(apply(name, MOVE)).statements] == lines


def test_original_is_the_identity() -> None:
    assert apply("original", MOVE) == MOVE


def test_a_directive_variant_rewrites_the_source_s_own_in_place() -> None:
    # blank lines before it, CRLF, a wrong name: the parser's directive, rewritten where it is
    source = MOVE + "\n\n  // @policy spilt\r\n// @rmap cow\r\n" + MOVE
    lines = [s.line for s in parse(MOVE + "\n\n\n\n" + MOVE).statements]
    for name in ("policy-isolate", "policy-posted"):
        out = apply(name, apply("rmap-cow_context", source))
        parsed = parse(out)
        assert (parsed.policy, parsed.rmap_model) == (name.removeprefix("policy-"), "cow_context")
        assert [s.line for s in parsed.statements] == lines
        assert out.count("@policy") == 1 and "  // @policy " in out and "\r\n" in out


def test_a_directive_variant_adds_one_where_a_comment_only_looks_like_it() -> None:
    source = "/*\n// @policy split\n*/\n" + MOVE  # inside a block comment: not a directive
    assert parse(source).policy is None
    out = apply("policy-isolate", source)
    assert out.startswith(source) and out.endswith("\n// @policy isolate\n")
    assert parse(out).policy == "isolate"
