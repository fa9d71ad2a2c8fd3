"""The checks run during training: val photos (person IoU, mIoU, eg_/ccp_) and, optionally, the room checks."""
from __future__ import annotations

import cv2
import numpy as np


def score_probabilities(scores, probs: np.ndarray, val, start: int) -> None:
    """Add person probabilities (any size) for ``val``'s samples ``start``, ``start + 1`` ... to
    ``scores``, each upsampled to its mask's size and thresholded at 0.5."""
    for p, gt, name in zip(probs, val.masks[start:start + len(probs)], val.names[start:start + len(probs)]):
        pred = cv2.resize(p, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5
        scores.add(name, pred, gt.astype(bool))


def check_figures(scores) -> dict:
    """A validation check's figures: the overall summary plus person IoU on eg_ and ccp_ (None if absent)."""
    out = scores.overall.summary()
    out.update({f"iou_{k[:-1]}": (scores.groups[k].summary()["person_iou"] if k in scores.groups else None)
                for k in ("eg_", "ccp_")})
    return out


def validate(model, val, size: int, batch: int = 16, room_checks=None, frame_aspect: bool = False,
             shape_rule: tuple[float, int] | None = None) -> dict:
    """Person IoU (mean over images, overall and for eg_/ccp_) and 2-class mIoU, as ``training.evaluate``,
    and the demo photo's flag and shuttle figures (``demo_figures``); with ``room_checks``
    (``training.scenes.load_room_checks``), the held-out room figures too. Each photo is fed at ``size``
    square, or with ``frame_aspect`` shaped like itself (``ModelMeta.input_shape``, with ``shape_rule``'s
    short-side floor and step), as the runtime does."""
    import paddle

    from bgswap.inference.model_meta import ModelMeta, run_by_shape
    from training.data import to_chw_rgb
    from training.metrics import GroupedScores
    from training.model import PersonProbability

    model.eval()
    net = PersonProbability(model)
    scores = GroupedScores()

    meta = ModelMeta(input_size=(size, size), frame_aspect=frame_aspect)     # fed as the runtime feeds it
    if shape_rule is not None:
        meta.short_side_floor, meta.short_side_step = shape_rule

    def run(imgs, shape) -> np.ndarray:
        x = to_chw_rgb(np.stack([cv2.resize(i, shape[::-1], interpolation=cv2.INTER_AREA) for i in imgs]))
        return net(paddle.to_tensor(x))[:, 0].numpy()

    def probabilities(imgs) -> list[np.ndarray] | np.ndarray:
        return run_by_shape(imgs, lambda i: meta.input_shape(i.shape[:2]), run)

    with paddle.no_grad():
        for s in range(0, len(val), batch):
            score_probabilities(scores, probabilities(val.images[s:s + batch]), val, s)
        figures = check_figures(scores)
        if room_checks is not None:
            from training.scenes import room_figures

            def predict(imgs):
                return [cv2.resize(p, (i.shape[1], i.shape[0])) for p, i in zip(probabilities(imgs), imgs)]

            figures.update(room_figures(predict, *room_checks).as_dict())
        figures.update(demo_figures(probabilities))
    model.train()
    return figures


DEMO_REGIONS = {"demo_flag": (slice(0, 200), slice(0, 60)),          # the flag left of her shoulder
                "demo_shuttle": (slice(0, 280), slice(360, 470))}    # the model shuttle on the right


def demo_figures(probabilities) -> dict:
    """Mean person probability over the demo photo's flag and model-shuttle regions (both background),
    the photo fed as the runtime feeds it; empty if the photo is missing or not the 512x512 one."""
    from bgswap.inference.resources import assets_dir

    img = cv2.imread(str(assets_dir() / "demo" / "astronaut.jpg"), cv2.IMREAD_COLOR)
    if img is None or img.shape[:2] != (512, 512):      # the regions are pixels of the 512x512 photo
        return {}
    p = cv2.resize(probabilities([img])[0], (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return {name: float(p[region].mean()) for name, region in DEMO_REGIONS.items()}


# What training's checks are read beside (val photos, held-out rooms, the demo photo), measured with
#   python -m training.evaluate --list ../shared/data/portrait/val.txt --rooms ../shared/data/rooms/list.txt
#       [--model-dir models/portrait_bisenetv2 | --peer mediapipe | --peer meet]
REFERENCE = {
    "v4.2 BiSeNetV2": {"miou": 0.9439, "iou_eg": 0.947, "iou_ccp": 0.920, "room_share": 0.017, "room_phantom": 0.19,
                       "pasted_iou": 0.810, "demo_flag": 0.55},
    "MediaPipe selfie": {"miou": 0.9566, "iou_eg": 0.965, "iou_ccp": 0.924, "room_share": 0.012, "room_phantom": 0.20,
                         "pasted_iou": 0.818, "demo_flag": 0.00},
    "Meet": {"miou": 0.9548, "iou_eg": 0.961, "iou_ccp": 0.921, "room_share": 0.022, "room_phantom": 0.19,
             "pasted_iou": 0.781, "demo_flag": 0.00},
}


def beside_reference(figures: dict) -> str:
    """One line: this check's figures, then each REFERENCE model's, for the keys they share."""
    keys = [k for k in ("miou", "iou_eg", "iou_ccp", "room_share", "room_phantom", "pasted_iou", "demo_flag")
            if figures.get(k) is not None]
    rows = [("this", figures), *REFERENCE.items()]
    return " | ".join(f"{name}: " + " ".join(f"{k} {row[k]:.3f}" for k in keys if k in row) for name, row in rows)


def selection_score(figures: dict) -> float:
    """What ``best.pdparams`` maximises: val mIoU, plus (with room checks) the pasted-people IoU
    minus the share of empty rooms called person."""
    if "pasted_iou" not in figures:
        return figures["miou"]
    return figures["miou"] + figures["pasted_iou"] - figures["room_share"]
