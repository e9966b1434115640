"""The class list, palette and config lookup every module relies on."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight_perception import config
from lowlight_perception.camera import Intrinsics
from lowlight_perception.classes import load_classes, parse_classes
from lowlight_perception.errors import ConfigError

NYU13 = (
    "void",
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "painting",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)


def test_classes_are_void_plus_nyuv2_13_in_design_order():
    classes = load_classes()
    assert classes.names == NYU13
    assert classes.void_index == 0
    assert classes.palette.shape == (14, 3) and classes.palette.dtype == np.uint8
    assert len({tuple(c) for c in classes.palette}) == 14, "palette colours must be distinct"


def test_colorize_maps_ids_and_shows_out_of_range_as_void():
    classes = load_classes()
    labels = np.array([[0, 5, 13, 200]], dtype=np.uint8)
    rgb = classes.colorize(labels)
    assert rgb.shape == (1, 4, 3)
    np.testing.assert_array_equal(rgb[0, 1], classes.palette[5])
    np.testing.assert_array_equal(rgb[0, 3], classes.palette[0])
    assert classes.index("wall") == 12
    with pytest.raises(KeyError, match="valid: void, bed"):
        classes.index("lamp")


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32])
def test_colorize_table_lookup_is_the_palette_for_every_id(dtype):
    """uint8 labels go through the 256-entry table (np.take), other integer types through the
    palette: the same colours for every id, ids beyond the palette (and negative) as void."""
    classes = load_classes()
    ids = np.arange(-3 if dtype != np.uint8 else 0, 256).astype(dtype).reshape(1, -1)
    rgb = classes.colorize(ids)
    assert rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    for column, i in enumerate(ids[0].tolist()):
        want = classes.palette[i] if 0 <= i < classes.num_classes else classes.palette[0]
        np.testing.assert_array_equal(rgb[0, column], want, err_msg=str(i))


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"classes": [{"id": 1, "name": "a", "color": [0, 0, 0]}]}, "ids must be"),
        ({"classes": [{"id": 0, "name": "a", "color": [0, 0, 300]}]}, "color"),
        (
            {
                "classes": [
                    {"id": 0, "name": "a", "color": [0, 0, 0]},
                    {"id": 1, "name": "a", "color": [1, 1, 1]},
                ]
            },
            "unique",
        ),
        ({"nothing": []}, "malformed"),
    ],
)
def test_bad_classes_yaml_is_a_config_error(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_classes(doc)


def test_share_dir_env_override_and_missing_file(tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "classes.yaml").write_text("classes: []\n")
    monkeypatch.setenv("LOWLIGHT_SHARE_DIR", str(tmp_path))
    config.share_dir.cache_clear()
    try:
        assert config.share_dir() == tmp_path
        with pytest.raises(ConfigError, match="cannot read"):
            config.load_yaml("config/missing.yaml")
    finally:
        config.share_dir.cache_clear()


def test_d435i_intrinsics_have_square_pixels_and_42_degree_vertical_fov():
    K = Intrinsics.d435i()
    assert (K.width, K.height) == (640, 480)
    assert K.fx == K.fy
    _, vfov = K.fov_deg
    assert vfov == pytest.approx(42.0)
    assert 605 < K.fx < 635, "a real D435i reports fx ~ 615 at 640x480"
    half = K.scaled(320, 240)
    assert half.fx == pytest.approx(K.fx / 2)
    assert half.fov_deg[1] == pytest.approx(vfov, abs=0.2)
    # a ray through the principal point is the optical axis; backprojection is z * ray
    pts = K.backproject(np.full((480, 640), 2.0, np.float32))
    assert pts[240, 320, 2] == pytest.approx(2.0)
    assert abs(pts[0, 0, 0] + 2.0 * K.cx / K.fx) < 1e-4


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_overlay_blend_is_exact_in_any_numpy(alpha):
    """((256 - a) * rgb + a * colours) >> 8, a = round(256 * alpha): NumPy 1 (Humble's and
    Jazzy's apt numpy) kept uint16-scalar * uint8-array products in uint8 and wrapped."""
    from lowlight_perception.classes import blend

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), np.uint8)
    colours = rng.integers(0, 256, (48, 64, 3), np.uint8)
    a = round(256 * alpha)
    expected = ((256 - a) * rgb.astype(np.int64) + a * colours.astype(np.int64)) >> 8
    out = blend(rgb, colours, alpha)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(
        blend(rgb[:, ::-1], colours, alpha)[:, ::-1], blend(rgb, colours[:, ::-1], alpha)
    )  # views are fine
