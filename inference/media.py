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


def file_problem(path: str | Path, what: str) -> str | None:
    """Why ``path`` cannot be read as a media file, from ``stat`` alone (nothing is opened: opening a
    FIFO nobody writes to would wait for ever), or None for a regular file (a link to one is fine).
    ``what`` names it in the message: "image source", "background file"."""
    import stat

    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return f"{what} {path} does not exist"
    except OSError as exc:               # a name too long, a loop of links, no permission on the folder
        return f"{what} {path} cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"{what} {path} is a folder: name a file in it"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"{what} {path} is {kind}, not a file: bgswap reads saved image and video files only"
