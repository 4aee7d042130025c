"""The documentation site's examples run as written, and its figures come from the benchmarks.

Every ```python and ```sh block of the getting-started and how-to pages (and the home page) is
run, page by page, in a fresh folder holding the files the pages name (`photo.jpg`, a
`sprite.png` with transparency, `frame0.png`..`frame3.png`): the Python blocks of a page share
one namespace, in order; each sh block runs under `bash -e` with this interpreter's `bin/` first
on PATH. A block preceded by `<!-- not run: REASON -->` is shown but not run (a cluster, a
download); the reason must be given. `make docs` builds the site itself (strictly) in `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import NEEDS_DEV, needs_plot, needs_torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([DOCS / "index.md", *DOCS.glob("getting-started/*.md"), *DOCS.glob("how-to/*.md")])
_BLOCK = re.compile(
    r"(?P<skip><!-- not run: (?P<reason>[^>]*?) -->\n)?^```(?P<lang>python|sh)\n(?P<code>.*?)^```$",
    re.S | re.M,
)

_IMPORT = re.compile(r"^(?:import|from) (\w+)", re.M)


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(language, code, skip reason or None) of each runnable-language block of a page."""
    text = page.read_text(encoding="utf-8")
    return [(m["lang"], m["code"], m["reason"]) for m in _BLOCK.finditer(text)]


def make_inputs(folder: Path) -> None:
    """The small images the pages' examples read: a noisy gradient photo, an RGBA sprite,
    four frames of a panning clip."""
    rng = np.random.default_rng(0)
    h, w = 64, 96
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 255 / (w + h)], -1)
    img = np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(folder / "photo.jpg", quality=90)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = img
    rgba[..., 3] = np.clip(x * 4, 0, 255)
    Image.fromarray(rgba).save(folder / "sprite.png")
    for t in range(4):
        Image.fromarray(np.roll(img, t * 5, axis=1)).save(folder / f"frame{t}.png")


def test_pages_have_examples() -> None:
    # The pages this file runs are found (so the run below is not vacuous), and a skipped block
    # says why.
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"getting-started/command-line.md", "getting-started/pytorch.md"} <= names
    assert {"how-to/one-palette.md", "how-to/transparency.md", "how-to/dither.md"} <= names
    for page in PAGES:
        for _, _, reason in blocks(page):
            assert reason is None or reason.strip(), page
    assert sum(len(blocks(p)) for p in PAGES) >= 20


# Pages whose examples need an extra: skipped without it (the minimal configuration).
PAGE_NEEDS = {
    "getting-started/command-line.md": needs_plot,
    "how-to/comfyui-diffusers.md": needs_torch,
}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=PAGE_NEEDS.get(p.relative_to(DOCS).as_posix(), ())) for p in PAGES],
    ids=lambda p: p.relative_to(DOCS).as_posix(),
)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A page whose examples import an optional package (torch, datasets) needs it installed.
    for lang, code, _ in blocks(page):
        if lang == "python":
            for module in _IMPORT.findall(code):
                if module not in ("colorquant", "numpy", "PIL") and module not in sys.modules:
                    extra = f"needs the {module} extra: pip install 'colorquant[{module}]'"
                    pytest.importorskip(module, reason=extra)
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, (lang, code, reason) in enumerate(blocks(page)):
        if reason is not None:
            continue
        where = f"{page.relative_to(ROOT)}, block {i + 1} ({lang})"
        if lang == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the failure message is the point
                pytest.fail(f"{where} raised {type(exc).__name__}: {exc}\n{code}")
        else:
            run = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", code],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert run.returncode == 0, f"{where} exited {run.returncode}:\n{code}\n{run.stderr}"


@needs_plot
def test_figures_are_drawn_from_the_benchmark_results(tmp_path: Path) -> None:
    # benchmarks/figures.py draws every figure the benchmarks page shows, from the committed
    # results alone, and the page shows every figure it draws.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import figures
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert figures.main(["--out", str(tmp_path)]) == 0
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn == ["bytes.png", "quality_by_k.png", "speed.png"]
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for name in drawn:
        assert f"figures/{name}" in page
        assert (DOCS / "figures" / name).is_file()
        with Image.open(tmp_path / name) as im:
            assert im.size[0] >= 800 and im.size[1] >= 300
    # The numbers are the tables': libimagequant's mean PSNR at K = 16 as results.md gives it.
    res = figures.results_by_method(ROOT / "benchmarks" / "results.csv")
    assert round(res["imagequant", 16]["psnr"], 2) == 29.94
    assert res["imagequant", 16]["n"] == 24
    comp = figures.compression_rows(ROOT / "benchmarks")
    assert comp[256]["colorquant nofs"]["bytes / pngquant"] == "0.900"
    assert comp[16]["colorquant fs"]["method"] == "colorquant --dither fs"


def test_readme_links_to_the_site() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make docs" in readme and "build/site" in readme


def _hook(name: str) -> Any:
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(DOCS / "hooks"))


def test_griffe_extension_reads_the_projects_docstring_habits() -> None:
    pytest.importorskip("griffe", reason=NEEDS_DEV)
    ext = _hook("griffe_docstrings")
    doc = (
        "Summary.\n\nArgs:\n    x: the input.\n    mse, delta_e: the metrics, when\n"
        "        measured otherwise.\n    force: overwrite.\n\nExample:\n    >>> 1 + 1\n    2"
    )
    assert ext.rewrite(doc).splitlines() == [
        "Summary.",
        "",
        "Args:",
        "    x: the input.",
        "    mse: the metrics, when",
        "        measured otherwise.",
        "    delta_e: the metrics, when",
        "        measured otherwise.",
        "    force: overwrite.",
        "",
        "Examples:",
        "    >>> 1 + 1",
        "    2",
    ]
    # Outside Args a comma before a colon is prose, left alone.
    prose = "Returns:\n    a, b: two things."
    assert ext.rewrite(prose) == prose


def test_readme_sections_the_site_includes_exist() -> None:
    hook = _hook("readme")
    markers = re.findall(r"<!-- readme: (.+?) -->", (DOCS / "reference" / "cli.md").read_text())
    assert markers == ["Command line", "Datasets: folders, WebDataset shards, Ray, Hugging Face"]
    options = hook.readme_section("Command line")
    assert "| `--quality MIN-MAX` |" in options and "## Python" not in options
    text = "# T\n\n## A\nbody a\n### Sub\nmore\n## B\nbody b\n"
    assert hook.readme_section("A", text) == "body a\n## Sub\nmore\n"
    with pytest.raises(ValueError, match="no section '## C'"):
        hook.readme_section("C", text)
