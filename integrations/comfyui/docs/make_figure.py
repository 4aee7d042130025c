"""Draw docs/example_workflow.png: the example workflow's graph and what it makes.

The graph is drawn from ``example_workflows/colorquant_palettes.json`` (node boxes where the
workflow places them, links between their slots); its nodes are run here as ComfyUI runs them
(the pack loaded from this folder, a stand-in ``folder_paths`` writing to a temporary folder)
on a Kodak photo (``--image``), and the input, the two saved palette PNGs and the palette are
shown below it.

    .venv/bin/python integrations/comfyui/docs/make_figure.py \
        --image ../shared/images/kodak/kodim23.png
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import colorquant as cq

PACK = Path(__file__).resolve().parents[1]
WORKFLOW = PACK / "example_workflows" / "colorquant_palettes.json"


def stand_in_folder_paths(base: Path) -> types.ModuleType:
    fp = types.ModuleType("folder_paths")
    (base / "output").mkdir()

    def get_save_image_path(
        prefix: str, out: str, width: int = 0, height: int = 0
    ) -> tuple[str, str, int, str, str]:
        sub, name = prefix.rsplit("/", 1) if "/" in prefix else ("", prefix)
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
        return str(Path(out) / sub), name, 1, sub, prefix

    fp.get_output_directory = lambda: str(base / "output")  # type: ignore[attr-defined]
    fp.get_input_directory = lambda: str(base)  # type: ignore[attr-defined]
    fp.get_save_image_path = get_save_image_path  # type: ignore[attr-defined]
    return fp


def load_pack(base: Path) -> Any:
    sys.modules["folder_paths"] = stand_in_folder_paths(base)
    name = str(PACK).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, PACK / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def widget_names(cls: Any) -> list[str]:
    spec = cls.INPUT_TYPES()
    kinds = {**spec["required"], **spec.get("optional", {})}
    return [
        n
        for n, k in kinds.items()
        if isinstance(k[0], list) or k[0] in ("INT", "FLOAT", "STRING", "BOOLEAN")
    ]


def run(workflow: dict[str, Any], pack: Any, image: np.ndarray) -> dict[int, Any]:
    """Every node of the workflow, in dependency order; LoadImage gives ``image``."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    loaded = torch.from_numpy(image).float()[None] / 255
    results: dict[int, Any] = {}
    for n in sorted(nodes.values(), key=lambda n: n["order"]):
        if n["type"] == "LoadImage":
            results[n["id"]] = (loaded, torch.zeros(1, 64, 64))
            continue
        if n["type"] == "PreviewImage":
            continue
        cls = pack.NODE_CLASS_MAPPINGS[n["type"]]
        args = dict(zip(widget_names(cls), n["widgets_values"], strict=False))
        for slot in n["inputs"]:
            if slot.get("link") is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                args[slot["name"]] = results[source][source_slot]
        obj = cls()
        results[n["id"]] = getattr(obj, cls.FUNCTION)(**args)
    return results


def draw(workflow: dict[str, Any], results: dict[int, Any], base: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig = plt.figure(figsize=(12, 9.2), dpi=110)
    graph = fig.add_axes((0.01, 0.40, 0.98, 0.59))
    nodes = {n["id"]: n for n in workflow["nodes"]}

    def slot_xy(n: dict[str, Any], index: int, output: bool) -> tuple[float, float]:
        x, y = n["pos"]
        return (x + n["size"][0] if output else x, y + 40 + 22 * index)

    for _, source, s_slot, target, t_slot, kind in workflow["links"]:
        (x0, y0), (x1, y1) = (
            slot_xy(nodes[source], s_slot, True),
            slot_xy(nodes[target], t_slot, False),
        )
        color = {"IMAGE": "#64b5f6", "MASK": "#81c784", "PALETTE": "#ffb74d"}.get(kind, "#999")
        xs = np.linspace(0, 1, 30)
        bend = xs * xs * (3 - 2 * xs)
        graph.plot(x0 + (x1 - x0) * xs, y0 + (y1 - y0) * bend, color=color, lw=2, zorder=1)
    for n in nodes.values():
        x, y = n["pos"]
        w, h = n["size"][0], max(n["size"][1], 60)
        own = n["type"].startswith("ColorQuant")
        graph.add_patch(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=12",
                facecolor="#353535",
                edgecolor="#e0a040" if own else "#777",
                lw=2,
                zorder=2,
            )
        )
        graph.text(x + 10, y + 22, n["type"], color="white", fontsize=9, weight="bold", zorder=3)
        values = [v for v in n.get("widgets_values", []) if not isinstance(v, str) or len(v) < 30]
        text = ", ".join(str(v) for v in values[:6])
        graph.text(x + 10, y + h - 14, text, color="#bbb", fontsize=7, zorder=3)
    graph.set_xlim(20, 1500)
    graph.set_ylim(920, 20)
    graph.set_facecolor("#202020")
    graph.set_xticks([])
    graph.set_yticks([])

    panels: list[tuple[str, np.ndarray]] = []
    for node_id, title in (
        (1, "input (LoadImage)"),
        (3, "Save: 16 colors, one palette"),
        (6, "Save: PICO-8, Floyd-Steinberg"),
    ):
        if node_id == 1:
            image = (results[1][0][0].numpy() * 255).round().astype(np.uint8)
        else:
            saved = results[node_id]["ui"]["images"][0]
            path = base / "output" / saved["subfolder"] / saved["filename"]
            with Image.open(path) as im:
                title += f"\n{path.name}: {im.mode} PNG, {path.stat().st_size:,} bytes"
                image = np.asarray(im.convert("RGB"))
        panels.append((title, image))
    for i, (title, image) in enumerate(panels):
        ax = fig.add_axes((0.01 + 0.25 * i, 0.02, 0.24, 0.34))
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    swatch = results[7][0][0].numpy()
    ax = fig.add_axes((0.77, 0.1, 0.22, 0.2))
    ax.imshow(swatch)
    ax.set_title("Palette Preview (the 16 colors)", fontsize=9)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as im:  # the figure itself as a 256-color palette PNG
        figure = cq.quantize(im.convert("RGB"), 256, dither="fs")
    cq.save_result(figure, out, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("example_workflow.png")
    )
    args = parser.parse_args()
    with Image.open(args.image) as im:
        photo = np.array(im.convert("RGB"))
    workflow = json.loads(WORKFLOW.read_text())
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        pack = load_pack(base)
        results = run(workflow, pack, photo)
        draw(workflow, results, base, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
