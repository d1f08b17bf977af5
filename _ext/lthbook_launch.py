"""Sphinx extension: publish the chapters as ``.ipynb`` and point the Colab buttons at them.

sphinx-book-theme builds the Colab launch URL as
``{colab_url}/github/{org}/{repo}/blob/{branch}/{page}{source suffix}``; for this book's
MyST ``.md`` chapters that is a Markdown file, which Colab cannot open. This extension

* writes every chapter as a plain notebook without outputs into the built HTML folder,
  ``<html>/notebooks/<docname>.ipynb`` (see :mod:`lthbook_notebooks`), so the notebooks
  are published with the book;
* rewrites each page's Colab button to open that notebook from the branch that holds the
  published HTML (``lthbook_colab_branch``, default ``gh-pages``, the branch that
  ``ghp-import``/GitHub Pages use): ``.../blob/gh-pages/notebooks/book/ch3_....ipynb``.

Binder keeps the theme's link, which opens the ``.md`` chapter in JupyterLab (jupytext
shows it as a notebook; see ``postBuild``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import lthbook_notebooks  # noqa: E402

from sphinx.util import logging  # noqa: E402

LOGGER = logging.getLogger(__name__)


def colab_notebook_url(colab_url: str, repo_url: str, branch: str, docname: str) -> str:
    """Colab URL of the published notebook of ``docname`` (``repo_url`` a GitHub URL)."""
    org, repo = repo_url.rstrip("/").split("/")[-2:]
    path = f"{lthbook_notebooks.HTML_SUBDIR}/{docname}.ipynb"
    return f"{colab_url.rstrip('/')}/github/{org}/{repo}/blob/{branch}/{path}"


def _rewrite_colab(app, pagename, templatename, context, doctree):
    options = app.config.html_theme_options
    colab_url = options.get("launch_buttons", {}).get("colab_url", "")
    repo_url = options.get("repository_url", "")
    if not colab_url or "github.com" not in repo_url:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") == "Colab":
                button["url"] = colab_notebook_url(colab_url, repo_url, app.config.lthbook_colab_branch, pagename)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated ``<script>`` entries. The inline scripts of sphinx-thebe and
    sphinx-togglebutton reach each page twice in this build (once with filename ``None``,
    once with ``""``), and the second copy of sphinx-thebe's ``const THEBE_JS_URL`` is a
    JavaScript error on every page (found by the browser test)."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        # an inline script's filename is None or "" depending on how it was registered
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in
                                                             getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _write_notebooks(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / lthbook_notebooks.HTML_SUBDIR
    written = lthbook_notebooks.write_notebooks(out, root=Path(app.srcdir))
    LOGGER.info(f"lthbook: wrote {len(written)} notebooks for Colab into {out}")


def setup(app):
    app.add_config_value("lthbook_colab_branch", "gh-pages", "html")
    # after sphinx-book-theme's own add_launch_buttons (priority 501)
    app.connect("html-page-context", _rewrite_colab, priority=600)
    app.connect("html-page-context", _dedupe_scripts, priority=600)
    app.connect("build-finished", _write_notebooks)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
