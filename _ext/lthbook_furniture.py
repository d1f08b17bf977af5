"""Sphinx extension: page furniture and accessibility fixes the themes do not make.

PDF link
    ``lthbook_pdf`` (config value, default ``""``) names the whole-book PDF inside the built
    HTML folder (``make pdf`` writes it there). The footer of every page
    (``_templates/extra-footer.html``) links to it when that file exists as the build
    starts, so a build without a PDF never carries a dead link. ``make pdf`` therefore
    builds the HTML, prints the PDF, and builds the HTML once more: the presence of the PDF
    is recorded in the config value ``lthbook_pdf_present``, whose change makes Sphinx
    rewrite every page (the executed notebooks come from the cache: seconds).

Accessibility (found by the axe-core audit of tests/test_book_browser.py)
    * pydata-sphinx-theme's sidebar opens a chapter's sections with a ``<summary>`` that
      holds only a chevron icon, so a screen reader announces a nameless control on every
      page (axe ``summary-name``, serious). Each such ``<summary>`` gets an ``aria-label``
      naming the chapter: "Sections of 5. Experiments".
    * docutils writes the bibliography as ``role="list"`` whose entries have the
      deprecated ``role="doc-biblioentry"``, which is not a list item (axe
      ``aria-required-children``, critical). The entries get ``role="listitem"``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

_EMPTY_SUMMARY = re.compile(r'<summary>(\s*<span class="toctree-toggle")')


def _find_pdf(app, config):
    name = config.lthbook_pdf
    config.lthbook_pdf_present = bool(name) and (Path(app.outdir) / name).is_file()


def _pdf_context(app, pagename, templatename, context, doctree):
    context["lthbook_pdf"] = app.config.lthbook_pdf if app.config.lthbook_pdf_present else ""


def label_toggles(toc_html: str) -> str:
    """Give every chevron-only ``<summary>`` of a sidebar toctree an ``aria-label``.

    The label names the entry the ``<details>`` belongs to: the text of the link just
    before it in the same ``<li>`` (``<li><a ...>5. Experiments</a><details><summary>...``).
    """
    out, pos = [], 0
    for m in _EMPTY_SUMMARY.finditer(toc_html):
        before = toc_html[:m.start()]
        li = before.rfind("<li")
        link = re.search(r"<a\b[^>]*>(.*?)</a>", before[li:], re.DOTALL) if li >= 0 else None
        title = html.unescape(re.sub(r"<[^>]+>", "", link.group(1))).strip() if link else ""
        label = f"Sections of {title}" if title else "Show or hide the sections"
        out += [toc_html[pos:m.start()], f'<summary aria-label="{html.escape(label)}">', m.group(1)]
        pos = m.end()
    out.append(toc_html[pos:])
    return "".join(out)


def _accessible_page(app, pagename, templatename, context, doctree):
    generate = context.get("generate_toctree_html")
    if callable(generate) and not getattr(generate, "_lthbook_labelled", False):
        def labelled(*args, **kwargs):
            return label_toggles(str(generate(*args, **kwargs)))
        labelled._lthbook_labelled = True
        context["generate_toctree_html"] = labelled
    body = context.get("body")
    if isinstance(body, str) and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


def setup(app):
    app.add_config_value("lthbook_pdf", "", "html")
    app.add_config_value("lthbook_pdf_present", False, "html")
    app.connect("config-inited", _find_pdf)
    app.connect("html-page-context", _pdf_context)
    # after pydata-sphinx-theme puts generate_toctree_html into the context (priority 500)
    app.connect("html-page-context", _accessible_page, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
