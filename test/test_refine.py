"""Depth-aware refinement (issue 16): a label boundary that bleeds across a depth edge is moved
back onto it; nothing changes away from label boundaries or where there is no depth."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight_perception.camera import Intrinsics
from lowlight_perception.data.synthetic import random_view
from lowlight_perception.inference.refine import RefineConfig, refine_labels


def _step_scene(bleed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A chair (class 3) at 1 m in front of a wall (class 1) at 3 m, the depth edge at column
    40; the prediction's boundary ``bleed`` pixels too far right (a coarse network's upsampled
    labels), where it is unsure (confidence 100 against 230)."""
    h, w, edge = 48, 96, 40
    depth = np.full((h, w), 3.0, np.float32)
    depth[:, :edge] = 1.0
    truth = np.full((h, w), 1, np.uint8)
    truth[:, :edge] = 3
    pred = np.full((h, w), 1, np.uint8)
    pred[:, : edge + bleed] = 3
    conf = np.full((h, w), 230, np.uint8)
    conf[:, edge - 2 : edge + bleed + 2] = 100
    return truth, pred, conf, depth


def test_a_boundary_that_bleeds_across_a_depth_edge_moves_back_onto_it():
    truth, pred, conf, depth = _step_scene(bleed=3)
    labels, confidence = refine_labels(pred, conf, depth)
    assert (pred != truth).sum() == 3 * 48
    np.testing.assert_array_equal(labels, truth)
    fixed = pred != truth
    # from the agreeing wall neighbours: above the unsure chair's 100, at most the wall's 230
    assert (confidence[fixed] > 100).all() and (confidence[fixed] <= 230).all()
    far = np.ones_like(fixed)
    far[:, 30:50] = False
    np.testing.assert_array_equal(confidence[far], conf[far])  # away from the boundary: as is


def test_without_depth_nothing_is_re_voted():
    _, pred, conf, depth = _step_scene(bleed=3)
    depth[:] = 0.0  # no depth anywhere (0 = invalid, as in a D435i's 16UC1)
    labels, confidence = refine_labels(pred, conf, depth)
    np.testing.assert_array_equal(labels, pred)
    np.testing.assert_array_equal(confidence, conf)
    depth[:] = np.nan
    assert (refine_labels(pred, conf, depth)[0] == pred).all()


def test_the_guide_image_separates_a_boundary_depth_cannot_see():
    """A painting (class 7) flat on the wall: no depth edge, but the restored reflectance has
    one; with the colour guide on, the bleed is undone, without it the wall stays put."""
    h, w, edge = 48, 96, 40
    depth = np.full((h, w), 2.0, np.float32)
    truth = np.full((h, w), 1, np.uint8)
    truth[:, :edge] = 7
    pred = truth.copy()
    pred[:, edge : edge + 2] = 7
    conf = np.full((h, w), 230, np.uint8)
    conf[:, edge - 2 : edge + 4] = 100
    guide = np.full((h, w, 3), 200, np.uint8)
    guide[:, :edge] = (40, 60, 120)
    plain, _ = refine_labels(pred, conf, depth, guide, RefineConfig(colour_sigma=0))
    guided, _ = refine_labels(pred, conf, depth, guide, RefineConfig(colour_sigma=20))
    assert (guided == truth).all()
    assert (plain != truth).sum() > 0


def test_it_reduces_errors_of_a_coarse_prediction_on_a_procedural_view():
    view = random_view(1234, 1, Intrinsics.d435i(320, 240))
    f = 8  # a net-size argmax upsampled nearest-neighbour, as the exported graph does
    pred = np.repeat(np.repeat(view.label[f // 2 :: f, f // 2 :: f], f, 0), f, 1)
    conf = np.where(pred == view.label, 220, 90).astype(np.uint8)  # unsure where wrong
    labels, _ = refine_labels(pred, conf, view.depth)
    scored = view.label != 255
    before = (pred != view.label)[scored].sum()
    after = (labels != view.label)[scored].sum()
    assert after < 0.8 * before


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same height and width"):
        refine_labels(
            np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.float32)
        )
