"""Depth-aware refinement of labels and confidence (after the depth-aware CRF of [Mousavian],
README references): a jump in aligned depth is an object boundary, so near a label boundary each
pixel is re-voted by its neighbours on the same surface, weighted by their confidence.

The network runs at a fraction of the camera's resolution and its labels are upsampled, so its
boundaries are blocky and bleed a few pixels across object edges, where it is also least sure.
Aligned depth is sharp at those edges. Only pixels near both a label boundary and a depth
jump (or an edge of the optional guide image) are revisited, a few percent of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RefineConfig:
    """Args:
    radius: window half-size in pixels (the window is (2r + 1)^2).
    depth_tolerance: neighbours whose depth differs from the pixel's by more than this
        fraction of the pixel's depth count as another surface (weight falls as a Gaussian of
        the relative difference with this sigma).
    colour_sigma: if a guide image (e.g. the restored reflectance) is given, a Gaussian on
        its RGB distance in DN with this sigma; 0 ignores the guide.
    iterations: passes; each moves a bleeding boundary by up to about ``radius / 2`` pixels
        (a pass stops early once nothing changes).
    """

    radius: int = 3
    depth_tolerance: float = 0.03
    colour_sigma: float = 0.0
    iterations: int = 3


def _range(image: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Max and min of ``image`` over the (2 radius + 1)^2 window of each pixel: separable max /
    min filters over shifted views."""
    hi, lo = image.copy(), image.copy()
    for axis in (0, 1):
        src_hi, src_lo = hi.copy(), lo.copy()
        n = image.shape[axis]
        for s in range(1, min(radius, n - 1) + 1):
            for a, b in ((slice(s, None), slice(None, -s)), (slice(None, -s), slice(s, None))):
                dst = (a, slice(None)) if axis == 0 else (slice(None), a)
                src = (b, slice(None)) if axis == 0 else (slice(None), b)
                np.maximum(hi[dst], src_hi[src], out=hi[dst])
                np.minimum(lo[dst], src_lo[src], out=lo[dst])
    return hi, lo


def _edges(depth: np.ndarray, guide: np.ndarray | None, config: RefineConfig) -> np.ndarray:
    """Pixels within ``radius`` of a depth jump larger than twice the tolerance (invalid depth,
    0, counts as one: holes sit at object edges) or, with the colour guide on, of a guide
    brightness step larger than twice its sigma: where a guide can tell surfaces apart.
    Re-voting elsewhere would only smooth the labels, which no guide justifies."""
    near = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    d_hi, d_lo = _range(near, config.radius)
    edges = d_hi - d_lo > 2 * config.depth_tolerance * near
    if guide is not None and config.colour_sigma > 0:
        g_hi, g_lo = _range(guide.mean(axis=2, dtype=np.float32), config.radius)
        edges |= g_hi - g_lo > 2 * config.colour_sigma
    return edges


def refine_labels(
    labels: np.ndarray,
    confidence: np.ndarray,
    depth_m: np.ndarray,
    guide: np.ndarray | None = None,
    config: RefineConfig = RefineConfig(),
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and confidence re-voted near label boundaries by same-surface neighbours.

    Args:
        labels: (H, W) uint8 class ids.
        confidence: (H, W) uint8, max softmax x 255.
        depth_m: (H, W) float depth in metres aligned to the labels; 0, NaN or inf = no depth
            (such pixels neither vote nor are re-voted).
        guide: optional (H, W, 3) uint8 image of the same view (the restored reflectance),
            used when ``config.colour_sigma`` > 0.
        config: window and tolerances.
        num_classes: more than the largest class id (default: from ``labels``).

    Returns:
        New (labels, confidence), uint8, same shape; unchanged outside the boundary band. A
        re-voted pixel takes the label with the largest sum of neighbour weight x confidence
        (itself excluded, so a lone wrong pixel cannot outvote its surface), and as confidence
        the weighted mean confidence of the neighbours that agree with it.
    """
    if labels.shape != confidence.shape or labels.shape != depth_m.shape[:2]:
        raise ValueError(
            f"labels {labels.shape}, confidence {confidence.shape} and depth "
            f"{depth_m.shape} must have the same height and width"
        )
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    num_classes = max(num_classes or 0, int(labels.max()) + 1)  # every id gets its own slot
    votable = valid & _edges(depth, guide, config)  # fixed for all passes
    window = _Window(depth, valid, guide, config)
    out_labels, out_conf = labels.copy(), confidence.copy()
    for _ in range(config.iterations):
        if not _one_pass(out_labels, out_conf, votable, window, config, num_classes):
            break
    return out_labels, out_conf


class _Window:
    """What every pass reads and none changes, made once per frame: the window's flat offsets
    and spatial weights, and the depth, validity and guide padded by ``radius`` (flat gathers
    from padded copies: every offset is one add and no index is clipped)."""

    def __init__(
        self, depth: np.ndarray, valid: np.ndarray, guide: np.ndarray | None, config: RefineConfig
    ):
        r = self.r = config.radius
        self.stride = depth.shape[1] + 2 * r
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        keep = (dy != 0) | (dx != 0)
        self.offsets = (dy * self.stride + dx)[keep]
        self.spatial = np.exp(-0.5 * (dy * dy + dx * dx)[keep] / (r * r)).astype(np.float32)
        self.depth = self.pad(depth).ravel()
        self.valid = self.pad(valid).ravel()
        self.guide = None
        if guide is not None and config.colour_sigma > 0:
            self.guide = self.pad(guide.astype(np.float32)).reshape(-1, guide.shape[2])

    def pad(self, a: np.ndarray) -> np.ndarray:
        r = self.r
        return np.pad(a, ((r, r), (r, r)) + ((0, 0),) * (a.ndim - 2), mode="edge")


def _one_pass(
    labels: np.ndarray,
    confidence: np.ndarray,
    votable: np.ndarray,
    window: _Window,
    config: RefineConfig,
    num_classes: int,
) -> bool:
    """One re-vote, in place (from a snapshot), of the ``votable`` pixels with a different
    label within ``radius``; whether a label changed."""
    hi, lo = _range(labels, config.radius)
    ys, xs = np.nonzero((hi != lo) & votable)
    if ys.size == 0:
        return False
    r = window.r
    centre_at = (ys + r) * window.stride + (xs + r)
    at = centre_at[:, None] + window.offsets[None, :]  # (N, window - 1)
    centre = window.depth[centre_at][:, None]
    rel = (window.depth[at] - centre) / (np.float32(config.depth_tolerance) * centre)
    weight = np.exp(np.float32(-0.5) * rel * rel) * window.spatial
    weight *= window.valid[at]  # no depth: no vote (rel is NaN/inf there)
    weight = np.nan_to_num(weight, nan=0.0, posinf=0.0)
    if window.guide is not None:
        diff = window.guide[at] - window.guide[centre_at][:, None, :]
        weight *= np.exp(-0.5 * (diff * diff).sum(axis=2) / config.colour_sigma**2)
    # the labels and confidence as they were before this pass (a snapshot, padded)
    conf = window.pad(confidence).ravel()[at].astype(np.float32)
    neighbours = window.pad(labels).ravel()[at]
    votes_at = np.arange(ys.size)[:, None] * num_classes + neighbours
    votes = np.bincount(votes_at.ravel(), (weight * conf).ravel(), ys.size * num_classes)
    votes = votes.reshape(ys.size, num_classes)
    winner = votes.argmax(axis=1)
    decided = votes[np.arange(ys.size), winner] > 0
    agree = (neighbours == winner[:, None]) * weight
    mean_conf = (agree * conf).sum(axis=1) / np.maximum(agree.sum(axis=1), 1e-12)
    ys, xs = ys[decided], xs[decided]
    winner = winner[decided].astype(np.uint8)
    changed = bool((labels[ys, xs] != winner).any())
    labels[ys, xs] = winner
    confidence[ys, xs] = np.clip(np.rint(mean_conf[decided]), 0, 255).astype(np.uint8)
    return changed
