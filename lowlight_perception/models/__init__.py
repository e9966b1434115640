"""PyTorch networks (LISU-decomp, LISU-joint/-semi/-seg, DeepLab v3+ joint variants).

Import only what training and export need: :func:`build_model` is the one constructor, and a
:class:`LowlightModel` is what every consumer runs. This package imports torch; the inference
and ROS layers must not import it unless the torch backend is selected.
"""

from .pipeline import LowlightModel, count_parameters, summary
from .registry import MODEL_NAMES, build_model, list_models

__all__ = [
    "MODEL_NAMES",
    "LowlightModel",
    "build_model",
    "count_parameters",
    "list_models",
    "summary",
]
