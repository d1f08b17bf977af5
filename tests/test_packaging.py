"""The two dependency lists (pyproject.toml for pip, environment.yml for conda/Binder) agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalize(requirement: str) -> str:
    return requirement.replace(" ", "").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from_pyproject = set(project["dependencies"])
    for group in project["optional-dependencies"].values():
        from_pyproject |= set(group)

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    from_env = {req for req in pip_sections[0] if not req.startswith("-e")}

    assert {_normalize(r) for r in from_env} == {_normalize(r) for r in from_pyproject}
    assert "-e ." in pip_sections[0], "environment.yml must install the lthbook package itself"


def test_python_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [dep for dep in env["dependencies"] if isinstance(dep, str) and dep.startswith("python")]
    assert python == ["python=3.11"]
    assert project["requires-python"] == ">=3.11"
