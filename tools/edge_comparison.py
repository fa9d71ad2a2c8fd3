"""Make docs/edges-before-after.png: the demo photo composited plainly and with edge colour
decontamination plus light wrap, on solid blue and on a bright bundled picture, side by side,
with a 2x close-up of the hair and shoulder edge under each.

    python tools/edge_comparison.py [--light-wrap 0.3] [--model-dir DIR] [--scale 0.75]
                                   [--out docs/edges-before-after.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgswap.app.sources import DEMO_PHOTO  # noqa: E402
from bgswap.inference import MaskRefiner, Segmenter  # noqa: E402
from bgswap.inference.backgrounds import ColorBackground, ImageBackground  # noqa: E402
from bgswap.inference.compose import Compositor  # noqa: E402
from bgswap.inference.refine import RefineSettings  # noqa: E402
from bgswap.inference.resources import backgrounds_dir  # noqa: E402

CLOSE_UP = (slice(20, 220), slice(120, 320))       # rows, columns of the 512 x 512 photo: hair and shoulder


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--light-wrap", type=float, default=0.3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "edges-before-after.png"))
    ap.add_argument("--model-dir", default=None, help="default: the shipped CPU model")
    ap.add_argument("--scale", type=float, default=0.75, help="the sheet's size (1 = the photo's pixels)")
    args = ap.parse_args()
    photo = cv2.imread(str(DEMO_PHOTO))
    matte = MaskRefiner(RefineSettings(temporal=0.0)).matte(Segmenter(args.model_dir).predict_lowres(photo), photo)
    plain = Compositor(RefineSettings())
    better = Compositor(RefineSettings(decontaminate=True, light_wrap=args.light_wrap))
    rows = []
    for name, bg in (("blue", ColorBackground((200, 80, 20))),
                     ("bright picture", ImageBackground(backgrounds_dir() / "sunrise.jpg"))):
        pair = []
        for title, comp in ((f"before: plain blend, {name}", plain),
                            (f"after: decontaminated + light wrap {args.light_wrap:g}", better)):
            out = comp(photo, matte, bg)
            close = cv2.resize(out[CLOSE_UP], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            pair.append(label(np.vstack([out, cv2.resize(close, (512, 512))]), title))
        rows.append(np.hstack(pair))
    sheet = np.vstack(rows)
    if args.scale != 1:
        sheet = cv2.resize(sheet, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(args.out, sheet, [cv2.IMWRITE_JPEG_QUALITY, 88] if args.out.lower().endswith(".jpg") else [])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
