"""The install hints name the extras' own packages, pinned as pyproject.toml pins them ("nncli"
on PyPI is another project: `pip install "nncli[plot]"` would replace this one)."""

from __future__ import annotations

import re

from nncli.commands.extras import PACKAGES, install_hint
from tests.conftest import ROOT


def _extras() -> dict[str, list[str]]:
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[project.optional-dependencies]"):]
    return {name: re.findall(r'"([^"]+)"', packages) for name, packages in re.findall(r'^(\w+) = \[(.*?)\]', section, re.M)}


def test_each_hint_installs_what_the_extra_holds():
    extras = _extras()
    for extra, packages in PACKAGES.items():
        assert [package.strip('"') for package in packages] == extras[extra], extra


def test_no_hint_names_the_package_on_pypi():
    for extra in PACKAGES:
        hint = install_hint(extra)
        assert "nncli[" not in hint and f'pip install -e ".[{extra}]"' in hint
