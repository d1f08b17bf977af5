"""The publishing workflow (.github/workflows/book.yml) and CITATION.cff are valid.

``actionlint`` does not install offline here (its PyPI package downloads a binary when it
is built), so the workflow is validated against the GitHub Actions workflow schema that
``check-jsonschema`` bundles (no network), and its steps are checked against what the
README promises: the book job builds at the ``book`` scale from a clean checkout with pip
and execution caches and makes the PDF; a second job runs the tests; publishing happens
only for pushes to main and goes to the gh-pages branch the Colab buttons read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema (the 'test' extra) is not installed")
    return subprocess.run([exe, "--builtin-schema", schema, str(path)], capture_output=True, text=True)


def test_workflow_matches_the_github_actions_schema(tmp_path):
    proc = _check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the validator does reject a broken workflow (a job without runs-on, a misspelt key)
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["test"]["runs-on"]
    broken["jobs"]["book"]["step"] = broken["jobs"]["book"].pop("steps")
    bad = tmp_path / "broken.yml"
    bad.write_text(yaml.safe_dump(broken))
    assert _check_jsonschema("vendor.github-workflows", bad).returncode != 0


def test_citation_file_is_valid():
    proc = _check_jsonschema("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_builds_tests_and_publishes_what_the_readme_says():
    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "push" in on and "pull_request" in on
    runs = {name: "\n".join(step.get("run", "") for step in job.get("steps", [])) for name, job in jobs.items()}
    uses = {name: [step.get("uses", "") for step in job.get("steps", [])] for name, job in jobs.items()}
    assert ".ci/run" in runs["test"]
    assert "make setup" in runs["book"] and "make pdf SCALE=book" in runs["book"]
    cached = "\n".join(str(step.get("with", {}).get("path", "")) for step in jobs["book"]["steps"])
    assert "~/.cache/pip" in cached and "_build/.jupyter_cache" in cached and "~/.cache/lthbook" in cached
    assert any(u.startswith("actions/upload-artifact") for u in uses["book"])
    deploy = jobs["deploy"]
    assert set(deploy["needs"]) == {"test", "book"}
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    publish = next(step for step in deploy["steps"] if step.get("uses", "").startswith("peaceiris/actions-gh-pages"))
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    # the Colab buttons open notebooks from this branch
    assert publish["with"]["publish_branch"] == config["sphinx"]["config"]["lthbook_colab_branch"]
    assert wf["permissions"] == {"contents": "read"} and deploy["permissions"] == {"contents": "write"}
