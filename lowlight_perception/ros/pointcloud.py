"""The semantic point cloud: aligned depth + labels + confidence -> sensor_msgs/PointCloud2.

Why: ``~/semantic_points`` lets RViz, Nav2 and mapping consume the segmentation in 3-D. Each
point carries x, y, z (metres, colour optical frame: x right, y down, z forward), rgb (its class
colour, packed the way RViz's RGB8 colour transformer reads it), label and confidence. Points
are built vectorised, and the cloud's fields are derived from one structured dtype
(:data:`POINT_DTYPE`), so writing and reading back cannot disagree. Two layouts:

* unorganised (default): every ``decimation``-th pixel with valid depth, filtered by depth and
  confidence; height 1, ``is_dense`` (no invalid point);
* organised: one point per pixel, H x W in row-major pixel order, NaN x/y/z where depth is
  invalid, nothing filtered. Nav2's semantic segmentation layer (kiwicampus/
  semantic_segmentation_layer, branches humble and jazzy, src/semantic_segmentation_layer.cpp)
  refuses a cloud whose width x height differs from the label image's, walks it pixel by pixel
  (src/segmentation_buffer.cpp) and skips points whose z is not finite.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from ..camera import Intrinsics
from ..errors import LowlightError
from .codecs import CdrWriter, to_byte_array

POINT_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "label", "confidence"],
        "formats": [np.float32, np.float32, np.float32, np.float32, np.uint8, np.float32],
        "offsets": [0, 4, 8, 12, 16, 20],
        "itemsize": 24,
    }
)
"""One point: x, y, z, rgb at 0, 4, 8, 12; label (uint8) at 16; confidence at 20 (aligned)."""

_DATATYPES: dict[np.dtype, int] = {
    np.dtype(np.int8): PointField.INT8,
    np.dtype(np.uint8): PointField.UINT8,
    np.dtype(np.int16): PointField.INT16,
    np.dtype(np.uint16): PointField.UINT16,
    np.dtype(np.int32): PointField.INT32,
    np.dtype(np.uint32): PointField.UINT32,
    np.dtype(np.float32): PointField.FLOAT32,
    np.dtype(np.float64): PointField.FLOAT64,
}
_DTYPES = {code: dtype for dtype, code in _DATATYPES.items()}


class PointCloudError(LowlightError):
    """Inputs of a semantic cloud do not fit together, or a PointCloud2 cannot be read."""


def pack_rgb(palette: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours -> (N,) float32: each uint32 0x00RRGGBB reinterpreted as float32,
    the ``rgb`` field layout RViz (and PCL) expect."""
    rgb = np.asarray(palette, dtype=np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return packed.view(np.float32)


@lru_cache(maxsize=8)
def _decimated_rays(intrinsics: Intrinsics, decimation: int) -> np.ndarray:
    """``intrinsics.rays()`` on every ``decimation``-th pixel, cached per camera."""
    rays = np.ascontiguousarray(intrinsics.rays()[::decimation, ::decimation])
    rays.flags.writeable = False
    return rays


@lru_cache(maxsize=8)
def _finite_rays(intrinsics: Intrinsics) -> np.ndarray:
    """(H, W) bool: pixels whose ray is finite (all of them for a real calibration), cached per
    camera so the organised cloud does not test 3 x H x W floats every frame."""
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(_decimated_rays(intrinsics, 1)).all(axis=2)
    finite.flags.writeable = False
    return finite


def semantic_points(
    depth_m: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray,
    intrinsics: Intrinsics,
    palette: np.ndarray,
    *,
    decimation: int = 4,
    min_confidence: float = 0.0,
    max_depth: float = 10.0,
    organized: bool = False,
) -> np.ndarray:
    """Labelled 3-D points from an aligned depth image and the segmentation of its colour frame.

    Unorganised (default): every ``decimation``-th pixel in each direction (rows and columns
    0, d, 2d, ...) is back-projected with the camera's rays (as :meth:`Intrinsics.backproject`);
    a point is kept when 0 < depth <= ``max_depth``, confidence >= ``min_confidence`` and its
    coordinates are finite. Void points are kept (their label says so). Points come in
    row-major pixel order. Organised: every pixel, (H, W), NaN x/y/z where depth is invalid;
    decimation and the filters do not apply.

    Args:
        depth_m: (H, W) float depth in metres, 0 (or NaN) invalid: :func:`depth_to_metres`.
        labels: (H, W) uint8 class ids.
        confidence: (H, W) uint8 max softmax x 255.
        intrinsics: the colour camera the depth is aligned to, of size W x H.
        palette: (N, 3) uint8 class colours (``ClassSet.palette``); ids outside it take
            colour 0 (void), as ``ClassSet.colorize`` shows them.
        decimation: pixel step, >= 1.
        min_confidence: lowest kept confidence, 0..1.
        max_depth: farthest kept depth in metres.
        organized: one point per pixel, shaped (H, W).

    Returns:
        A structured array of :data:`POINT_DTYPE`: 1-D, or (H, W) when ``organized``.

    Raises:
        PointCloudError: shapes that differ from each other or from the intrinsics, labels or
            confidence not uint8, a bad palette or decimation < 1.
    """
    size = (intrinsics.height, intrinsics.width)
    for name, image in (("depth", depth_m), ("labels", labels), ("confidence", confidence)):
        if image.shape != size:
            raise PointCloudError(
                f"{name} is {image.shape}, but camera_info says {size[1]}x{size[0]} (H, W)"
            )
    for name, image in (("labels", labels), ("confidence", confidence)):
        if image.dtype != np.uint8:
            raise PointCloudError(f"{name} must be uint8, got {image.dtype}")
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 0 < len(palette) <= 256:
        raise PointCloudError(f"palette must be (N <= 256, 3) colours, got {palette.shape}")
    if int(decimation) < 1:
        raise PointCloudError(f"decimation must be >= 1, got {decimation}")
    colours = np.full(256, pack_rgb(palette[:1])[0], dtype=np.float32)
    colours[: len(palette)] = pack_rgb(palette)
    if organized:
        z = np.asarray(depth_m, dtype=np.float32)
        rays = _decimated_rays(intrinsics, 1)
        with np.errstate(invalid="ignore", over="ignore"):
            valid = (z > 0) & np.isfinite(z) & _finite_rays(intrinsics)
            z = np.where(valid, z, np.float32(np.nan))
            points = np.empty(size, dtype=POINT_DTYPE)
            points["x"] = rays[..., 0] * z
            points["y"] = rays[..., 1] * z
        points["z"] = z
        points["rgb"] = colours[labels]
        points["label"] = labels
        points["confidence"] = confidence.astype(np.float32) / np.float32(255.0)
        return points

    d = int(decimation)
    z = np.asarray(depth_m[::d, ::d], dtype=np.float32)
    conf = confidence[::d, ::d].astype(np.float32) / np.float32(255.0)
    rays = _decimated_rays(intrinsics, d)
    with np.errstate(invalid="ignore", over="ignore"):
        keep = (z > 0) & (z <= max_depth) & (conf >= min_confidence)  # NaN fails z > 0
        x, y = rays[..., 0] * z, rays[..., 1] * z
        keep &= np.isfinite(x) & np.isfinite(y)  # is_dense must be true
    ids = labels[::d, ::d][keep]
    points = np.empty(int(keep.sum()), dtype=POINT_DTYPE)
    points["x"] = x[keep]
    points["y"] = y[keep]
    points["z"] = z[keep]
    points["rgb"] = colours[ids]
    points["label"] = ids
    points["confidence"] = conf[keep]
    return points


def _point_fields(points: np.ndarray) -> list[tuple[str, int, int]]:
    """(name, offset, PointField datatype) of each field, by offset.

    Raises:
        PointCloudError: not a 1-D / 2-D structured array, or a field type PointField lacks.
    """
    if points.dtype.names is None or points.ndim not in (1, 2):
        raise PointCloudError(f"points must be a 1-D or 2-D structured array, got {points.dtype}")
    fields = []
    for name in points.dtype.names:
        dtype, offset = points.dtype.fields[name][:2]
        code = _DATATYPES.get(dtype.newbyteorder("="))
        if code is None or not dtype.isnative:
            raise PointCloudError(f"point field {name!r} has unsupported type {dtype}")
        fields.append((name, offset, code))
    return sorted(fields, key=lambda f: f[1])


def _layout(points: np.ndarray) -> tuple[int, int]:
    """(height, width): (H, W) organised, (1, N) unorganised."""
    if points.ndim == 2:
        return int(points.shape[0]), int(points.shape[1])
    return 1, int(points.size)


def to_pointcloud2(points: np.ndarray, header: Any) -> PointCloud2:
    """A PointCloud2 holding ``points``: unorganised (height 1, ``is_dense``) for a 1-D array,
    organised (height H, width W, not dense: it may hold NaN points) for an (H, W) one.

    Fields, offsets and datatypes come from the structured dtype (for :data:`POINT_DTYPE`:
    x, y, z, rgb FLOAT32 at 0, 4, 8, 12, label UINT8 at 16, confidence FLOAT32 at 20,
    point_step 24). ``is_bigendian`` is the host's.

    Args:
        points: 1-D or 2-D structured array of numeric scalar fields (:func:`semantic_points`).
        header: std_msgs/Header, kept as given (the input frame's stamp and frame_id).

    Raises:
        PointCloudError: not a 1-D / 2-D structured array, or a field type PointField lacks.
    """
    fields = _point_fields(points)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = _layout(points)
    msg.fields = [PointField(name=n, offset=o, datatype=c, count=1) for n, o, c in fields]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = points.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = points.ndim == 1
    msg.data = to_byte_array(points)
    return msg


def pointcloud2_cdr(points: np.ndarray, header: Any) -> bytes:
    """The serialized PointCloud2 of :func:`to_pointcloud2` (same fields, same bytes), with one
    copy of the points: what the node publishes.

    Raises:
        PointCloudError: as :func:`to_pointcloud2`.
    """
    fields = _point_fields(points)
    height, width = _layout(points)
    cdr = CdrWriter()
    cdr.header(header)
    cdr.u32(height)
    cdr.u32(width)
    cdr.u32(len(fields))  # sensor_msgs/PointField[]: name, offset, datatype, count
    for name, offset, code in fields:
        cdr.string(name)
        cdr.u32(offset)
        cdr.u8(code)
        cdr.u32(1)
    cdr.u8(sys.byteorder == "big")
    cdr.u32(points.dtype.itemsize)
    cdr.u32(points.dtype.itemsize * width)
    return cdr.bytes_of(points, bytes([points.ndim == 1]))  # is_dense after the data


def pointcloud2_to_numpy(msg: PointCloud2) -> np.ndarray:
    """Read a PointCloud2 into a 1-D structured array (height x width points, row-major).

    A view over ``msg.data`` when rows are unpadded and the byte order is the host's, else a
    copy. Fields with ``count`` > 1 become sub-arrays.

    Raises:
        PointCloudError: an unknown field datatype, fields beyond ``point_step``, rows longer
            than ``row_step``, or truncated data.
    """
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for field in msg.fields:
        if field.datatype not in _DTYPES:
            raise PointCloudError(
                f"point field {field.name!r} has unknown datatype {field.datatype}"
            )
        dtype = _DTYPES[field.datatype].newbyteorder(order)
        names.append(field.name)
        formats.append((dtype, (field.count,)) if field.count > 1 else dtype)
        offsets.append(field.offset)
    try:
        wire = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step}
        )
    except ValueError as err:
        raise PointCloudError(
            f"point fields do not fit point_step {msg.point_step}: {err}"
        ) from None
    height, width, row_step = int(msg.height), int(msg.width), int(msg.row_step)
    if width * msg.point_step > row_step:
        raise PointCloudError(
            f"row_step {row_step} is smaller than width {width} x point_step {msg.point_step}"
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < row_step * height:
        raise PointCloudError(
            f"cloud data is truncated: {buf.size} bytes, row_step {row_step} x height "
            f"{height} = {row_step * height} expected"
        )
    rows = buf[: row_step * height].reshape(height, row_step)[:, : width * msg.point_step]
    points = np.ascontiguousarray(rows).view(wire).reshape(-1)
    native = np.dtype(
        {
            "names": names,
            "formats": [np.dtype(f).newbyteorder("=") for f in formats],
            "offsets": offsets,
            "itemsize": msg.point_step,
        }
    )
    return points if wire == native else points.astype(native)
