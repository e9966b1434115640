"""Image files of the dataset layouts: 8-bit RGB, 8-bit labels, 16-bit depth and shading PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError as err:
        raise DatasetError(f"missing file: {path}") from err
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any 8-bit image file (grey or RGBA are converted)."""
    return np.asarray(_open(Path(path)).convert("RGB"))


def read_label(path: str | Path) -> np.ndarray:
    """(H, W) uint8 class ids from a single-channel (or palette-indexed) PNG.

    Raises:
        DatasetError: if the file is an RGB/colour-coded image rather than ids.
    """
    image = _open(Path(path))
    if image.mode not in ("L", "P", "I", "I;16"):
        raise DatasetError(f"label image {path} has mode {image.mode}; expected class ids (L or P)")
    ids = np.asarray(image)
    if ids.max(initial=0) > 255:
        raise DatasetError(f"label image {path} has ids above 255")
    return ids.astype(np.uint8, copy=False)


def read_uint16(path: str | Path) -> np.ndarray:
    """(H, W) uint16 from a 16-bit single-channel PNG (depth in mm, scaled shading)."""
    image = _open(Path(path))
    if image.mode not in ("I", "I;16", "I;16B", "L"):
        raise DatasetError(f"{path} has mode {image.mode}; expected a 16-bit single-channel PNG")
    return np.asarray(image).astype(np.uint16, copy=False)


def write_png(path: str | Path, array: np.ndarray, compress_level: int = 1) -> None:
    """Write uint8 (H, W[, 3]) or uint16 (H, W) as PNG, creating parent directories.

    Level 1 (not Pillow's 6) encodes ~4x faster for ~15% larger files: dataset PNGs are written
    once by ``lowlight synth`` and decoded equally fast either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        if array.ndim != 2:
            raise ValueError("16-bit PNGs must be single-channel")
        Image.fromarray(array).save(path, compress_level=compress_level)  # 2-D uint16: I;16
    elif array.dtype == np.uint8:
        Image.fromarray(array).save(path, compress_level=compress_level)
    else:
        raise ValueError(f"cannot write {array.dtype} as PNG; use uint8 or uint16")
