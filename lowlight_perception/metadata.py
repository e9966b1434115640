"""Metadata carried inside every exported ONNX (and TensorRT engine cache key), so a model can
never be paired with the wrong class list, palette or input size. No torch: the inference side
reads it on machines without training code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .errors import LowlightError

PREFIX = "lowlight."
FORMAT_VERSION = 2
"""2: graphs take frames of any size (``camera_size`` is the size they are made for); 1: graphs
fixed at ``camera_size`` (lowlight_perception 0.1), still read."""
MAX_CLASSES = 256  # labels are uint8 (mono8 on ROS)
UPSAMPLE_MODES = ("labels", "logits")


class MetadataError(LowlightError):
    """An ONNX file lacks lowlight metadata or carries an incompatible version."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a consumer must know about an exported graph.

    ``camera_size`` is the (W, H) of the camera the model is made for: the frame size the
    export was verified at and a TensorRT shape profile's optimum (format 2 graphs take any
    size; format 1 graphs only this one); ``net_size`` the (W, H) the network runs at inside
    the graph; ``upsample`` how labels reach the frame's size ("labels": argmax at net size
    then nearest; "logits": bilinear logits first).
    """

    model: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    camera_size: tuple[int, int]
    net_size: tuple[int, int]
    upsample: str = "labels"
    package_version: str = ""
    training: str = ""
    model_config: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_props(self) -> dict[str, str]:
        """Flat string key/values for ``onnx.ModelProto.metadata_props``."""
        return {PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse ``metadata_props`` (e.g. ``session.get_modelmeta().custom_metadata_map``).

        Raises:
            MetadataError: if keys are missing or the format version is newer than ours.
        """
        ours = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        if not ours:
            raise MetadataError("not a lowlight_perception model: no 'lowlight.*' metadata")
        try:
            doc = {k: json.loads(v) for k, v in ours.items()}
            version = int(doc.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise MetadataError(
                    f"model metadata format {version} is newer than this package's "
                    f"({FORMAT_VERSION}); upgrade lowlight_perception"
                )
            meta = cls(
                model=str(doc["model"]),
                class_names=tuple(doc["class_names"]),
                palette=tuple(tuple(int(c) for c in rgb) for rgb in doc["palette"]),
                camera_size=tuple(int(v) for v in doc["camera_size"]),
                net_size=tuple(int(v) for v in doc["net_size"]),
                upsample=doc.get("upsample", "labels"),
                package_version=str(doc.get("package_version", "")),
                training=str(doc.get("training", "")),
                model_config=doc.get("model_config", {}),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MetadataError(f"malformed lowlight metadata: {err}") from err
        problem = meta.problem()
        if problem:
            raise MetadataError(f"invalid lowlight metadata: {problem}")
        return meta

    def problem(self) -> str | None:
        """What makes this metadata unusable for a consumer (None if nothing): the node
        would otherwise go active and then drop every frame or output."""
        names, palette = self.class_names, self.palette
        if not 1 <= len(names) <= MAX_CLASSES or not all(isinstance(n, str) for n in names):
            return f"class_names must be 1..{MAX_CLASSES} strings, got {len(names)} entries"
        if len(palette) != len(names):
            return f"palette has {len(palette)} colours for {len(names)} classes"
        if any(len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb) for rgb in palette):
            return "every palette colour must be three integers in 0..255"
        for key in ("camera_size", "net_size"):
            size = getattr(self, key)
            if len(size) != 2 or min(size) < 1:
                return f"{key} must be two positive integers (W, H), got {list(size)}"
        if self.upsample not in UPSAMPLE_MODES:
            return f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}"
        return None
