"""Video files that play everywhere: H.264 in MP4 through PyAV (its wheels bundle FFmpeg and x264),
Motion-JPEG in AVI through OpenCV; OpenCV's MPEG-4 Part 2 only as a fallback, with a warning."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
AVI_SUFFIXES = (".avi",)


class VideoWriter(Protocol):
    codec: str
    silent_failures: bool        # True: a write can fail without raising (the file's growth must be watched)

    def write(self, frame_bgr: np.ndarray) -> None: ...
    def close(self) -> None: ...


class H264Writer:
    """H.264 (yuv420p, x264 'veryfast', CRF 23) in MP4 with the index at the front (plays while loading)."""

    codec = "h264"
    silent_failures = False      # PyAV raises on a full disk; x264 holds frames back, so the file grows in bursts

    def __init__(self, path: Path, width: int, height: int, fps: float):
        import av
        from fractions import Fraction

        self._container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
        self._failed = False     # a write failed: the muxer's state is broken, closing must not mux again
        try:
            self._stream = self._container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
            self._stream.width, self._stream.height = width - width % 2, height - height % 2   # 4:2:0 needs even sizes
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"preset": "veryfast", "crf": "23"}
        except Exception:
            self._container.close()
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        import av

        if self._failed:
            raise OSError("the video file is broken by an earlier write error")
        frame = frame_bgr[:self._stream.height, :self._stream.width]
        try:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                                         format="bgr24")):
                self._container.mux(packet)
        except Exception:
            self._failed = True
            raise

    def close(self) -> None:
        """Flush the encoder and write the index. After a failed write (a full disk) nothing more is
        muxed: FFmpeg's muxer is then in a broken state, and PyAV crashed (SIGSEGV) muxing into it."""
        if self._failed:
            self._abandon()
            raise OSError("the video file was not finished: an earlier write failed")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        except Exception:
            self._failed = True
            self._abandon()
            raise
        self._container.close()

    def _abandon(self) -> None:
        """Close the file without writing the trailer (the caller removes it)."""
        try:
            self._container.close()
        except Exception as exc:      # the trailer cannot be written either: the file is deleted anyway
            log.debug("closing a failed video file: %s", exc)


class OpenCVWriter:
    """OpenCV's writer: Motion-JPEG (``.avi``) or MPEG-4 Part 2 (``.mp4`` fallback)."""

    silent_failures = True       # it prints "Failed to write frame" and carries on

    def __init__(self, path: Path, width: int, height: int, fps: float, fourcc: str):
        self.codec = fourcc
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
        if not self._writer.isOpened():
            raise OSError(f"OpenCV cannot open {path} for writing")

    def write(self, frame_bgr: np.ndarray) -> None:
        self._writer.write(frame_bgr)

    def close(self) -> None:
        self._writer.release()


def video_path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot take a recording (a folder, a suffix no writer makes), or None."""
    path = Path(path)
    if path.is_dir():
        return (f"--output {path} is a folder: name a video file in it, such as "
                f"{path / 'recording.mp4'}")
    suffix = path.suffix.lower()
    if suffix not in MP4_SUFFIXES + AVI_SUFFIXES:
        return f"unsupported video file type {suffix or '(none)'!r} for {path.name}: name the file .mp4 or .avi"
    return None


def open_video_writer(path: str | Path, width: int, height: int, fps: float) -> VideoWriter:
    """A writer for ``path`` by its suffix: ``.mp4``/``.m4v``/``.mov`` H.264, ``.avi`` Motion-JPEG.
    Raises ``ValueError`` for another suffix and ``OSError`` when the file cannot be opened."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in AVI_SUFFIXES:
        return OpenCVWriter(path, width, height, fps, "MJPG")
    if suffix not in MP4_SUFFIXES:
        raise ValueError(f"unsupported video file type {suffix or '(none)'!r}: name the file .mp4 or .avi")
    try:
        return H264Writer(path, width, height, fps)
    except ImportError:
        reason = "PyAV is not installed (pip install av)"
    except Exception as exc:  # av raises its own error types (no encoder, unwritable path)
        if not path.parent.is_dir() or isinstance(exc, PermissionError):
            raise OSError(f"cannot write {path}: {exc}") from exc
        reason = f"PyAV cannot encode H.264 here ({exc})"
    log.warning("%s: writing MPEG-4 Part 2 instead, which browsers and QuickTime do not play", reason)
    return OpenCVWriter(path, width, height, fps, "mp4v")
