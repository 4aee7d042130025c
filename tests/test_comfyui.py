"""The ComfyUI node pack (integrations/comfyui), loaded as ComfyUI loads ``custom_nodes/<pack>``.

ComfyUI imports a pack with ``importlib.util.spec_from_file_location`` on the folder's
``__init__.py`` under a module name made from its path, and gives nodes its ``folder_paths``
module; here a small stand-in for that module points at temporary input and output folders.
Tensors are laid out as ComfyUI passes them: IMAGE ``(B, H, W, C)`` float, MASK ``(B, H, W)``
= 1 - alpha. The real ComfyUI runs the pack in tests/test_comfyui_server.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import NEEDS_TORCH, make_photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

PACK = Path(__file__).resolve().parents[1] / "integrations" / "comfyui"
# Core node ids of ComfyUI 0.3.64 that a pack's id must not equal (ComfyUI drops such a node).
CORE_IDS = {"ImageQuantize", "SaveImage", "PreviewImage", "LoadImage", "SaveAnimatedPNG"}


def _stand_in_folder_paths(base: Path) -> types.ModuleType:
    """The parts of ComfyUI's ``folder_paths`` that nodes call, with ComfyUI's file naming."""
    fp = types.ModuleType("folder_paths")
    input_dir, output_dir = base / "input", base / "output"
    input_dir.mkdir()
    output_dir.mkdir()

    def get_save_image_path(
        prefix: str, out: str, width: int = 0, height: int = 0
    ) -> tuple[str, str, int, str, str]:
        subfolder, filename = os.path.split(os.path.normpath(prefix))
        folder = os.path.join(out, subfolder)
        os.makedirs(folder, exist_ok=True)
        used = [
            int(f[len(filename) + 1 :].split("_")[0])
            for f in os.listdir(folder)
            if f.startswith(filename + "_") and f[len(filename) + 1 :].split("_")[0].isdigit()
        ]
        return folder, filename, max(used, default=0) + 1, subfolder, prefix

    fp.get_input_directory = lambda: str(input_dir)  # type: ignore[attr-defined]
    fp.get_output_directory = lambda: str(output_dir)  # type: ignore[attr-defined]
    fp.get_save_image_path = get_save_image_path  # type: ignore[attr-defined]
    fp.get_annotated_filepath = lambda name: str(input_dir / name)  # type: ignore[attr-defined]
    fp.exists_annotated_filepath = lambda name: (input_dir / name).exists()  # type: ignore[attr-defined]
    return fp


@pytest.fixture
def comfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The pack's module, loaded as ComfyUI 0.3.64's ``nodes.load_custom_node`` loads it."""
    monkeypatch.setitem(sys.modules, "folder_paths", _stand_in_folder_paths(tmp_path))
    module_path = str(PACK)
    name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, os.path.join(module_path, "__init__.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, f"{name}.nodes", raising=False)  # a fresh load every test
    spec.loader.exec_module(module)
    module.input_dir = tmp_path / "input"  # type: ignore[attr-defined]
    module.output_dir = tmp_path / "output"  # type: ignore[attr-defined]
    return module


def node(comfy: types.ModuleType, node_id: str) -> Any:
    return comfy.NODE_CLASS_MAPPINGS[node_id]()


def comfy_image(*frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` frames as a ComfyUI IMAGE ``(B, H, W, C)`` float32 in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def colors_of(image: torch.Tensor) -> set[tuple[int, ...]]:
    """The distinct 8-bit colors of an IMAGE (every image of the batch)."""
    x8 = (image.float() * 255).round().to(torch.uint8).reshape(-1, image.shape[-1])
    return set(map(tuple, x8.unique(dim=0).tolist()))


def clip(n: int = 3, height: int = 24, width: int = 32) -> list[np.ndarray]:
    """``n`` frames of a scene that shifts: different colors in every frame."""
    return [make_photo_like(height, width, seed=t) for t in range(n)]


QUANTIZE = {
    "colors": 8,
    "color_space": "rgb",
    "dither": "none",
    "dither_strength": 1.0,
    "shared_palette": True,
    "seed": 0,
}


# -- the contract ComfyUI reads -----------------------------------------------------------------


def test_mappings_name_every_node_with_a_colorquant_id(comfy: types.ModuleType) -> None:
    ids = set(comfy.NODE_CLASS_MAPPINGS)
    assert ids == set(comfy.NODE_DISPLAY_NAME_MAPPINGS)
    assert len(ids) >= 6
    assert all(i.startswith("ColorQuant") for i in ids)
    assert not ids & CORE_IDS


@pytest.mark.parametrize(
    "node_id",
    [
        "ColorQuantQuantize",
        "ColorQuantPaletteFromImage",
        "ColorQuantPaletteFromHex",
        "ColorQuantPaletteFromFile",
        "ColorQuantApplyPalette",
        "ColorQuantPalettePreview",
        "ColorQuantSave",
    ],
)
def test_node_contract(comfy: types.ModuleType, node_id: str) -> None:
    cls = comfy.NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, name
            kind = entry[0]
            assert isinstance(kind, (str, list)), name
            if kind in ("INT", "FLOAT"):
                opts = entry[1]
                assert opts["min"] <= opts["default"] <= opts["max"], name
            if isinstance(kind, list) and len(entry) == 2 and "default" in entry[1]:
                assert entry[1]["default"] in kind, name
    assert isinstance(cls.RETURN_TYPES, tuple)
    assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
    assert callable(getattr(cls, cls.FUNCTION))
    assert cls.CATEGORY == "image/colorquant"
    assert getattr(cls, "OUTPUT_NODE", False) is (node_id == "ColorQuantSave")
    # Every widget a node declares is an argument of its function (ComfyUI passes them by name).
    names = set(spec["required"]) | set(spec.get("optional", {})) | set(spec.get("hidden", {}))
    params = getattr(cls, cls.FUNCTION).__code__.co_varnames
    assert names <= set(params)


def test_seed_is_the_last_widget(comfy: types.ModuleType) -> None:
    """A front end may add a "control after generate" value after a seed widget: last, it
    shifts no other widget value of a saved workflow."""
    for cls in comfy.NODE_CLASS_MAPPINGS.values():
        required = list(cls.INPUT_TYPES()["required"])
        if "seed" in required:
            assert required[-1] == "seed", cls.__name__


# -- quantize -----------------------------------------------------------------------------------


def test_quantize_a_batch_with_one_palette(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(3))
    out, palette, mask = node(comfy, "ColorQuantQuantize").quantize(image, **QUANTIZE)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert mask.shape == (3, 24, 32) and bool((mask == 0).all())
    assert palette.shape == (8, 3) and palette.dtype == torch.uint8
    used = colors_of(out)
    assert len(used) <= 8  # over the whole batch, not per image
    assert used <= set(map(tuple, palette.tolist()))
    # Each image is its nearest-palette-color map in RGB: close to the input.
    assert float((out - image).abs().mean()) < 0.06


def test_quantize_per_image_palettes(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(3))
    args = {**QUANTIZE, "shared_palette": False}
    out, palette, _ = node(comfy, "ColorQuantQuantize").quantize(image, **args)
    assert palette.shape[0] == 3 and palette.shape[2] == 3 and palette.shape[1] <= 8
    for b in range(3):
        assert colors_of(out[b : b + 1]) <= set(map(tuple, palette[b].tolist()))
        assert len(colors_of(out[b : b + 1])) <= 8
    # Three palettes fitted apart use more colors over the batch than one shared palette.
    assert len(colors_of(out)) > 8


def test_a_shared_palette_keeps_a_still_background_still(comfy: types.ModuleType) -> None:
    """Video frames: a part that does not move comes out the same in every frame."""
    background = make_photo_like(32, 48, seed=7)
    frames = []
    for t in range(4):
        f = background.copy()
        f[8:20, 4 + 8 * t : 16 + 8 * t] = (255 - 40 * t, 60 * t, 200)  # a moving block
        frames.append(f)
    out, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(*frames), **QUANTIZE)
    still = out[:, 22:, :]  # below the block's path
    assert bool((still == still[:1]).all())


@pytest.mark.parametrize("dither", ["none", "floyd-steinberg", "ordered"])
def test_quantize_dither_choices(comfy: types.ModuleType, dither: str) -> None:
    image = comfy_image(*clip(2))
    args = {**QUANTIZE, "dither": dither, "colors": 4}
    out, palette, _ = node(comfy, "ColorQuantQuantize").quantize(image, **args)
    assert colors_of(out) <= set(map(tuple, palette.tolist()))
    assert palette.shape == (4, 3)


def test_quantize_rgba_keeps_opaque_and_clear_exact(comfy: types.ModuleType) -> None:
    rgba = np.dstack([make_photo_like(24, 32), np.full((24, 32), 255, np.uint8)])
    rgba[:, :8, 3] = 0  # clear
    rgba[:, 8:12, 3] = 128  # translucent
    image = comfy_image(rgba)
    out, palette, mask = node(comfy, "ColorQuantQuantize").quantize(image, **QUANTIZE)
    assert out.shape == (1, 24, 32, 4)
    assert palette.shape == (8, 4)
    alpha = out[0, :, :, 3]
    assert bool((alpha[:, :8] == 0).all())
    assert bool((alpha[:, 12:] == 1).all())
    torch.testing.assert_close(mask, 1 - out[..., 3])


def test_quantize_takes_transparency_from_a_mask(comfy: types.ModuleType) -> None:
    """LoadImage gives RGB and MASK = 1 - alpha: the clear part stays clear."""
    image = comfy_image(make_photo_like(24, 32))
    mask = torch.zeros(1, 24, 32)
    mask[:, :, :10] = 1.0
    out, palette, mask_out = node(comfy, "ColorQuantQuantize").quantize(
        image, **QUANTIZE, mask=mask
    )
    assert out.shape == (1, 24, 32, 3)
    assert palette.shape[1] == 4 and bool((palette[:, 3] == 0).any())
    torch.testing.assert_close(mask_out, mask)


def test_quantize_ignores_the_placeholder_mask_of_an_opaque_file(comfy: types.ModuleType) -> None:
    image = comfy_image(make_photo_like(24, 32))
    placeholder = torch.zeros(1, 64, 64)  # what LoadImage returns for a file without alpha
    out, palette, _ = node(comfy, "ColorQuantQuantize").quantize(
        image, **QUANTIZE, mask=placeholder
    )
    assert out.shape == image.shape and palette.shape == (8, 3)


def test_quantize_rejects_a_mask_of_another_size(comfy: types.ModuleType) -> None:
    mask = torch.zeros(1, 10, 10)
    mask[0, 0, 0] = 1
    with pytest.raises(ValueError, match=r"mask is \(10, 10\) \(H, W\) and the image \(24, 32\)"):
        node(comfy, "ColorQuantQuantize").quantize(
            comfy_image(make_photo_like(24, 32)), **QUANTIZE, mask=mask
        )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(2, 3, 8, 8).permute(0, 2, 3, 1)[..., :2], r"\(B, H, W, 3 or 4\) tensor"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "must be a float tensor"),
        (torch.full((1, 8, 8, 3), float("nan")), "NaN"),
        (np.zeros((1, 8, 8, 3)), "got ndarray"),
    ],
)
def test_quantize_bad_image_says_what_came(comfy: types.ModuleType, bad: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        node(comfy, "ColorQuantQuantize").quantize(bad, **QUANTIZE)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_quantize_keeps_other_float_dtypes(comfy: types.ModuleType, dtype: torch.dtype) -> None:
    image = comfy_image(*clip(2)).to(dtype)
    out, palette, _ = node(comfy, "ColorQuantQuantize").quantize(image, **QUANTIZE)
    assert out.dtype == dtype and out.shape == image.shape
    assert len(colors_of(out)) <= 8
    _, ref_palette, _ = node(comfy, "ColorQuantQuantize").quantize(image.float(), **QUANTIZE)
    assert torch.equal(palette, ref_palette)  # the node computes in float32 whatever came


def test_quantize_values_slightly_outside_0_1_are_clamped(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(1)) * 1.02 - 0.01
    out, _, _ = node(comfy, "ColorQuantQuantize").quantize(image, **QUANTIZE)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_nodes_keep_the_images_device(comfy: types.ModuleType, device: torch.device) -> None:
    """A batch on a GPU is quantized there and comes back there (cuda skipped without one)."""
    image = comfy_image(*clip(2)).to(device)
    out, palette, mask = node(comfy, "ColorQuantQuantize").quantize(image, **QUANTIZE)
    assert out.device == image.device and mask.device == image.device
    assert palette.device.type == "cpu" and len(colors_of(out.cpu())) <= 8
    mapped, _, _ = node(comfy, "ColorQuantApplyPalette").apply(
        image, palette, "rgb", "none", 1.0, 0, 0
    )
    assert mapped.device == image.device
    assert colors_of(mapped.cpu()) <= set(map(tuple, palette.tolist()))


# -- palettes -----------------------------------------------------------------------------------


def test_palette_from_hex_default_is_pico8(comfy: types.ModuleType) -> None:
    cls = comfy.NODE_CLASS_MAPPINGS["ColorQuantPaletteFromHex"]
    default = cls.INPUT_TYPES()["required"]["hex_colors"][1]["default"]
    (palette,) = cls().parse(default)
    assert palette.shape == (16, 3) and palette.dtype == torch.uint8
    assert palette[0].tolist() == [0, 0, 0] and palette[7].tolist() == [255, 241, 232]
    (short,) = cls().parse("#f00, 00ff00\n#0000FF")
    assert short.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_palette_from_hex_names_a_bad_token(comfy: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="hex_colors: 'red' is not a hex color"):
        node(comfy, "ColorQuantPaletteFromHex").parse("#000000 red")


def test_palette_from_file_lists_and_reads_the_input_folder(comfy: types.ModuleType) -> None:
    input_dir: Path = comfy.input_dir  # type: ignore[attr-defined]
    (input_dir / "game.gpl").write_text("GIMP Palette\nName: game\n0 0 0 black\n255 255 255\n")
    (input_dir / "palettes").mkdir()
    (input_dir / "palettes" / "lospec.hex").write_text("ff0000\n00ff00\n0000ff\n")
    swatch = np.zeros((2, 2, 3), np.uint8)
    swatch[0, 1] = (10, 20, 30)
    Image.fromarray(swatch).save(input_dir / "swatch.png")
    (input_dir / "notes.md").write_text("not a palette")
    cls = comfy.NODE_CLASS_MAPPINGS["ColorQuantPaletteFromFile"]
    listed = cls.INPUT_TYPES()["required"]["palette_file"][0]
    assert listed == ["game.gpl", "swatch.png", "palettes/lospec.hex"]
    assert cls().load("game.gpl")[0].tolist() == [[0, 0, 0], [255, 255, 255]]
    assert cls().load("palettes/lospec.hex")[0].shape == (3, 3)
    assert cls().load("swatch.png")[0].tolist() == [[0, 0, 0], [10, 20, 30]]
    assert cls.VALIDATE_INPUTS("game.gpl") is True
    assert "no such file" in cls.VALIDATE_INPUTS("gone.gpl")
    before = cls.IS_CHANGED("game.gpl")
    (input_dir / "game.gpl").write_text("GIMP Palette\n1 2 3\n")
    assert cls.IS_CHANGED("game.gpl") != before


def test_palette_from_file_reports_a_malformed_file(comfy: types.ModuleType) -> None:
    input_dir: Path = comfy.input_dir  # type: ignore[attr-defined]
    (input_dir / "bad.gpl").write_text("GIMP Palette\n0 0 zero\n")
    with pytest.raises(ValueError, match=r"bad.gpl, line 2"):
        node(comfy, "ColorQuantPaletteFromFile").load("bad.gpl")


def test_palette_from_image_finds_its_colors(comfy: types.ModuleType) -> None:
    ref = np.zeros((16, 16, 3), np.uint8)
    flat = [(200, 30, 40), (20, 90, 200), (250, 250, 240), (10, 10, 10)]
    for i, c in enumerate(flat):
        ref[4 * i : 4 * i + 4] = c
    (palette,) = node(comfy, "ColorQuantPaletteFromImage").fit(
        comfy_image(ref), colors=4, color_space="hybrid", seed=0
    )
    assert palette.shape == (4, 3)
    assert set(map(tuple, palette.tolist())) == set(flat)


def test_apply_a_locked_palette(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(2))
    given = torch.tensor(
        [[0, 0, 0], [255, 255, 255], [200, 30, 40], [20, 90, 200]], dtype=torch.uint8
    )
    out, palette, _ = node(comfy, "ColorQuantApplyPalette").apply(
        image, given, "rgb", "none", 1.0, extra_colors=0, seed=0
    )
    assert torch.equal(palette, given)
    assert colors_of(out) <= set(map(tuple, given.tolist()))
    # Nearest in RGB: no palette color is closer to a pixel than the one it got.
    px = image.reshape(-1, 3) * 255
    d = torch.cdist(px.double(), given.double())
    got = torch.cdist((out.reshape(-1, 3) * 255).double(), given.double()).argmin(1)
    assert bool((d.gather(1, got[:, None]).squeeze(1) <= d.min(1).values + 1e-6).all())


def test_apply_palette_takes_hex_lists_and_rows(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(1))
    apply = node(comfy, "ColorQuantApplyPalette").apply
    a, _, _ = apply(image, ["#000", "#ffffff"], "rgb", "none", 1.0, 0, 0)
    b, _, _ = apply(image, [[0, 0, 0], [255, 255, 255]], "rgb", "none", 1.0, 0, 0)
    assert torch.equal(a, b) and colors_of(a) <= {(0, 0, 0), (255, 255, 255)}
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        apply(image, [[0, 0], [1, 1]], "rgb", "none", 1.0, 0, 0)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        apply(image, [[0, 0, 300]], "rgb", "none", 1.0, 0, 0)


def test_apply_palette_with_extra_colors_keeps_the_given_ones(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(2))
    given = torch.tensor([[0, 0, 0], [255, 255, 255]], dtype=torch.uint8)
    out, palette, _ = node(comfy, "ColorQuantApplyPalette").apply(
        image, given, "rgb", "none", 1.0, extra_colors=6, seed=0
    )
    rows = set(map(tuple, palette.tolist()))
    assert palette.shape == (8, 3) and {(0, 0, 0), (255, 255, 255)} <= rows
    assert colors_of(out) <= rows and len(colors_of(out)) > 2
    with pytest.raises(ValueError, match="at most 256"):
        node(comfy, "ColorQuantApplyPalette").apply(image, given, "rgb", "none", 1.0, 255, 0)


def test_apply_per_image_palettes(comfy: types.ModuleType) -> None:
    image = comfy_image(*clip(2))
    given = torch.tensor(
        [[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], dtype=torch.uint8
    )
    out, _, _ = node(comfy, "ColorQuantApplyPalette").apply(image, given, "rgb", "none", 1.0, 0, 0)
    assert colors_of(out[:1]) <= {(0, 0, 0), (255, 255, 255)}
    assert colors_of(out[1:]) <= {(255, 0, 0), (0, 0, 255)}
    with pytest.raises(ValueError, match="2 palettes for 3 images"):
        node(comfy, "ColorQuantApplyPalette").apply(
            comfy_image(*clip(3)), given, "rgb", "none", 1.0, 0, 0
        )


def test_palette_preview_draws_one_square_per_color(comfy: types.ModuleType) -> None:
    given = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    (swatch,) = node(comfy, "ColorQuantPalettePreview").draw(given, cell=4)
    assert swatch.shape == (1, 4, 12, 3)
    assert swatch[0, 0, 5].tolist() == [0.0, 1.0, 0.0]


# -- the example workflow -----------------------------------------------------------------------

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def api_prompt(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """A workflow as the front end saves it (nodes with ``widgets_values``, links) as the
    prompt ``POST /prompt`` takes: ``{id: {"class_type", "inputs"}}``, a link ``[id, slot]``.

    Widget values are given in the order of the node's inputs (``object_info``'s
    ``input_order``); values past the last widget (LoadImage's upload button, a seed's
    "control after generate") are not inputs.
    """
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, Any] = {}
    for n in workflow["nodes"]:
        if n.get("mode", 0) != 0:  # muted or bypassed
            continue
        spec = object_info[n["type"]]["input"]
        order = object_info[n["type"]].get("input_order") or {k: list(v) for k, v in spec.items()}
        names = [*order.get("required", []), *order.get("optional", [])]
        kinds = {**spec.get("required", {}), **spec.get("optional", {})}
        widgets = [
            name
            for name in names
            if isinstance(kinds[name][0], list) or kinds[name][0] in WIDGET_TYPES
        ]
        inputs: dict[str, Any] = dict(zip(widgets, n.get("widgets_values", []), strict=False))
        for slot in n.get("inputs", []):
            if slot.get("link") is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
        prompt[str(n["id"])] = {"class_type": n["type"], "inputs": inputs}
    return prompt


def _object_info(comfy: types.ModuleType) -> dict[str, Any]:
    """What ComfyUI's ``GET /object_info`` says of the pack's nodes and the two core ones."""
    info = {
        name: {"input": cls.INPUT_TYPES(), "output": list(cls.RETURN_TYPES)}
        for name, cls in comfy.NODE_CLASS_MAPPINGS.items()
    }
    info["LoadImage"] = {
        "input": {"required": {"image": [["example.png"], {}]}},
        "output": ["IMAGE", "MASK"],
    }
    info["PreviewImage"] = {"input": {"required": {"images": ["IMAGE"]}}, "output": []}
    return info


def test_example_workflow_is_a_consistent_graph(comfy: types.ModuleType) -> None:
    workflow = json.loads((PACK / "example_workflows" / "colorquant_palettes.json").read_text())
    info = _object_info(comfy)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        assert link_id in nodes[source]["outputs"][source_slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert info[nodes[source]["type"]]["output"][source_slot] == kind
    prompt = api_prompt(workflow, info)
    for node_id, entry in prompt.items():
        spec = info[entry["class_type"]]["input"]
        assert set(spec.get("required", {})) <= set(entry["inputs"]), node_id
        for name, value in entry["inputs"].items():
            kind = {**spec.get("required", {}), **spec.get("optional", {})}[name][0]
            if isinstance(kind, list):
                assert value in kind, (node_id, name)
            elif kind in ("INT", "FLOAT"):
                assert isinstance(value, (int, float)), (node_id, name)
    assert prompt["2"]["inputs"]["colors"] == 16 and prompt["2"]["inputs"]["image"] == ["1", 0]


def test_example_workflow_runs_on_the_nodes(comfy: types.ModuleType) -> None:
    """The example graph executed node by node as ComfyUI would (no server; the server test
    runs it in a real ComfyUI)."""
    workflow = json.loads((PACK / "example_workflows" / "colorquant_palettes.json").read_text())
    prompt = api_prompt(workflow, _object_info(comfy))
    rgba = np.dstack([make_photo_like(24, 32), np.full((24, 32), 255, np.uint8)])
    rgba[:6, :8, 3] = 0
    loaded = (comfy_image(rgba[..., :3]), 1 - torch.from_numpy(rgba[..., 3]).float()[None] / 255)
    results: dict[str, Any] = {"1": loaded}
    pending = [k for k in prompt if k != "1"]
    while pending:
        for node_id in list(pending):
            entry = prompt[node_id]
            args = dict(entry["inputs"])
            if any(isinstance(v, list) and v[0] not in results for v in args.values()):
                continue
            for name, value in args.items():
                if isinstance(value, list):
                    args[name] = results[value[0]][value[1]]
            if entry["class_type"] == "PreviewImage":
                results[node_id] = ()
            else:
                obj = node(comfy, entry["class_type"])
                results[node_id] = getattr(obj, obj.FUNCTION)(**args)
            pending.remove(node_id)
    saved = results["3"]["ui"]["images"]
    assert saved[0]["subfolder"] == "ColorQuant"
    with Image.open(comfy.output_dir / "ColorQuant" / saved[0]["filename"]) as im:  # type: ignore[attr-defined]
        assert im.mode == "P"
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    assert (alpha[:6, :8] == 0).all() and (alpha[6:] == 255).all()


# -- saving -------------------------------------------------------------------------------------

PROMPT = {"1": {"class_type": "ColorQuantSave", "inputs": {"filename_prefix": "cq"}}}
EXTRA = {"workflow": {"nodes": [{"id": 1, "type": "ColorQuantSave"}], "links": []}}


def save(comfy: types.ModuleType, images: torch.Tensor, **kw: Any) -> dict[str, Any]:
    args = {"filename_prefix": "cq", "format": "png", "colors": 256, "fps": 8.0}
    args.update(kw)
    result: dict[str, Any] = node(comfy, "ColorQuantSave").save(
        images, prompt=PROMPT, extra_pnginfo=EXTRA, **args
    )
    return result


def test_save_writes_palette_pngs_with_the_graph(comfy: types.ModuleType) -> None:
    quantized, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(*clip(2)), **QUANTIZE)
    result = save(comfy, quantized)
    files = result["ui"]["images"]
    assert [f["filename"] for f in files] == ["cq_00001_.png", "cq_00002_.png"]
    assert all(f["type"] == "output" and f["subfolder"] == "" for f in files)
    for b, f in enumerate(files):
        path = comfy.output_dir / f["filename"]  # type: ignore[attr-defined]
        with Image.open(path) as im:
            assert im.mode == "P" and im.format == "PNG"
            assert json.loads(im.text["prompt"]) == PROMPT
            assert json.loads(im.text["workflow"]) == EXTRA["workflow"]
            assert len(im.getpalette()) // 3 <= 8  # type: ignore[arg-type]
            # An image of <= 256 colors is written exactly.
            assert np.array_equal(
                np.asarray(im.convert("RGB")), quantized[b].mul(255).round().byte().numpy()
            )
    assert "bytes" in result["ui"]["text"][0]
    again = save(comfy, quantized)  # the counter goes on: nothing is overwritten
    assert [f["filename"] for f in again["ui"]["images"]] == ["cq_00003_.png", "cq_00004_.png"]


def test_save_reports_bytes_against_truecolor(comfy: types.ModuleType) -> None:
    quantized, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(*clip(1)), **QUANTIZE)
    text = save(comfy, quantized)["ui"]["text"][0]
    written = os.path.getsize(comfy.output_dir / "cq_00001_.png")  # type: ignore[attr-defined]
    assert f"{written} bytes" in text
    truecolor = int(text.split("(SaveImage) ")[1].split(" bytes")[0])
    assert written < truecolor


def test_save_quantizes_truecolor_images_to_colors(comfy: types.ModuleType) -> None:
    result = save(comfy, comfy_image(*clip(1)), colors=16)
    with Image.open(comfy.output_dir / result["ui"]["images"][0]["filename"]) as im:  # type: ignore[attr-defined]
        assert im.mode == "P" and len(np.unique(np.asarray(im))) <= 16


def test_save_with_a_palette_writes_its_colors(comfy: types.ModuleType) -> None:
    given = torch.tensor([[0, 0, 0], [255, 255, 255], [200, 30, 40]], dtype=torch.uint8)
    mapped, _, _ = node(comfy, "ColorQuantApplyPalette").apply(
        comfy_image(*clip(2)), given, "rgb", "none", 1.0, 0, 0
    )
    result = save(comfy, mapped, palette=given)
    for f in result["ui"]["images"]:
        with Image.open(comfy.output_dir / f["filename"]) as im:  # type: ignore[attr-defined]
            # The palette itself, all its rows in its order, in every file: one index space.
            assert im.getpalette()[:9] == given.flatten().tolist()  # type: ignore[index]
            assert np.asarray(im).max() < 3


def test_save_a_shared_palette_writes_one_plte_in_every_file(comfy: types.ModuleType) -> None:
    quantized, palette, _ = node(comfy, "ColorQuantQuantize").quantize(
        comfy_image(*clip(3)), **QUANTIZE
    )
    result = save(comfy, quantized, palette=palette)
    plte = []
    for f in result["ui"]["images"]:
        with Image.open(comfy.output_dir / f["filename"]) as im:  # type: ignore[attr-defined]
            plte.append(im.getpalette()[:24])  # type: ignore[index]
    assert plte[0] == plte[1] == plte[2] == palette.flatten().tolist()


def test_save_rgba_png_has_transparency(comfy: types.ModuleType) -> None:
    rgba = np.dstack([make_photo_like(24, 32), np.full((24, 32), 255, np.uint8)])
    rgba[:, :8, 3] = 0
    quantized, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(rgba), **QUANTIZE)
    result = save(comfy, quantized)
    with Image.open(comfy.output_dir / result["ui"]["images"][0]["filename"]) as im:  # type: ignore[attr-defined]
        assert im.mode == "P" and "transparency" in im.info
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    assert (alpha[:, :8] == 0).all() and (alpha[:, 8:] == 255).all()


@pytest.mark.parametrize("fmt", ["gif", "apng"])
def test_save_a_batch_as_one_animation(comfy: types.ModuleType, fmt: str) -> None:
    quantized, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(*clip(4)), **QUANTIZE)
    result = save(comfy, quantized, format=fmt, fps=12.0)
    assert result["ui"]["animated"] == (True,)
    (f,) = result["ui"]["images"]
    assert f["filename"] == ("cq_00001_.gif" if fmt == "gif" else "cq_00001_.png")
    with Image.open(comfy.output_dir / f["filename"]) as im:  # type: ignore[attr-defined]
        assert im.n_frames == 4
        durations = []
        for t in range(4):
            im.seek(t)
            durations.append(im.info["duration"])
            assert np.array_equal(
                np.asarray(im.convert("RGB")), quantized[t].mul(255).round().byte().numpy()
            )
        if fmt == "apng":
            assert im.mode == "P"
            assert json.loads(im.text["prompt"]) == PROMPT
            assert durations == [83, 84, 83, 83]  # 1000 / 12 ms, the rounding carried
        else:
            assert sum(durations) in range(320, 350)


def test_text_chunks_refuse_a_non_png(comfy: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        sys.modules[comfy.__name__ + ".nodes"].with_text_chunks(b"GIF89a", [("prompt", "{}")])


def test_save_into_a_subfolder_of_the_prefix(comfy: types.ModuleType) -> None:
    quantized, _, _ = node(comfy, "ColorQuantQuantize").quantize(comfy_image(*clip(1)), **QUANTIZE)
    result = save(comfy, quantized, filename_prefix="pixel/art")
    (f,) = result["ui"]["images"]
    assert f["subfolder"] == "pixel" and f["filename"] == "art_00001_.png"
    assert (comfy.output_dir / "pixel" / "art_00001_.png").is_file()  # type: ignore[attr-defined]
