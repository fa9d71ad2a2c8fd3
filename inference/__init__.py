"""Portrait segmentation, mask refinement and compositing. Knows nothing of Qt or cameras.

The library API::

    from bgswap.inference import Segmenter, MaskRefiner, Compositor, parse_background
"""
from .backends import BackendOptions, create_backend
from .backgrounds import parse_background
from .compose import Compositor
from .model_meta import ModelError, ModelMeta
from .refine import MaskRefiner
from .segmenter import DEFAULT_MODEL_DIR, Segmenter

__all__ = ["BackendOptions", "Compositor", "create_backend", "DEFAULT_MODEL_DIR", "MaskRefiner", "ModelError",
           "ModelMeta", "parse_background", "Segmenter"]
