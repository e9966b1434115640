"""Directory names of the LLRGBD-real layout, shared by the dataset reader and our writer.

``{split}_rgb_l`` (low), ``{split}_rgb_h`` (normal), ``{split}_lbl`` (labels) are the LLRGBD-real
names (LISU code); the extra ground truth our procedural generator writes sits beside them.
``intrinsics.yaml`` at the root holds the camera and the scales of the 16-bit files.
"""

from __future__ import annotations

import numpy as np

LOW, NORMAL, LABEL = "rgb_l", "rgb_h", "lbl"
DEPTH, ALBEDO, SHADING_LOW, SHADING_NORMAL = "depth", "albedo", "shading_l", "shading_h"
REQUIRED = (LOW, NORMAL, LABEL)
OPTIONAL = (DEPTH, ALBEDO, SHADING_LOW, SHADING_NORMAL)
SPLITS = ("train", "val")
META_FILE = "intrinsics.yaml"
DEPTH_SCALE = 0.001  # metres per unit of the uint16 depth PNGs (millimetres, REP 118)
SHADING_SCALE = 10000.0  # uint16 shading PNG value = shading * SHADING_SCALE


def directory(split: str, kind: str) -> str:
    """``train_rgb_l`` etc."""
    return f"{split}_{kind}"


def depth_to_mm(raw: np.ndarray, depth_scale: float) -> np.ndarray:
    """Raw depth in ``depth_scale`` metres per unit as uint16 millimetres (REP 118; 0 stays
    invalid): what a dataset's ``depth_scale`` or a RealSense's ``depth_units`` option says.
    Millimetre data (0.001, also as librealsense's float32 0.0010000000475) passes unchanged."""
    if abs(depth_scale - DEPTH_SCALE) < 1e-9:
        return raw.astype(np.uint16, copy=False)
    mm = np.rint(raw.astype(np.float64) * (depth_scale * 1000.0))
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)
