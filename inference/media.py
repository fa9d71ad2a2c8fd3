"""What kind of media a file is, by its extension: the one list capture and compositing share."""
from __future__ import annotations

from pathlib import Path

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif"})
MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS


def media_kind(path: str | Path) -> str | None:
    """``"image"``, ``"video"`` or None (an extension neither list knows)."""
    ext = Path(path).suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def is_media_file(path: str | Path) -> bool:
    return media_kind(path) is not None
