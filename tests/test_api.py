"""The package surface: ``__all__`` lists real names in a stable order, and every module's
docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import pytest

import colorquant
from conftest import needs_torch

MODULES = sorted(f"colorquant.{m.name}" for m in pkgutil.iter_modules(colorquant.__path__))
# Modules that need the torch extra to import, and those whose examples use tensors.
TORCH_MODULES = {"colorquant.nn"}
TORCH_EXAMPLES = {*TORCH_MODULES, "colorquant.diffusers", "colorquant.quantize"}


def params(names: list[str], needing_torch: set[str]) -> list[object]:
    """``names`` as test parameters, those in ``needing_torch`` skipped without torch."""
    return [pytest.param(n, marks=needs_torch) if n in needing_torch else n for n in names]


def isort_key(name: str) -> tuple[int, list[int | str]]:
    """The order ruff's RUF022 keeps ``__all__`` in ("isort-style"): SCREAMING_SNAKE_CASE
    constants, then CamelCase classes, then everything else; natural order within each group
    (digit runs compare as numbers)."""
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[0].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def test_module_discovery() -> None:
    # The core modules this suite is about are all found (so the doctest run is not vacuous).
    for name in ("color", "histogram", "init", "kmeans", "metrics", "nearest", "quantize"):
        assert f"colorquant.{name}" in MODULES


def test_every_public_name_exists() -> None:
    missing = [name for name in colorquant.__all__ if not hasattr(colorquant, name)]
    assert missing == []
    assert len(set(colorquant.__all__)) == len(colorquant.__all__), "duplicate names"


def test_all_is_sorted() -> None:
    assert colorquant.__all__ == sorted(colorquant.__all__, key=isort_key)


def test_isort_key_by_hand() -> None:
    names = ["quantize", "Quantizer", "COLOR_SPACES", "__version__", "ColorSpace", "DEFAULT_SPEED"]
    assert sorted(names, key=isort_key) == [
        "COLOR_SPACES",
        "DEFAULT_SPEED",
        "ColorSpace",
        "Quantizer",
        "__version__",
        "quantize",
    ]


def test_core_names() -> None:
    for name in ("quantize", "Quantizer", "QuantizeResult", "InputError", "weighted_kmeans"):
        assert name in colorquant.__all__
    assert colorquant.__version__ == "0.1.0"
    assert issubclass(colorquant.InputError, ValueError)


@pytest.mark.parametrize("name", params(MODULES, TORCH_MODULES))
def test_module_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} has no __all__")
    assert [n for n in exported if not hasattr(module, n)] == []
    assert list(exported) == sorted(exported, key=isort_key)


# Modules whose docstrings hold runnable examples (the style guide asks for them): a silent
# "0 attempted" there means the examples were lost, a failure too.
WITH_EXAMPLES = {
    "colorquant",
    "colorquant.color",
    "colorquant.histogram",
    "colorquant.kmeans",
    "colorquant.metrics",
    "colorquant.nearest",
    "colorquant.quantize",
}


@pytest.mark.parametrize("name", params(["colorquant", *MODULES], TORCH_EXAMPLES))
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"no doctest examples found in {name}"


@needs_torch
def test_torch_modules_load_on_first_use_only() -> None:
    # `import colorquant` stays free of torch; colorquant.nn (which needs it) loads when used.
    import subprocess
    import sys

    code = (
        "import sys, colorquant as cq\n"
        "before = 'torch' in sys.modules\n"
        "layer = cq.nn.PaletteQuantize(palette=[[0, 0, 0], [255, 255, 255]])\n"
        "print(before, 'torch' in sys.modules, type(cq.transforms.Quantize(4)).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False", "True", "Quantize"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = colorquant.nope  # type: ignore[attr-defined]
