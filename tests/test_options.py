"""colorquant.options: FitOptions (frozen, checked once), what a speed sets, and how an entry
point reads ``options=`` beside its fit keywords."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import colorquant as cq
from colorquant.options import (
    DEFAULT_SPEED,
    FitOptions,
    resolve_options,
    restarts,
    settings_for_speed,
)


def test_defaults_are_the_library_defaults() -> None:
    opts = FitOptions()
    assert (opts.color_space, opts.method, opts.init) == ("hybrid", "kmeans", "k-means++")
    assert opts.speed == DEFAULT_SPEED == 4 and opts.seed == 0
    assert opts.max_iter is None and opts.tol is None and opts.posterize is None
    assert opts.fixed_colors == () and opts.fixed.shape == (0, 3)
    assert opts.settings == settings_for_speed(4)


def test_frozen_and_replace_checks_again() -> None:
    opts = FitOptions(color_space="rgb", seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.seed = 4  # type: ignore[misc]
    faster = opts.replace(speed=7)
    assert (faster.speed, faster.seed, faster.color_space) == (7, 3, "rgb")
    assert opts.speed == DEFAULT_SPEED  # the original is unchanged
    with pytest.raises(cq.InputError, match=r"speed must be in 1\.\.10, got 11"):
        opts.replace(speed=11)


def test_fixed_colors_become_a_tuple_and_hash() -> None:
    opts = FitOptions(fixed_colors=np.array([[255, 0, 0], [0, 0, 0]], np.uint8))
    assert opts.fixed_colors == ((255, 0, 0), (0, 0, 0))
    np.testing.assert_array_equal(opts.fixed, [[255, 0, 0], [0, 0, 0]])
    assert opts.fixed.dtype == np.uint8
    # Equal settings are equal values (a dict key, a cache key).
    assert {opts: 1}[FitOptions(fixed_colors=[[255, 0, 0], [0, 0, 0]])] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"color_space": "hsv"}, "color_space must be one of"),
        ({"method": "sgd"}, "method must be one of 'kmeans', 'adam'"),
        ({"init": "wu"}, "init must be one of"),
        ({"speed": 0}, r"speed must be in 1\.\.10, got 0"),
        ({"max_iter": 0}, r"max_iter must be in >= 1, got 0"),
        ({"tol": -1.0}, "tol must be a positive number"),
        ({"seed": -1}, "seed must be in >= 0"),
        ({"posterize": 9}, r"posterize must be in 1\.\.8, got 9"),
        ({"fixed_colors": [[0, 0, 256]]}, "fixed_colors must be integers in 0..255"),
        ({"fixed_colors": [[1, 2, 3], [1, 2, 3]]}, "fixed_colors must be distinct"),
        ({"fixed_colors": [[1, 2, 3]], "method": "adam"}, "fixed_colors work with method="),
    ],
)
def test_bad_settings_raise_naming_them(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(cq.InputError, match=match):
        FitOptions(**kwargs)  # type: ignore[arg-type]


def test_speed_sets_fewer_stages_and_iterations_as_it_grows() -> None:
    table = [settings_for_speed(s) for s in range(1, 11)]
    assert [t.max_iter for t in table] == sorted((t.max_iter for t in table), reverse=True)
    assert [t.n_init for t in table] == sorted((t.n_init for t in table), reverse=True)
    assert table[0].levels == () and table[-1].levels == (4,)
    with pytest.raises(cq.InputError, match="speed must be an integer"):
        settings_for_speed(2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("k", "want"), [(2, 4), (64, 4), (128, 2), (256, 1), (4096, 1)])
def test_restarts_fall_with_k(k: int, want: int) -> None:
    assert restarts(settings_for_speed(4), k) == want


def test_resolve_keywords_alone() -> None:
    opts = resolve_options(None, 8, [[9, 9, 9]], color_space="rgb", seed=5)
    assert opts == FitOptions(color_space="rgb", seed=5, fixed_colors=((9, 9, 9),))


def test_resolve_options_beside_keywords() -> None:
    given = FitOptions(color_space="rgb", seed=5, speed=7)
    # Keywords left at their defaults, or saying the same, give way to the options.
    assert resolve_options(given, 8, None, color_space="hybrid", seed=0) is given
    assert resolve_options(given, 8, None, color_space="rgb", seed=5, speed=7) is given
    with pytest.raises(cq.InputError) as info:
        resolve_options(given, 8, None, color_space="lab")
    message = str(info.value)
    assert message == (
        "give options or color_space, not both: options.color_space is 'rgb', color_space='lab'"
    )
    with pytest.raises(cq.InputError, match="give options or speed, not both"):
        resolve_options(given, 8, None, speed=2)


def test_resolve_fixed_colors_and_their_count() -> None:
    given = FitOptions(fixed_colors=[[0, 0, 0], [255, 255, 255]])
    assert resolve_options(given, 2, [[0, 0, 0], [255, 255, 255]]) is given
    with pytest.raises(cq.InputError, match="give options or fixed_colors, not both"):
        resolve_options(given, 8, [[1, 1, 1]])
    with pytest.raises(cq.InputError, match=r"1 <= F <= n_colors \(1\)"):
        resolve_options(given, 1, None)
    with pytest.raises(cq.InputError, match="options must be a FitOptions or None, got dict"):
        resolve_options({"seed": 1}, 8, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", [cq.quantize, cq.Quantizer, cq.quantize_batch])
def test_entry_point_defaults_are_the_options_defaults(entry: object) -> None:
    # A keyword left at its default gives way to options=: the two defaults must be one.
    import inspect

    params = inspect.signature(entry).parameters  # type: ignore[arg-type]
    defaults = {f.name: f.default for f in dataclasses.fields(FitOptions)}
    shared = [name for name in defaults if name in params and name != "fixed_colors"]
    assert {"color_space", "seed", "speed"} <= set(shared)
    for name in shared:
        assert params[name].default == defaults[name], name
    assert params["options"].default is None and params["fixed_colors"].default is None
