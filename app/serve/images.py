"""Uploaded images in, results out: checked against the limits before decoding (decompression
bombs never reach memory), and errors that name the problem with the HTTP status that fits."""
from __future__ import annotations

import io

import cv2
import numpy as np

from bgswap.inference.backgrounds import REDUCED_READ, reduction

SUPPORTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}


class ImageRejected(Exception):
    """A request's image cannot be used: ``status`` (400, 413, 415) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def probe_upload(data: bytes, max_bytes: int, max_megapixels: float, what: str = "image") -> tuple[str, int, int]:
    """The format, width and height of an upload, read from its header only; ImageRejected when it is
    empty, too large, not an image or not a supported one."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None       # the header is all Pillow reads here; the limit below is ours
    if not data:
        raise ImageRejected(400, f"the {what} is empty")
    if len(data) > max_bytes:
        raise ImageRejected(413, f"the {what} is over the limit of {max_bytes / 1e6:.1f} MB")
    try:
        with Image.open(io.BytesIO(data)) as im:       # reads the header only
            fmt, (w, h) = im.format, im.size
    except UnidentifiedImageError:
        raise ImageRejected(400, f"the {what} sent is not in an image format: send JPEG, PNG, WebP or BMP") from None
    except Exception as exc:
        raise ImageRejected(400, f"the {what} cannot be read: {exc}") from None
    if fmt not in SUPPORTED:
        raise ImageRejected(415, f"{fmt} {what}s are not supported: send JPEG, PNG, WebP or BMP")
    if w * h > max_megapixels * 1e6:
        raise ImageRejected(413, f"the {what} is {w}x{h} ({w * h / 1e6:.0f} MP); the limit is {max_megapixels:g} MP")
    return fmt, w, h


def decode_upload(data: bytes, max_bytes: int, max_megapixels: float, what: str = "image",
                  reduce_to_mp: float | None = None, notes: list[str] | None = None) -> np.ndarray:
    """Bytes of a JPEG, PNG, WebP or BMP -> BGR uint8; ImageRejected otherwise. With ``reduce_to_mp`` a
    larger JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales while decoding: the full
    picture never reaches memory) to at most that many megapixels where it can. A warning about an
    image that is decoded but looks damaged is appended to ``notes``."""
    fmt, w, h = probe_upload(data, max_bytes, max_megapixels, what)
    factor = 1
    if reduce_to_mp is not None and fmt == "JPEG":
        factor = reduction(w, h, reduce_to_mp) or 8
    img = cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED_READ[factor])
    expected = (-(-h // factor), -(-w // factor))
    # OpenCV turns a photo upright by its EXIF orientation (a phone's portrait shot): height and width swap
    if img is None or img.shape[:2] not in (expected, expected[::-1]) or _truncated(fmt, data):
        raise ImageRejected(400, f"the {what} is damaged or truncated")
    if fmt == "JPEG" and notes is not None and grey_tail(img, max(1, 8 // factor)) is not None:
        notes.append(f"the {what} looks truncated: its end is missing and was filled grey (is the file complete?)")
    return img


def grey_tail(img: np.ndarray, block: int = 8) -> tuple[int, int] | None:
    """Where a truncated JPEG's missing part begins, as (block row, block column), or None.

    libjpeg decodes a JPEG whose data stops early (an end marker appended to a cut file passes the
    end-marker check) and fills every block after the cut with zeros: mid-grey (128) from that block,
    in reading order, to the end. Only a grey tail that starts inside a row of blocks counts: one that
    starts at a row's first block may be a grey band under the picture, and one of less than a row
    of blocks may be a grey corner. Walks up from the bottom
    right: most images are rejected by their last block."""
    h, w = img.shape[:2]
    rows, cols = h // block, w // block
    if rows == 0 or cols < 2:
        return None
    m = block // 4 if block >= 8 else 0          # chroma upsampling blends a block's edge with its neighbours

    def grey_blocks(r: int) -> np.ndarray:
        strip = img[r * block + m:(r + 1) * block - m, :cols * block].reshape(block - 2 * m, cols, block, -1)
        strip = strip[:, :, m:block - m].astype(np.int16)
        return (np.abs(strip - 128) <= 2).all(axis=(0, 2, 3))

    r = rows - 1
    grey = grey_blocks(r)
    while grey.all():
        r -= 1
        if r < 0:
            return None                          # a grey picture
        grey = grey_blocks(r)
    run = int(np.argmax(~grey[::-1]))            # grey blocks at the end of row r
    if run == 0 or r == rows - 1:                # at a row's start, or less than a row of blocks: not sure
        return None
    return r, cols - run


def _truncated(fmt: str, data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without IEND (OpenCV decodes those half grey)."""
    if fmt == "JPEG":
        return b"\xff\xd9" not in data[-64:]
    if fmt == "PNG":
        return b"IEND" not in data[-32:]
    return False


def encode(img: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """``png`` or ``jpeg``; a 4-channel image is PNG only."""
    ext = ".png" if fmt == "png" else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise RuntimeError(f"encoding {fmt} failed")
    return buf.tobytes()
