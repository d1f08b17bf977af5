"""Every page of the built book, loaded in headless Chromium as a reader would see it.

The book is the ``ci``-scale strict build of the session fixture ``built_book``
(tests/conftest.py), served on 127.0.0.1. For each page of ``_toc.yml`` the test
asserts that

* the page loads without a failed request, an HTTP error (the server records every
  request it answers with 4xx/5xx, so the browser's own ``/favicon.ico`` request counts
  too), a JavaScript error or a message the page logs as a console error;
* the math is typeset: MathJax rendered ``mjx-container`` elements and no raw TeX
  delimiter (``\\(``, ``\\[``, ``$$``, ``\\begin{``) is left in the text outside code;
* every image has loaded (non-zero natural size) and none is wider than the page;
* the page has no horizontal scroll bar and its text starts inside the window;
* every internal link points at an existing page, and at an existing ``id`` on it;
* every figure of the text has alt text that says what it shows (not a file name);
* axe-core (the accessibility engine, bundled with the ``axe-playwright-python`` package,
  so the audit runs offline) finds no violation of impact "serious" or "critical" for
  WCAG 2.1 A/AA and axe's best practices, in the theme's light mode and, for colour
  contrast, in its dark mode too. The minor and moderate findings are written to
  ``axe-findings.json`` next to the screenshots; the Reproducibility page lists them.

A full-page screenshot of each page is saved to ``_build/screenshots/<page>.png``, and one
in dark mode to ``<page>.dark.png`` (``$LTHBOOK_SCREENSHOTS`` overrides the folder), to be
looked at by a person.

Chromium is driven with Playwright's Python package pointed at the system browser
(Debian's ``chromium``; ``$LTHBOOK_CHROMIUM`` overrides the path): Playwright's own
browser download is never used. Without a Chromium the test is skipped.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("LTHBOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# Text of the page outside code, math and scripts, as the reader sees it.
_VISIBLE_TEXT_JS = """() => {
  const body = document.querySelector('main') || document.body;
  const clone = body.cloneNode(true);
  clone.querySelectorAll('mjx-container, script, style, pre, code, .cell_input, .highlight')
       .forEach(e => e.remove());
  return clone.innerText;
}"""

_PAGE_FACTS_JS = """() => ({
  math: document.querySelectorAll('mjx-container').length,
  mathErrors: document.querySelectorAll('mjx-merror').length,
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                                                  width: i.getBoundingClientRect().width})),
  contentWidth: (document.querySelector('main') || document.body).getBoundingClientRect().width,
  contentLeft: (document.querySelector('article') || document.body).getBoundingClientRect().left,
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  figures: Array.from(document.querySelectorAll('article figure img, article .cell_output img')).map(i => ({src: i.currentSrc || i.src, alt: i.getAttribute('alt') || ''})),
})"""


def _chromium() -> str | None:
    return os.environ.get("LTHBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


@pytest.fixture(scope="module")
def served_book(built_book):
    # a build with warnings still writes every page (--keep-going): check what it wrote;
    # test_strict_build_at_ci_scale reports the warnings themselves
    if not (built_book.html / "index.html").exists():
        pytest.skip("the book did not build (see test_strict_build_at_ci_scale)")
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield built_book, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the book; records every request it answers with an error status.

    The browser's own requests (``/favicon.ico``, for one) reach no Playwright event, so
    the server is the one place that sees every 404."""

    errors: list[str] = []

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        status = int(code) if str(int(code) if isinstance(code, int) else code).isdigit() else 0
        if status >= 400:
            type(self).errors.append(f"{self.path} (HTTP {status})")


#: axe-core rule sets audited (WCAG 2.1 A and AA, and axe's best practices such as heading order)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
#: impacts that fail the test; "minor" and "moderate" findings are only reported
AXE_FAILING = {"serious", "critical"}
#: preload: False keeps axe from re-fetching the style sheets itself: it resolves the theme's
#: ``@import "../basic.css"`` against the page instead of the style sheet, and asks for a
#: /basic.css that does not exist (the browser loads _static/basic.css correctly)
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "preload": False}
AXE_DARK_OPTIONS = {"runOnly": {"type": "rule", "values": ["color-contrast"]}, "preload": False}

# a content image's alt text is a description, not a file name or path
_FILENAME_ALT = re.compile(r"(^|/)[^ ]+\.(png|jpe?g|svg|gif|webp)$|_images/", re.IGNORECASE)


def _axe():
    """The axe-core runner of ``axe-playwright-python`` (its bundled ``axe.min.js``)."""
    module = pytest.importorskip("axe_playwright_python.sync_playwright",
                                 reason="the 'axe-playwright-python' package is not installed")
    return module.Axe()


def _axe_findings(axe, page, options) -> list[dict]:
    result = axe.run(page, options=options).response
    return [{"rule": v["id"], "impact": v["impact"], "help": v["help"], "count": len(v["nodes"]),
             "targets": [" ".join(map(str, n["target"])) for n in v["nodes"][:5]]}
            for v in result["violations"]]


def _open(context, url: str, failed: list[str]):
    """Load ``url`` in a new tab of ``context`` and wait for MathJax and the fonts; the tab's
    failed requests, HTTP errors, JavaScript errors and console errors go to ``failed``."""
    page = context.new_page()
    page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda res: failed.append(f"{res.url} (HTTP {res.status})") if res.status >= 400 else None)
    page.on("pageerror", lambda err: failed.append(f"JavaScript error: {err}"))
    page.on("console", lambda msg: failed.append(f"console error: {msg.text}") if msg.type == "error" else None)
    page.goto(url, wait_until="load")
    # wait for MathJax to finish typesetting (pages without math load no MathJax)
    page.evaluate("async () => { if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; } }")
    page.evaluate("() => document.fonts.ready")
    # the theme may scroll a container to the active sidebar entry while loading: start
    # every screenshot from the top-left corner
    page.evaluate("() => { window.scrollTo(0, 0); document.querySelectorAll('*').forEach("
                  "e => { if (e.scrollLeft) e.scrollLeft = 0; }); }")
    return page


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found (install Debian's 'chromium' package or set $LTHBOOK_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the 'playwright' Python package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _check_link(html_root: Path, base: str, href: str, page: str) -> str | None:
    """None if ``href`` (absolute URL) is external or resolves to an existing file and anchor."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    path = html_root / unquote(parts.path).lstrip("/")
    if path.is_dir():
        path = path / "index.html"
    if not path.exists():
        return f"{page}: link to missing file {parts.path}"
    if parts.fragment and path.suffix == ".html" and unquote(parts.fragment) not in _ids(path):
        return f"{page}: link to missing anchor {parts.path}#{parts.fragment}"
    return None


@pytest.mark.book
def test_every_page_in_chromium(served_book, browser):
    book, base = served_book
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    axe = _axe()
    problems: list[str] = []
    findings: dict[str, list[dict]] = {}
    _QuietHandler.errors.clear()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    dark = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    for name in book.pages:
        failed: list[str] = []
        page = _open(context, f"{base}/{name}.html", failed)
        facts = page.evaluate(_PAGE_FACTS_JS)
        text = page.evaluate(_VISIBLE_TEXT_JS)
        page.screenshot(path=str(SCREENSHOTS / f"{name.replace('/', '__')}.png"), full_page=True)
        findings[name] = _axe_findings(axe, page, AXE_OPTIONS)
        page.close()

        # dark mode: the theme follows the reader's system setting ("auto")
        page = _open(dark, f"{base}/{name}.html", failed)
        theme = page.evaluate("() => document.documentElement.dataset.theme")
        if theme != "dark":
            problems.append(f"{name}: a reader who prefers dark gets the {theme!r} theme")
        page.screenshot(path=str(SCREENSHOTS / f"{name.replace('/', '__')}.dark.png"), full_page=True)
        findings[name] += [dict(f, mode="dark") for f in _axe_findings(axe, page, AXE_DARK_OPTIONS)]
        page.close()

        problems += [f"{name}: request failed: {f}" for f in dict.fromkeys(failed)]
        problems += [f"{name}: axe {f['impact']} {f['rule']}{' (dark mode)' if f.get('mode') else ''}: "
                     f"{f['help']} ({f['count']}x, e.g. {f['targets'][0]})"
                     for f in findings[name] if f["impact"] in AXE_FAILING]
        raw = re.findall(r"\\\(|\\\[|\$\$|\\begin\{", text)
        if raw:
            problems.append(f"{name}: raw TeX left untypeset: {sorted(set(raw))}")
        source = (ROOT / f"{name}.md").read_text(encoding="utf-8")
        if re.search(r"\$[^$\n]+\$|\{math\}|```\{math\}", source) and facts["math"] == 0:
            problems.append(f"{name}: the source has math but no MathJax output is on the page")
        if facts["mathErrors"]:
            problems.append(f"{name}: {facts['mathErrors']} MathJax errors")
        for img in facts["images"]:
            if not img["ok"]:
                problems.append(f"{name}: image did not load: {img['src']}")
            elif img["width"] > facts["contentWidth"] + 1:
                problems.append(f"{name}: image wider than the page: {img['src']}")
        for img in facts["figures"]:
            alt = img["alt"].strip()
            if len(alt.split()) < 5 or _FILENAME_ALT.search(alt):
                problems.append(f"{name}: figure without a description in its alt text: {img['src']} "
                                f"(alt={alt!r}; set it with the cell's `mystnb: image: alt:` metadata)")
        if facts["contentLeft"] < 0:
            problems.append(f"{name}: the text starts {-facts['contentLeft']:.0f} px left of the window")
        if facts["scrollWidth"] > facts["clientWidth"] + 1:
            problems.append(f"{name}: horizontal overflow ({facts['scrollWidth']} > {facts['clientWidth']} px)")
        for href in set(facts["links"]):
            problem = _check_link(book.html, base, href, name)
            if problem:
                problems.append(problem)
    context.close()
    dark.close()
    problems += [f"the server answered {e}" for e in dict.fromkeys(_QuietHandler.errors)]
    (SCREENSHOTS / "axe-findings.json").write_text(json.dumps(findings, indent=1))
    assert not problems, "\n".join(problems)
    assert len(list(SCREENSHOTS.glob("*.dark.png"))) >= len(book.pages)
    # the audit ran: every page was checked (a page with no finding has an empty list)
    assert set(findings) == set(book.pages)
