"""colorquant.transforms.Quantize: kinds kept, same result as quantize, pickling, DataLoader."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant import InputError
from colorquant.transforms import Quantize
from conftest import NEEDS_TORCH, make_photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)


def test_pil_in_pil_out_equals_quantize() -> None:
    img = make_photo_like(32, 40, 1)
    out = Quantize(8, seed=2)(Image.fromarray(img))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (40, 32)
    np.testing.assert_array_equal(np.asarray(out), cq.quantize(img, 8, seed=2).to_numpy())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_tensor_in_tensor_out_keeps_dtype(dtype: torch.dtype) -> None:
    img = make_photo_like(32, 40, 2)
    t = torch.from_numpy(img).permute(2, 0, 1)
    t = t if dtype == torch.uint8 else t.to(dtype) / 255.0
    out = Quantize(6, color_space="rgb")(t)
    assert out.dtype == dtype and out.shape == (3, 32, 40) and out.device == t.device
    expected = cq.quantize(img, 6, color_space="rgb").to_numpy()
    back = out if dtype == torch.uint8 else (out * 255).round().to(torch.uint8)
    np.testing.assert_array_equal(back.permute(1, 2, 0).numpy(), expected)
    assert len(torch.unique(out.reshape(3, -1), dim=1).T) <= 6


def test_given_palette_maps_to_it() -> None:
    palette = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], np.uint8)
    out = Quantize(palette=palette)(Image.fromarray(make_photo_like(16, 16, 3)))
    colors = {tuple(c) for c in np.asarray(out).reshape(-1, 3).tolist()}
    assert colors <= {tuple(c) for c in palette.tolist()}


def test_pickles_and_repr() -> None:
    t = Quantize(12, color_space="din99", seed=4)
    copy = pickle.loads(pickle.dumps(t))
    img = Image.fromarray(make_photo_like(16, 20, 5))
    assert np.array_equal(np.asarray(copy(img)), np.asarray(t(img)))
    assert repr(t) == "Quantize(n_colors=12, color_space='din99')"


class _Photos(torch.utils.data.Dataset[torch.Tensor]):
    def __init__(self, transform: Quantize) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        img = torch.from_numpy(make_photo_like(24, 24, i)).permute(2, 0, 1)
        return self.transform(img)  # type: ignore[no-any-return]


def test_in_a_dataloader_with_two_worker_processes() -> None:
    transform = Quantize(5, color_space="rgb")
    loader = torch.utils.data.DataLoader(_Photos(transform), batch_size=3, num_workers=2)
    batches = list(loader)
    assert [b.shape for b in batches] == [(3, 3, 24, 24)] * 2
    # Same numbers as in this process: workers change nothing but where the work runs.
    for i, got in enumerate(torch.cat(batches)):
        assert torch.equal(got, _Photos(transform)[i])
        assert len(torch.unique(got.reshape(3, -1), dim=1).T) <= 5


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4, 3), np.uint8), "PIL image or a \\(3, H, W\\) tensor"),
        (torch.zeros(1, 3, 4, 4), "\\(3, H, W\\) or \\(4, H, W\\) tensor, got shape"),
        (torch.zeros(5, 4, 3), "\\(4, H, W\\) tensor, got shape \\(5, 4, 3\\)"),
    ],
)
def test_bad_input_raises(image: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Quantize(4)(image)


def test_bad_options_raise() -> None:
    with pytest.raises(InputError, match=r"n_colors must be in 1\.\.256"):
        Quantize(300)
    with pytest.raises(InputError, match="color_space must be one of"):
        Quantize(4, color_space="hsv")  # type: ignore[arg-type]


def test_rgba_in_rgba_out() -> None:
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[:4, :, 3] = 0
    rgba[4:, :, 3] = 255
    t = Quantize(8, color_space="rgb")
    out = t(Image.fromarray(rgba, "RGBA"))
    assert out.mode == "RGBA"
    back = np.asarray(out)
    np.testing.assert_array_equal(back[..., 3] == 0, rgba[..., 3] == 0)
    tensor = torch.from_numpy(rgba).permute(2, 0, 1).float() / 255.0
    out_t = t(tensor)
    assert out_t.shape == (4, 16, 16) and out_t.dtype == torch.float32
    assert torch.equal(out_t[3] == 0, tensor[3] == 0)
    opaque = tensor.clone()
    opaque[3] = 1.0  # an alpha channel nobody uses: still 4 channels back
    assert t(opaque).shape == (4, 16, 16) and bool((t(opaque)[3] == 1.0).all())
