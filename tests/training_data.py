"""A tiny generated portrait data set for the training tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CONFIGS = Path(__file__).resolve().parent.parent / "training" / "configs"


def make_dataset(root: Path, n: int = 6) -> Path:
    """Blob 'people' on textured backgrounds, in PaddleSeg's list format."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = []
    for i in range(n):
        img = rng.integers(0, 120, (120, 90, 3), dtype=np.uint8)
        mask = np.zeros((120, 90), np.uint8)
        cv2.ellipse(mask, (45 + i, 50), (18, 24), 0, 0, 360, 1, -1)
        cv2.rectangle(mask, (20, 80), (70, 119), 1, -1)
        img[mask > 0] = (200, 170, 150)
        cv2.imwrite(str(root / "images" / f"eg_{i}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"eg_{i}.png"), mask)
        lines.append(f"images/eg_{i}.jpg masks/eg_{i}.png")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:3]) + "\n")
    return root
