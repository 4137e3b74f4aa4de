"""Reproducible installs: README's two commands, and the pinned versions they install.

A new release on the registry must not turn main red: every dependency CI and README's
commands install comes from constraints.txt, upgraded on purpose (scripts/upgrade-constraints).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from support import REPO

SCRIPTS = ("bootstrap", "consentgate", "test", "upgrade-constraints")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not pinned with =="
        pins[_canonical(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("test", "zstd", "geoip"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for req in _declared():
        name = _canonical(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_build_tools_are_pinned() -> None:
    # scripts/bootstrap builds without isolation, with these at their pinned versions
    assert {"pip", "setuptools", "wheel"} <= set(_pins())


@pytest.mark.skipif(
    not os.environ.get("CONSENTGATE_PINNED_ENV"),
    reason="only where scripts/test made the environment (it sets CONSENTGATE_PINNED_ENV)",
)
def test_the_running_environment_is_the_pinned_one() -> None:
    wrong = []
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        pinned = _pins().get(name)
        if pinned is not None and dist.version != pinned:
            wrong.append(f"{name} {dist.version} (pinned {pinned})")
    assert wrong == []


def test_readme_first_screen_has_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_screen = readme[: readme.index("The install compiles")]
    assert "```sh\nscripts/consentgate serve\n```" in first_screen
    assert "```sh\nscripts/test\n```" in first_screen
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test" in ci


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash(name: str) -> None:
    path = REPO / "scripts" / name
    assert os.access(path, os.X_OK), f"scripts/{name} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)
