"""Segmentation scores: person IoU, 2-class mIoU and boundary F per image, summed over a set and per source.

The bottom layer of ``training``: it imports nothing else of the project, and every check
(``evaluate``, ``validation``, ``scenes``, ``teacher_labels``, the export's int8 check) scores with it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np

PHANTOM_SHARE = 0.005         # an empty room "has a phantom" when more than this share of it is called person


def person_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean person masks (1.0 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tol: int = 3) -> float:
    """F-score of the predicted outline against the true one, within ``tol`` pixels."""
    bp, bg = boundary(pred), boundary(gt)
    if not bp.any() and not bg.any():
        return 1.0
    if not bp.any() or not bg.any():
        return 0.0
    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    near_g = cv2.dilate(bg.astype(np.uint8), k).astype(bool)
    near_p = cv2.dilate(bp.astype(np.uint8), k).astype(bool)
    precision = (bp & near_g).sum() / bp.sum()
    recall = (bg & near_p).sum() / bg.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def group_of(name: str) -> str:
    """The source prefix of a sample name: ``eg_00012.jpg`` -> ``eg_``."""
    return name.split("_")[0] + "_"


@dataclass(frozen=True)
class ImageScore:
    """One image's pixel counts per class (background, person) and its boundary F-score."""

    inter: np.ndarray
    union: np.ndarray
    boundary_f: float

    @property
    def person_iou(self) -> float:
        return float(self.inter[1] / self.union[1]) if self.union[1] else 1.0


def measure(pred: np.ndarray, gt: np.ndarray) -> ImageScore:
    """Score one boolean person mask against its ground truth."""
    pairs = ((~pred, ~gt), (pred, gt))
    return ImageScore(np.array([np.logical_and(p, g).sum() for p, g in pairs], np.float64),
                      np.array([np.logical_or(p, g).sum() for p, g in pairs], np.float64),
                      boundary_f(pred, gt))


@dataclass
class Scores:
    ious: list = field(default_factory=list)
    bfs: list = field(default_factory=list)
    inter: np.ndarray = field(default_factory=lambda: np.zeros(2))
    union: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def add(self, score: ImageScore) -> None:
        self.inter += score.inter
        self.union += score.union
        self.ious.append(score.person_iou)
        self.bfs.append(score.boundary_f)

    def summary(self) -> dict:
        return {"images": len(self.ious), "person_iou": float(np.mean(self.ious)),
                "miou": float((self.inter / np.maximum(self.union, 1)).mean()),
                "boundary_f": float(np.mean(self.bfs))}


@dataclass
class GroupedScores:
    """Scores over a whole set and per file-name prefix; each image is measured once."""

    overall: Scores = field(default_factory=Scores)
    groups: dict = field(default_factory=lambda: defaultdict(Scores))

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        score = measure(pred, gt)
        self.overall.add(score)
        self.groups[group_of(name)].add(score)
