"""Joint transforms on a :class:`~lowlight_perception.data.sample.Sample`.

Every transform moves the images, the label, the depth, the shading and the intrinsics of a view
together, so a crop or a flip can never separate a label from the pixels it describes, and the
intrinsics stay true for back-projection after augmentation. Field kinds decide the resampling:
colour images and shading are interpolated (bilinear), class ids and depth never are (nearest:
an interpolated depth edge is a point floating between two surfaces, an interpolated label is a
class that is not there). numpy and Pillow only, so the same code runs in a DataLoader worker and
on a robot without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ..camera import Intrinsics
from .sample import Sample

Transform = Callable[[Sample], Sample]

IMAGE_FIELDS: tuple[str, ...] = ("low", "normal", "albedo")
"""(H, W, 3) uint8 colour images: bilinear, padded with black."""
SHADING_FIELDS: tuple[str, ...] = ("shading_low", "shading_normal")
"""(H, W) float32 illumination: bilinear, padded with 0."""
NEAREST_FIELDS: tuple[str, ...] = ("label", "depth")
"""(H, W) ids / uint16 millimetres: nearest, padded with 0 (void / invalid depth)."""
ARRAY_FIELDS: tuple[str, ...] = IMAGE_FIELDS + SHADING_FIELDS + NEAREST_FIELDS


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """(width, height) from an int (square) or a pair; rejects non-positive sizes."""
    if isinstance(size, int):
        width = height = size
    else:
        width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive (width, height), got {size!r}")
    return width, height


def resize_array(array: np.ndarray, width: int, height: int, nearest: bool) -> np.ndarray:
    """Resize one field with Pillow; dtype and channel layout are preserved."""
    if nearest:
        # Mode "I" (int32) keeps uint16 depth and uint8 ids exact under NEAREST.
        image = Image.fromarray(array.astype(np.int32))
        out = np.asarray(image.resize((width, height), Image.Resampling.NEAREST))
        return out.astype(array.dtype)
    if array.dtype == np.uint8:
        image = Image.fromarray(array)
        return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    image = Image.fromarray(array.astype(np.float32))  # mode "F"
    out = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    return out.astype(array.dtype, copy=False)


def resize_sample(sample: Sample, size: int | Sequence[int]) -> Sample:
    """A copy of ``sample`` at ``size`` = (width, height), intrinsics scaled to match.

    This is the one resize of the project (the datasets' ``size=`` option calls it), so a network
    sees training views resampled exactly as its evaluation views.
    """
    width, height = _size(size)
    if sample.size == (width, height):
        return sample
    changes: dict = {}
    for field in ARRAY_FIELDS:
        array = getattr(sample, field)
        if array is not None:
            changes[field] = resize_array(array, width, height, field in NEAREST_FIELDS)
    if sample.intrinsics is not None:
        changes["intrinsics"] = sample.intrinsics.scaled(width, height)
    return dataclasses.replace(sample, **changes)


def _check_fields(sample: Sample) -> tuple[int, int]:
    """(width, height) of ``sample``; every present field must share it."""
    width, height = sample.size
    for field in ARRAY_FIELDS:
        array = getattr(sample, field)
        if array is not None and array.shape[:2] != (height, width):
            raise ValueError(
                f"sample {sample.name}: {field} is {array.shape[1]}x{array.shape[0]}, "
                f"low is {width}x{height}"
            )
    return width, height


class Resize:
    """Resize a sample to a fixed (width, height); see :func:`resize_sample`."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size)

    def __call__(self, sample: Sample) -> Sample:
        return resize_sample(sample, self.size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class _Random:
    """Holds the generator of a random transform.

    A seed makes augmentation reproducible. DataLoader workers receive copies of the same
    generator state, so call :meth:`reseed` from ``worker_init_fn`` (for example with
    ``base_seed + worker_id``) or every worker applies the same crops and flips.
    """

    def __init__(self, seed: int | None) -> None:
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream (``None``: fresh OS entropy)."""
        self._rng = np.random.default_rng(seed)


class RandomCrop(_Random):
    """Crop a random (width, height) window; smaller views are first padded at right/bottom.

    Padding uses black for images, 0 for shading, void (0) for labels and invalid (0) for depth,
    so padded pixels are ignored by the loss and carry no geometry. The principal point moves
    with the window (cx - x0, cy - y0); focal lengths are unchanged.
    """

    def __init__(self, size: int | Sequence[int], seed: int | None = None) -> None:
        self.size = _size(size)
        super().__init__(seed)

    def __call__(self, sample: Sample) -> Sample:
        width, height = _check_fields(sample)
        crop_w, crop_h = self.size
        x0 = int(self._rng.integers(0, max(width - crop_w, 0) + 1))
        y0 = int(self._rng.integers(0, max(height - crop_h, 0) + 1))
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        changes: dict = {}
        for field in ARRAY_FIELDS:
            array = getattr(sample, field)
            if array is None:
                continue
            if pad_w or pad_h:
                pads = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
                array = np.pad(array, pads, mode="constant", constant_values=0)
            changes[field] = np.ascontiguousarray(array[y0 : y0 + crop_h, x0 : x0 + crop_w])
        k = sample.intrinsics
        if k is not None:
            changes["intrinsics"] = Intrinsics(crop_w, crop_h, k.fx, k.fy, k.cx - x0, k.cy - y0)
        return dataclasses.replace(sample, **changes)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class RandomHorizontalFlip(_Random):
    """Mirror the view left-right with probability ``p``.

    The mirrored image is what a camera with principal point ``cx' = (W - 1) - cx`` would see
    (pixel-centre convention), so the intrinsics are flipped too.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        super().__init__(seed)

    def __call__(self, sample: Sample) -> Sample:
        width, _ = _check_fields(sample)
        if self._rng.random() >= self.p:
            return sample
        changes: dict = {
            field: np.ascontiguousarray(getattr(sample, field)[:, ::-1])
            for field in ARRAY_FIELDS
            if getattr(sample, field) is not None
        }
        k = sample.intrinsics
        if k is not None:
            changes["intrinsics"] = dataclasses.replace(k, cx=(width - 1) - k.cx)
        return dataclasses.replace(sample, **changes)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order (torchvision style, on whole samples)."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def reseed(self, seed: int | None) -> None:
        """Reseed every random member, each from its own child of ``seed``."""
        children = np.random.SeedSequence(seed).spawn(len(self.transforms))
        for transform, child in zip(self.transforms, children, strict=True):
            if hasattr(transform, "reseed"):
                transform.reseed(int(child.generate_state(1)[0]))

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"
