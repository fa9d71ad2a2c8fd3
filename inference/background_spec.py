"""The text form of a background (``none``, ``blur:15``, ``color:#2E8B57``, ``green``, a file path):
parsed and written in this one place, for the command line, settings files, the GUI and the service."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .media import media_kind

KINDS = ("none", "blur", "color", "green", "file")
MADE_KINDS = ("none", "blur", "color", "colour", "green")   # the words a background made without a file starts with
DEFAULT_BLUR = 15                 # the one home of the blur's default and range, and of the default colour
BLUR_RANGE = (1, 100)
DEFAULT_COLOR = "#2E8B57"
MADE_SYNTAX = f"blur[:{BLUR_RANGE[0]}-{BLUR_RANGE[1]}], color:#RRGGBB, green or none"      # the backgrounds made without a file
SYNTAX = f"an image or video file, {MADE_SYNTAX}"


class BackgroundError(ValueError):
    """A background cannot be used: bad spec text, or a file that cannot be read; the message says why."""


def parse_color(text: str) -> tuple[int, int, int]:
    """'#RRGGBB' or 'RRGGBB' -> BGR tuple."""
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if not m:
        raise BackgroundError(f"colour {text!r} is not of the form #RRGGBB")
    v = m.group(1)
    r, g, b = (int(v[i:i + 2], 16) for i in (0, 2, 4))
    return b, g, r


@dataclass(frozen=True)
class BackgroundSpec:
    """One background choice. ``kind`` is one of KINDS; ``value`` is the blur strength (int),
    the colour (``#RRGGBB``, upper case) or the file path (str); None for ``none`` and ``green``."""

    kind: str
    value: int | str | None = None

    @classmethod
    def parse(cls, text: "str | BackgroundSpec") -> "BackgroundSpec":
        """Check the syntax only (a file is not opened here); raises BackgroundError."""
        if isinstance(text, BackgroundSpec):
            return text
        if not isinstance(text, str) or not text.strip():
            raise BackgroundError(f"background {text!r} is not one of {SYNTAX}")
        s = text.strip()
        low = s.lower()
        if low in ("none", "green"):
            return cls(low)
        if low == "blur" or low.startswith("blur:"):
            arg = low.split(":", 1)[1] if ":" in low else str(DEFAULT_BLUR)
            try:
                strength = int(arg)
            except ValueError:
                strength = 0
            if not BLUR_RANGE[0] <= strength <= BLUR_RANGE[1]:
                raise BackgroundError(f"bad blur strength in {text!r}: use blur:1 to blur:100")
            return cls("blur", strength)
        if low.startswith(("color:", "colour:")):
            b, g, r = parse_color(s.split(":", 1)[1])
            return cls("color", f"#{r:02X}{g:02X}{b:02X}")
        path = Path(s).expanduser()
        try:
            exists = path.exists()
        except OSError:                 # a name too long for the file system, and the like
            exists = False
        if media_kind(path) is None and not exists:
            raise BackgroundError(f"background {text!r} is not one of {SYNTAX}")
        return cls("file", s)

    def __str__(self) -> str:
        if self.kind in ("blur", "color"):
            return f"{self.kind}:{self.value}"
        if self.kind == "file":
            return str(self.value)
        return self.kind

    @property
    def path(self) -> Path | None:
        return Path(str(self.value)).expanduser() if self.kind == "file" else None

    @property
    def identity(self) -> str:
        """What makes two specs the same gallery entry: the kind for blur and colour (any strength or
        colour), the resolved path for files, else the kind."""
        if self.kind == "file":
            p = self.path
            return str(p.resolve()) if p.exists() else str(p)
        return self.kind

