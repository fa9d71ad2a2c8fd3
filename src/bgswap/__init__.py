"""bgswap: real-time webcam background replacement. The app is ``bgswap.app``, the segmentation
library ``bgswap.inference`` (see the README's "The library API").

``__version__`` has one home: ``pyproject.toml``'s ``[project] version``, read here from the installed
package's metadata (bgswap is only importable installed, editable or not).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bgswap")
except PackageNotFoundError:        # imported from an unpacked copy that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
