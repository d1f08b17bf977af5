"""The whole book as one PDF, printed from the built HTML by headless Chromium (``make pdf``).

Route (chosen by measurement, see the README): the pages that ``make book`` built are
joined into one print document and printed once by the same system Chromium the browser
test uses, so math (MathJax), figures, theorem boxes and code look exactly as on the web,
and no TeX installation is needed.

1. The ``<article>`` of every page of ``_toc.yml`` (raw HTML as Sphinx wrote it, before
   MathJax) goes into one document, ``book/_lthbook_print.html`` in the HTML folder (so the
   relative paths of images and styles still resolve), after a title page and a table of
   contents. Ids are prefixed with the page name (``ch3_local_geometry--eq-hessian``)
   because every page has its own "summary" and "exercises"; links between pages become
   links inside the document, so cross references, equation and citation links work in the
   PDF. Links to anything that is not a book page point at the published site
   (``html.baseurl``).
2. The document is served on 127.0.0.1, MathJax typesets it, and Chromium prints it to PDF
   (A4, page numbers in the footer, a bookmark outline from the headings).
3. pypdf reads the page on which each chapter starts (from the outline); the numbers are
   written into the table of contents and the document is printed again; pypdf sets the
   PDF's title and author.

Usage: ``python _ext/lthbook_pdf.py --html _build/html [--out _build/html/lthbook.pdf]``.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import os
import re
import shutil
import sys
import threading
import time
from datetime import date
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRINT_NAME = "_lthbook_print.html"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

PRINT_CSS = """
@page { size: A4; margin: 18mm 16mm 20mm 16mm; }
html, body { background: #fff !important; }
body { margin: 0; }
.bd-article { max-width: none !important; padding: 0 !important; }
.lthbook-pdf-chapter { break-before: page; }
.lthbook-pdf-title { height: 240mm; display: flex; flex-direction: column; justify-content: center;
                     align-items: center; text-align: center; }
.lthbook-pdf-title img { width: 42mm; margin-bottom: 12mm; }
.lthbook-pdf-title h1 { font-size: 2.4rem; margin: 0 0 6mm 0; }
.lthbook-pdf-title .subtitle { font-size: 1.25rem; max-width: 150mm; }
.lthbook-pdf-title .meta { margin-top: 18mm; color: #444; }
.lthbook-pdf-contents { break-before: page; }
.lthbook-pdf-contents ol { list-style: none; padding-left: 0; }
.lthbook-pdf-contents li { display: flex; gap: 0.5em; margin: 0.35em 0; }
.lthbook-pdf-contents li .dots { flex: 1; border-bottom: 1px dotted #888; margin-bottom: 0.3em; }
.lthbook-pdf-contents li.part { font-weight: bold; margin-top: 1em; }
/* on paper: no permalink marks, copy buttons or "show code" toggles; figures keep together */
a.headerlink, .copybtn, button, .toggle-details__summary, details.hide-input > summary,
.cell.tag_hide-input details summary { display: none !important; }
.cell.tag_hide-input details:not([open]) > *:not(summary) { display: none; }
figure, .cell_output img, table, .proof, .exercise, .admonition { break-inside: avoid; }
h1, h2, h3 { break-after: avoid; }
pre { white-space: pre-wrap; word-break: break-word; }
a { color: #1a4f9c; }
"""

FOOTER = ('<div style="font-size:8px; width:100%; text-align:center; color:#555;">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def toc_pages(root: Path = ROOT) -> list[tuple[str, str | None]]:
    """(docname, part caption or None) for every document of ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages: list[tuple[str, str | None]] = [(toc["root"], None)]
    for part in toc.get("parts", []):
        caption = part.get("caption")
        for chapter in part["chapters"]:
            pages.append((chapter["file"], caption))
            caption = None
            pages.extend((s["file"], None) for s in chapter.get("sections", []))
    return pages


def _slug(docname: str) -> str:
    return docname.split("/")[-1]


def _rewrite(article, docname: str, docs: set[str], baseurl: str) -> None:
    """Prefix ids with the page's slug and turn links between pages into in-document links."""
    slug = _slug(docname)
    folder = docname.rsplit("/", 1)[0] + "/" if "/" in docname else ""
    for tag in article.find_all(id=True):
        tag["id"] = f"{slug}--{tag['id']}"
    for tag in article.find_all(attrs={"name": True}):
        if tag.name == "a":
            tag["name"] = f"{slug}--{tag['name']}"
    for a in article.find_all("a", href=True):
        href = a["href"]
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or href.startswith("mailto:"):
            continue
        if not parts.path:  # "#anchor" on the same page
            a["href"] = f"#{slug}--{parts.fragment}" if parts.fragment else f"#{slug}--top"
            continue
        target = os.path.normpath(os.path.join(folder, parts.path)).replace(os.sep, "/")
        target_doc = target[:-5] if target.endswith(".html") else None
        if target_doc in docs:
            a["href"] = f"#{_slug(target_doc)}--{parts.fragment or 'top'}"
        else:  # genindex, notebooks, sources: the published site
            a["href"] = urljoin(baseurl, target) + (f"#{parts.fragment}" if parts.fragment else "")


def build_print_html(html_dir: Path, root: Path = ROOT) -> Path:
    """Write ``html_dir/book/_lthbook_print.html``: title page, contents and every page's article."""
    from bs4 import BeautifulSoup

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    baseurl = config.get("html", {}).get("baseurl", "") or "https://example.org/"
    pages = toc_pages(root)
    docs = {d for d, _ in pages}
    first = html_dir / f"{pages[0][0]}.html"
    if not first.exists():
        raise FileNotFoundError(f"{first} is missing: build the HTML book first (make book)")
    shell = BeautifulSoup(first.read_text(encoding="utf-8"), "html.parser")
    head = shell.head
    # keep the styles and MathJax (with its configuration); drop the theme's scripts
    for script in head.find_all("script"):
        src = script.get("src", "")
        if "mathjax" in src.lower() or "window.MathJax" in (script.string or ""):
            continue
        script.decompose()
    for link in head.find_all("link"):
        if "stylesheet" not in (link.get("rel") or []):
            link.decompose()
    style = shell.new_tag("style")
    style.string = PRINT_CSS
    head.append(style)
    title = config.get("title", "The book")
    head.title.string = title

    body = [f'<main><article class="bd-article">']
    logo = config.get("logo")
    logo_html = f'<img src="../{html.escape(logo)}" alt="">' if logo else ""
    scale = os.environ.get("LTHBOOK_SCALE", "book")
    body.append(
        f'<section class="lthbook-pdf-title">{logo_html}<h1>{html.escape(title)}</h1>'
        '<p class="subtitle">An executable companion to <em>Why Lottery Ticket Wins? A Theoretical Perspective '
        'of Sample Complexity on Pruned Neural Networks</em> (Zhang, Wang, Liu, Chen and Xiong, NeurIPS 2021)</p>'
        f'<p class="meta">{html.escape(config.get("author", ""))}<br>'
        f'Printed {date.today().isoformat()} from the HTML book (experiments at the <code>{html.escape(scale)}</code> '
        f'scale)<br><a href="{html.escape(baseurl)}">{html.escape(baseurl)}</a><br>MIT licence</p></section>')

    contents = ['<section class="lthbook-pdf-contents"><h1>Contents</h1><ol>']
    articles = []
    for docname, part in pages:
        soup = BeautifulSoup((html_dir / f"{docname}.html").read_text(encoding="utf-8"), "html.parser")
        article = soup.find("article", class_="bd-article")
        if article is None:
            raise ValueError(f"{docname}.html has no <article class='bd-article'>")
        h1 = article.find("h1")
        heading = h1.get_text(" ", strip=True).replace("#", "").strip() if h1 else docname
        _rewrite(article, docname, docs, baseurl)
        if part:
            contents.append(f'<li class="part">{html.escape(part)}</li>')
        slug = _slug(docname)
        contents.append(f'<li><a href="#{slug}--top">{html.escape(heading)}</a><span class="dots"></span>'
                        f'<span class="lthbook-pdf-page" data-doc="{slug}"></span></li>')
        inner = "".join(str(c) for c in article.contents)
        articles.append(f'<section class="lthbook-pdf-chapter" id="{slug}--top" data-title="{html.escape(heading)}">'
                        f"{inner}</section>")
    contents.append("</ol></section>")
    body += contents + articles + ["</article></main>"]

    out = html_dir / "book" / PRINT_NAME
    out.write_text(f"<!DOCTYPE html>\n<html lang=\"en\" data-theme=\"light\">{head}<body>{''.join(body)}</body></html>",
                   encoding="utf-8")
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _chromium() -> str:
    found = os.environ.get("LTHBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("make pdf needs Chromium: install Debian's 'chromium' package (.ci/run does) "
                           "or set $LTHBOOK_CHROMIUM to a Chromium binary")
    return found


def _outline_pages(reader) -> list[tuple[int, list[int]]]:
    """(page, [pages of its subsections]) of each top-level entry of the outline Chromium wrote
    (its titles are unreliable: Chromium repeats the text of headings that hold links or math)."""
    entries: list[tuple[int, list[int]]] = []
    for item in reader.outline:
        if isinstance(item, list):
            if entries:
                entries[-1][1].extend(reader.get_destination_page_number(i) for i in item if not isinstance(i, list))
        else:
            entries.append((reader.get_destination_page_number(item), []))
    return entries


def print_pdf(html_dir: Path, out: Path, root: Path = ROOT) -> Path:
    """Print the book in ``html_dir`` to ``out``; return ``out``."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    html_dir, out = Path(html_dir).resolve(), Path(out).resolve()
    print_file = build_print_html(html_dir, root)
    handler = functools.partial(_Quiet, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = out.with_suffix(".tmp.pdf")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/book/{PRINT_NAME}", wait_until="load")
            page.evaluate("async () => { if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; } }")
            page.evaluate("() => document.fonts.ready")
            # the outline has one top-level entry per <h1> (title page, contents, then one per page)
            # and one child per <h2>; their clean titles, from the DOM
            headings = page.evaluate("""() => Array.from(document.querySelectorAll('article h1')).map(h1 => {
                const clean = e => { const c = e.cloneNode(true);
                    c.querySelectorAll('mjx-container').forEach(m => m.replaceWith(
                        (m.querySelector('mjx-assistive-mml math') || m).textContent));
                    c.querySelectorAll('.headerlink').forEach(a => a.remove());
                    return c.textContent.replace(/\\s+/g, ' ').trim(); };
                const section = h1.closest('.lthbook-pdf-chapter');
                const h2s = section ? Array.from(section.querySelectorAll('h2')).map(clean) : [];
                return {title: clean(h1), doc: section ? section.id.replace(/--top$/, '') : null, sections: h2s};
            })""")
            options = dict(format="A4", print_background=True, outline=True, tagged=True, display_header_footer=True,
                           header_template="<span></span>", footer_template=FOOTER,
                           margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"})
            page.pdf(path=str(tmp), **options)
            pages = _outline_pages(PdfReader(tmp))
            if len(pages) != len(headings):
                raise RuntimeError(f"the PDF outline has {len(pages)} top-level entries for {len(headings)} <h1>")
            numbers = {h["doc"]: p + 1 for h, (p, _) in zip(headings, pages) if h["doc"]}
            page.evaluate("numbers => document.querySelectorAll('.lthbook-pdf-page').forEach("
                          "e => { e.textContent = numbers[e.dataset.doc] || ''; })", numbers)
            page.pdf(path=str(tmp), **options)
            browser.close()
        reader = PdfReader(tmp)
        pages = _outline_pages(reader)
        writer = PdfWriter(clone_from=reader)
        # replace Chromium's outline by one with clean titles: chapters, then their sections
        del writer.root_object["/Outlines"]
        for heading, (page_index, children) in zip(headings, pages):
            parent = writer.add_outline_item(heading["title"], page_index)
            for title, child in zip(heading["sections"], children):
                writer.add_outline_item(title, child, parent=parent)
        writer.page_mode = "/UseOutlines"
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        writer.add_metadata({"/Title": config.get("title", ""), "/Author": config.get("author", ""),
                             "/Subject": "Why Lottery Ticket Wins? (NeurIPS 2021), an executable book"})
        with open(out, "wb") as fh:
            writer.write(fh)
    finally:
        server.shutdown()
        server.server_close()
        tmp.unlink(missing_ok=True)
        print_file.unlink(missing_ok=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", required=True, help="the built HTML folder (e.g. _build/html)")
    parser.add_argument("--out", help="the PDF to write (default: <html>/lthbook.pdf)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.html) / "lthbook.pdf"
    start = time.perf_counter()
    print_pdf(Path(args.html), out)
    from pypdf import PdfReader

    print(f"wrote {out} ({len(PdfReader(out).pages)} pages, {out.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
