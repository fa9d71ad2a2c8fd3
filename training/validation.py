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


def selection_score(figures: dict) -> float:
    """What ``best.pdparams`` maximises: val mIoU, plus (with room checks) the pasted-people IoU
    minus the share of empty rooms called person."""
    if "pasted_iou" not in figures:
        return figures["miou"]
    return figures["miou"] + figures["pasted_iou"] - figures["room_share"]
