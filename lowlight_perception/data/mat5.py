"""A MATLAB v5/v7 ``.mat`` reader for numeric arrays, without scipy: what the NYUv2 toolbox's
``splits.mat`` needs (v7.3 files are HDF5 and go through h5py instead)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError


def read_mat5(path: Path) -> dict[str, np.ndarray]:
    """Numeric arrays of a MATLAB v5/v7 .mat file (as ``splits.mat`` is), without scipy.

    Supports uncompressed and zlib-compressed (``miCOMPRESSED``) real numeric matrices, which is
    all the NYU split file holds; other variables are skipped.
    """
    data = path.read_bytes()
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise DatasetError(f"{path} is not a MATLAB v5 .mat file")
    endian = "<" if data[126:128] == b"IM" else ">"
    dtypes = {
        1: "i1",
        2: "u1",
        3: "i2",
        4: "u2",
        5: "i4",
        6: "u4",
        7: "f4",
        9: "f8",
        12: "i8",
        13: "u8",
    }

    def elements(buffer: bytes, offset: int, end: int):
        while offset + 8 <= end:
            kind, nbytes = struct.unpack_from(endian + "II", buffer, offset)
            if kind >> 16:  # small data element: 2-byte size, 2-byte type, 4 bytes of data
                kind, nbytes = kind & 0xFFFF, kind >> 16
                yield kind, buffer[offset + 4 : offset + 4 + nbytes]
                offset += 8
                continue
            yield kind, buffer[offset + 8 : offset + 8 + nbytes]
            offset += 8 + nbytes + (-nbytes % 8 if kind != 15 else 0)

    out: dict[str, np.ndarray] = {}

    def matrix(body: bytes) -> None:
        parts = list(elements(body, 0, len(body)))
        if len(parts) < 4:
            return
        flags = np.frombuffer(parts[0][1], endian + "u4")
        mclass = int(flags[0]) & 0xFF
        if not 6 <= mclass <= 15 or int(flags[0]) & 0x800:  # numeric, not complex
            return
        dims = np.frombuffer(parts[1][1], endian + dtypes[parts[1][0]])
        name = parts[2][1].decode("ascii", "replace")
        kind, raw = parts[3]
        values = np.frombuffer(raw, endian + dtypes[kind]).astype(np.float64)
        out[name] = values.reshape(tuple(int(d) for d in dims), order="F")

    try:
        for kind, body in elements(data, 128, len(data)):
            if kind == 15:
                inner = zlib.decompress(body)
                for inner_kind, inner_body in elements(inner, 0, len(inner)):
                    if inner_kind == 14:
                        matrix(inner_body)
            elif kind == 14:
                matrix(body)
    except (struct.error, zlib.error, ValueError, KeyError) as err:
        raise DatasetError(f"cannot parse MATLAB file {path}: {err!r}") from err
    return out
