"""The LLRGBD class list (void + NYUv2-13) and palette, read once from ``config/classes.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .config import load_yaml
from .errors import ConfigError


@dataclass(frozen=True)
class ClassSet:
    """Class names and RGB palette indexed by class id; ``void`` is ignored by losses/metrics."""

    names: tuple[str, ...]
    palette: np.ndarray  # (num_classes, 3) uint8
    void_index: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Class id of ``name``.

        Raises:
            KeyError: naming the valid classes.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown class {name!r}; valid: {', '.join(self.names)}") from None

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB image (H, W, 3) uint8 of a label image; ids outside the palette show as void.

        uint8 labels (the node's, every frame) are looked up in a 256-entry table with
        ``np.take``: about 4x faster than fancy indexing at 640x480."""
        labels = np.asarray(labels)
        if labels.dtype == np.uint8:
            return np.take(self._table, labels, axis=0)
        ids = np.where((labels >= 0) & (labels < self.num_classes), labels, self.void_index)
        return np.take(self.palette, ids, axis=0)

    @cached_property
    def _table(self) -> np.ndarray:
        """(256, 3) uint8: the palette, then the void colour for every id beyond it."""
        table = np.tile(self.palette[self.void_index], (256, 1)).astype(np.uint8)
        table[: min(256, self.num_classes)] = self.palette[:256]
        return table


def blend(rgb: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """``~/overlay``: class colours over the input, ((256 - a) * rgb + a * colours) >> 8 with
    a = round(256 * alpha), in exact integers.

    The products are made in uint16 explicitly: under NumPy 1 (Humble's and Jazzy's apt numpy
    1.26) value-based casting kept ``np.uint16(a) * uint8_array`` in uint8, which wrapped.
    """
    a = round(256 * float(alpha))
    out = np.multiply(rgb, 256 - a, dtype=np.uint16)
    out += np.multiply(colours, a, dtype=np.uint16)
    out >>= 8
    return out.astype(np.uint8)


def parse_classes(doc: dict) -> ClassSet:
    """Validate a ``classes.yaml`` document: ids 0..N-1 in order, unique names, RGB colours.

    Raises:
        ConfigError: on any inconsistency.
    """
    try:
        entries = doc["classes"]
        ids = [int(e["id"]) for e in entries]
        names = tuple(str(e["name"]) for e in entries)
        palette = np.array([e["color"] for e in entries], dtype=np.int64)
        void_index = int(doc.get("void_index", 0))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"classes.yaml: malformed entry ({err})") from err
    if ids != list(range(len(ids))):
        raise ConfigError(f"classes.yaml: ids must be 0..{len(ids) - 1} in order, got {ids}")
    if len(set(names)) != len(names):
        raise ConfigError("classes.yaml: class names must be unique")
    if palette.shape != (len(ids), 3) or palette.min() < 0 or palette.max() > 255:
        raise ConfigError("classes.yaml: every color must be three integers in 0..255")
    if not 0 <= void_index < len(ids):
        raise ConfigError(f"classes.yaml: void_index {void_index} is not a class id")
    return ClassSet(names=names, palette=palette.astype(np.uint8), void_index=void_index)


@lru_cache(maxsize=1)
def load_classes() -> ClassSet:
    """The project's class set, from ``config/classes.yaml``."""
    return parse_classes(load_yaml("config/classes.yaml"))
