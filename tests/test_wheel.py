"""The binary wheel as a user installs it: the stable ABI, a stripped binary, the command line.

``make wheel-test`` builds the sdist and the wheel, repairs the wheel with auditwheel, installs it
with binaries only into a fresh venv without torch and without a compiler on PATH, and runs the
minimal configuration of the suite, this module included, from a copy of ``tests/`` (not the
checkout); cibuildwheel runs the same on every platform's wheel. The checks of an installed wheel
skip where ``colorquant`` is imported from the checkout (``src/``, the editable dev install).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import colorquant
import colorquant._cpu

PACKAGE = Path(colorquant.__file__).resolve().parent
FROM_CHECKOUT = PACKAGE.parent.name == "src"
installed_wheel = pytest.mark.skipif(
    FROM_CHECKOUT,
    reason="checks an installed wheel (make wheel-test, cibuildwheel), not the checkout",
)

#: The stable ABI: CPython 3.11 and later, except the free-threaded builds.
LIMITED_API = (
    sys.implementation.name == "cpython"
    and sys.version_info >= (3, 11)
    and not sysconfig.get_config_var("Py_GIL_DISABLED")
)


def kernels_path() -> Path:
    spec = importlib.util.find_spec("colorquant._cpu._kernels")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


@pytest.mark.skipif(not LIMITED_API, reason="the stable ABI needs CPython >= 3.11 with the GIL")
@pytest.mark.skipif(sys.platform == "win32", reason="Windows names an abi3 module plain .pyd")
def test_kernels_target_the_stable_abi() -> None:
    # One cp311-abi3 build serves every later CPython: setuptools names it _kernels.abi3.so.
    assert kernels_path().name == "_kernels.abi3.so"


@installed_wheel
def test_imported_from_site_packages() -> None:
    site = {Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")}
    assert PACKAGE.parent in site, f"colorquant imported from {PACKAGE}, not {sorted(site)}"
    assert kernels_path().resolve().is_relative_to(PACKAGE)
    assert importlib.util.find_spec("torch") is None, "the wheel's test venv has no torch"


@installed_wheel
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks an ELF binary")
def test_binary_is_stripped() -> None:
    data = kernels_path().read_bytes()
    assert data[:4] == b"\x7fELF"
    # The section names of an unstripped build: its symbol table and its debugging sections.
    assert b".symtab" not in data and b".debug_info" not in data
    assert len(data) < 300_000, f"{len(data)} bytes: the stripped core is ~140 KB"


@installed_wheel
def test_command_line_quantizes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    source = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source)
    name = "colorquant.exe" if sys.platform == "win32" else "colorquant"
    script = Path(sysconfig.get_path("scripts")) / name
    out = tmp_path / "out.png"
    done = subprocess.run(
        [str(script), "quantize", str(source), "-k", "8", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.mode == "P" and image.size == (64, 48)
        used = np.unique(np.asarray(image))
    assert 1 < used.size <= 8
    assert colorquant._cpu.get_num_threads() >= 1


ROOT = Path(__file__).resolve().parents[1]
in_checkout = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file(), reason="reads the checkout's build configuration"
)


@in_checkout
def test_cibuildwheel_runs_what_make_wheel_test_runs() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert config["build"] == ["cp310-*", "cp311-*", "cp314-*"]
    assert config["environment"] == {"COLORQUANT_STRIP": "1"}
    assert config["test-sources"] == ["tests"]
    assert all("torch" not in r and "matplotlib" not in r for r in config["test-requires"])
    ignored = set(re.findall(r"--ignore=tests/(\w+)\.py", config["test-command"]))
    make = (ROOT / "Makefile").read_text()
    (skip,) = re.findall(r"^WHEEL_SKIP := (.*)$", make, flags=re.MULTILINE)
    assert ignored == set(skip.split())
    assert "wheel-test" in re.findall(r"^test: (.*)$", make, flags=re.MULTILINE)[0].split()


@in_checkout
def test_release_workflow_publishes_by_trusted_publishing() -> None:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (requirements-dev.lock)")
    workflow = yaml.safe_load((ROOT / ".github/workflows/wheels.yml").read_text())
    jobs = workflow["jobs"]
    assert len(jobs["wheels"]["strategy"]["matrix"]["os"]) == 5
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"wheels", "sdist"}
    assert publish["permissions"] == {"id-token": "write"}
    assert "release" in publish["if"] and "published" in publish["if"]
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    # PyYAML reads the key `on` as True.
    assert workflow[True]["release"] == {"types": ["published"]}
