"""The package's build metadata: an SPDX license with its file, a bounded build backend, and a
source distribution that carries every file of the compiled core."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

import colorquant

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src/colorquant/_cpu"

# Prepares the wheel's metadata with the installed setuptools, as pip's build would, recording
# every warning the backend gives.
PREPARE = """
import json, sys, warnings
import setuptools.build_meta as backend
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    name = backend.prepare_metadata_for_build_wheel(sys.argv[1])
print(json.dumps({"dist_info": name, "warnings": [str(w.message) for w in caught]}))
"""

# Builds the source distribution with the installed setuptools, as `python -m build --sdist` would.
SDIST = """
import sys
import setuptools.build_meta as backend
print(backend.build_sdist(sys.argv[1]))
"""


def test_license_is_spdx_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_build_requirement_is_bounded() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (setuptools,) = [Requirement(r) for r in requires if r.startswith("setuptools")]
    operators = {spec.operator for spec in setuptools.specifier}
    assert "<" in operators and ">=" in operators
    assert Version("77") in setuptools.specifier  # SPDX license strings start there
    installed = Version(metadata.version("setuptools"))
    assert installed in setuptools.specifier, f"the dev setuptools {installed} is out of range"


def test_metadata_builds_without_deprecation(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "src/colorquant").mkdir(parents=True)
    shutil.copy(ROOT / "src/colorquant/__init__.py", tmp_path / "src/colorquant/__init__.py")
    out = tmp_path / "meta"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", PREPARE, str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    license_warnings = [w for w in report["warnings"] if "license" in w.lower()]
    assert license_warnings == []
    assert "deprecat" not in done.stderr.lower()
    text = (out / report["dist_info"] / "METADATA").read_text()
    assert "License-Expression: MIT" in text
    # One version source: the package's __version__, read without importing it.
    assert f"\nVersion: {colorquant.__version__}\n" in text
    assert "Classifier: Programming Language :: Python :: 3" in text
    assert "License-File: LICENSE" in text
    if "Classifier: License" in text:
        pytest.fail("a license classifier beside the SPDX expression is deprecated")


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "colorquant", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"colorquant, version {colorquant.__version__}"
    usage = subprocess.run([sys.executable, "-m", "colorquant", "quantize", "-k", "abc", "x.png"],
                           capture_output=True, text=True)  # fmt: skip
    assert usage.returncode == 2 and usage.stderr.startswith("colorquant: error:")


def test_changelog_names_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {colorquant.__version__}" in text


def core_sources() -> list[str]:
    """The C files of the compiled core in the checkout."""
    return sorted(p.name for p in CORE.iterdir() if p.suffix in (".c", ".h"))


def test_module_c_includes_every_stage_file_once() -> None:
    # One translation unit: module.c includes the header and every stage file, none twice and
    # none forgotten (a stage file it does not include would be built into nothing).
    included = re.findall(r'^#include "([^"]+)"$', (CORE / "module.c").read_text(), re.MULTILINE)
    assert len(included) == len(set(included))
    assert sorted([*included, "module.c"]) == core_sources()
    assert included[0] == "common.h" and len(included) >= 11


def test_sdist_carries_every_core_source(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path / name)
    ignore = shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=ignore)
    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-c", SDIST, str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip().splitlines()[-1]
    with tarfile.open(out / name) as sdist:
        members = sdist.getnames()
    shipped = sorted(Path(m).name for m in members if "/src/colorquant/_cpu/" in m)
    assert [n for n in shipped if n.endswith((".c", ".h"))] == core_sources()
