"""Metadata carried inside every exported ONNX (and TensorRT engine cache key), so a model can
never be paired with the wrong class list, palette or input size. No torch: the inference side
reads it on machines without training code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .errors import LowlightError

PREFIX = "lowlight."
FORMAT_VERSION = 1


class MetadataError(LowlightError):
    """An ONNX file lacks lowlight metadata or carries an incompatible version."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a consumer must know about an exported graph.

    ``camera_size`` is the (W, H) of the uint8 frame the graph takes and of its outputs;
    ``net_size`` the (W, H) the network runs at inside the graph; ``upsample`` how labels reach
    camera size ("labels": argmax at net size then nearest; "logits": bilinear logits first).
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
            return cls(
                model=doc["model"],
                class_names=tuple(doc["class_names"]),
                palette=tuple(tuple(int(c) for c in rgb) for rgb in doc["palette"]),
                camera_size=tuple(doc["camera_size"]),
                net_size=tuple(doc["net_size"]),
                upsample=doc.get("upsample", "labels"),
                package_version=doc.get("package_version", ""),
                training=doc.get("training", ""),
                model_config=doc.get("model_config", {}),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MetadataError(f"malformed lowlight metadata: {err}") from err
