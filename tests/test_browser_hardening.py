"""In a real browser: markup in a scenario is text, and no injected script runs."""

from __future__ import annotations

from urllib.parse import urlencode

XSS = "<script>window.pwned=1</script>"
IMG = '<img src=x onerror="window.pwned=1">'
SOURCE = (
    f"// {XSS} {IMG}\n"
    "char *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
    f"p[0] = 'x'; // {XSS}\n"
)


def test_injected_script_never_runs_and_is_shown_as_text(page: object) -> None:
    pg = page
    for source in (SOURCE, SOURCE + f"bogus({XSS});\n"):
        pg.goto("/play?" + urlencode({"source": source}))  # type: ignore[attr-defined]
        pg.wait_for_selector("#source")  # type: ignore[attr-defined]
        assert pg.evaluate("typeof window.pwned") == "undefined"  # type: ignore[attr-defined]
        assert pg.input_value("#source-editor") == source  # type: ignore[attr-defined]
        listing = pg.text_content("#source")  # type: ignore[attr-defined]
        assert XSS in listing and "onerror" in listing
        assert pg.locator("#source script, #source img").count() == 0  # type: ignore[attr-defined]
    # stepping swaps fragments in with htmx: still text
    pg.goto("/play?" + urlencode({"source": SOURCE}))  # type: ignore[attr-defined]
    pg.keyboard.press("End")  # type: ignore[attr-defined]
    pg.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('#state').dataset.step !== '0'"
    )
    assert pg.evaluate("typeof window.pwned") == "undefined"  # type: ignore[attr-defined]


def test_csp_blocks_an_inline_script_even_if_one_got_in(page: object) -> None:
    pg = page
    pg.goto("/")  # type: ignore[attr-defined]
    blocked = pg.evaluate(  # type: ignore[attr-defined]
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', () => resolve(true));
            const s = document.createElement('script');
            s.textContent = 'window.pwned = 1';
            document.body.appendChild(s);
            setTimeout(() => resolve(false), 1000);
        })"""
    )
    assert blocked is True
    assert pg.evaluate("typeof window.pwned") == "undefined"  # type: ignore[attr-defined]
    pg.errors.clear()  # type: ignore[attr-defined]  (the violation is logged, as it should be)
