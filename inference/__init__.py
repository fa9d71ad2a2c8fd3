"""Portrait segmentation, mask refinement and compositing. Knows nothing of Qt or cameras."""
from .backends import BackendOptions, create_backend
from .model_meta import ModelError, ModelMeta
from .segmenter import DEFAULT_MODEL_DIR, Segmenter

__all__ = ["BackendOptions", "create_backend", "ModelError", "ModelMeta", "Segmenter", "DEFAULT_MODEL_DIR"]
