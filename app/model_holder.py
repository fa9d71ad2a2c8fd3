"""The engine's model: built from the settings' MODEL fields, built anew when one of them changes."""
from __future__ import annotations

import gc
import logging

from bgswap.inference import Segmenter

from .memory import release_memory
from .settings.schema import MODEL, EngineSettings, fields_that_change

log = logging.getLogger(__name__)

MODEL_FIELDS = tuple(sorted(fields_that_change(EngineSettings, MODEL)))


def make_segmenter(s: EngineSettings) -> Segmenter:
    """The Segmenter ``s``'s MODEL fields describe."""
    return Segmenter(s.model_dir, model=s.model, backend=s.backend, compute=s.compute, tensorrt=s.tensorrt,
                     input_size=s.input_size, threads=s.threads, precision=s.precision, passes=s.passes)


def model_key(s: EngineSettings) -> tuple:
    return tuple(getattr(s, name) for name in MODEL_FIELDS)


class ModelHolder:
    """Owns the Segmenter: ``ensure(settings)`` builds it, or builds a new one when a MODEL field differs
    from the one it was built for (the old one keeps serving until the new one is ready; a build that
    fails raises and leaves the old one in place)."""

    def __init__(self) -> None:
        self.segmenter: Segmenter | None = None
        self._key: tuple | None = None

    def ensure(self, s: EngineSettings) -> Segmenter:
        key = model_key(s)
        if self.segmenter is not None and key == self._key:
            return self.segmenter
        new = make_segmenter(s)
        old, self.segmenter, self._key = self.segmenter, new, key
        if old is not None:
            del old                     # the old session's memory goes back to the system, not the heap
            gc.collect()
            release_memory()
        return new

    def differs(self, s: EngineSettings) -> bool:
        """Whether ``s`` needs another model than the one held (False before the first build)."""
        return self.segmenter is not None and model_key(s) != self._key
