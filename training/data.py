"""Portrait data: file lists, a pre-decoded cache, webcam-like augmentation, batching.

The shared data set is read from PaddleSeg's "image label" list files. Every
image is decoded once, shrunk so its longer side is ``cache_long_side`` and kept
in memory (and in an ``.npz`` cache on disk), so the two compute threads never
wait on JPEG decoding. Augmentation is plain OpenCV/numpy (it releases the GIL)
and runs in a background thread that keeps a few batches ready.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bgswap.inference.model_meta import DEFAULT_SHORT_SIDE_FLOOR, INPUT_SIZE_STEP, ModelMeta, input_shape_for

log = logging.getLogger(__name__)


def read_file_list(list_path: str | Path) -> list[tuple[Path, Path]]:
    """Parse a PaddleSeg list file (``image label`` per line, paths relative to its folder)."""
    list_path = Path(list_path)
    root = list_path.parent
    pairs = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{list_path}:{n}: expected 'image label', got {line!r}")
        pairs.append((root / parts[0], root / parts[1]))
    return pairs


def read_image_list(list_path: str | Path) -> list[str]:
    """The image paths (relative to the list's folder) of a one-path-per-line list."""
    return [line.split()[0] for line in Path(list_path).read_text().splitlines() if line.strip()]


def load_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one BGR image and its 0/1 mask; raise naming the file when unreadable."""
    img = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {image_path}")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {mask_path}")
    if mask.shape != img.shape[:2]:
        raise ValueError(f"mask {mask_path} is {mask.shape}, image is {img.shape[:2]}")
    return img, (mask > 0).astype(np.uint8)


def _shrink(img: np.ndarray, mask: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    s = long_side / max(h, w)
    if s >= 1:
        return img, mask
    size = (round(w * s), round(h * s))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    mask = (cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8)
    return img, mask


def fill_person(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Background plate: the image with the person painted over from its surroundings."""
    small_w = 96
    s = small_w / img.shape[1]
    size = (small_w, max(1, round(img.shape[0] * s)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    small_mask = cv2.dilate(small_mask, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, small_mask * 255, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    m3 = cv2.GaussianBlur(cv2.dilate(mask, np.ones((7, 7), np.uint8)).astype(np.float32), (0, 0), 3)[..., None]
    return (img * (1 - m3) + filled * m3).astype(np.uint8)


@dataclass
class PortraitSet:
    """Decoded, shrunk images with their masks and person-free background plates."""

    names: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    plates: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def load_portrait_set(list_path: str | Path, cache_dir: str | Path | None, long_side: int = 400,
                      with_plates: bool = True) -> PortraitSet:
    """Load (or build and cache) the decoded set for ``list_path``."""
    pairs = read_file_list(list_path)
    cache = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = cache_dir / f"{Path(list_path).stem}_{long_side}_{len(pairs)}.npz"
        if cache.exists():
            z = np.load(cache, allow_pickle=True)
            log.info("loaded %d samples from cache %s", len(z["names"]), cache)
            plates = list(z["plates"]) if with_plates and "plates" in z else []
            return PortraitSet(list(z["names"]), list(z["images"]), list(z["masks"]), plates)
    names, images, masks, plates = [], [], [], []
    for i, (ip, mp) in enumerate(pairs):
        img, mask = _shrink(*load_pair(ip, mp), long_side)
        names.append(ip.stem)
        images.append(img)
        masks.append(mask)
        if with_plates:
            plates.append(fill_person(img, mask))
        if (i + 1) % 500 == 0:
            log.info("decoded %d/%d", i + 1, len(pairs))
    if cache is not None:
        obj = np.empty(len(images), dtype=object)
        arrays = {}
        for key, seq in (("images", images), ("masks", masks), ("plates", plates)):
            if seq:
                a = obj.copy()
                a[:] = seq
                arrays[key] = a
        np.savez(cache, names=np.array(names), **arrays)
    return PortraitSet(names, images, masks, plates)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the webcam-like augmentations."""

    recompose_p: float = 0.35      # paste the person onto another photo's background plate
    min_crop_area: float = 0.35
    rotate_p: float = 0.4
    max_rotate_deg: float = 12.0
    color_p: float = 0.8
    blur_p: float = 0.2
    noise_p: float = 0.3
    jpeg_p: float = 0.3
    hard_boost: float = 0.0        # sampling: the image with the highest recent loss is drawn 1 + this times
                                   # as often as the one with the lowest (0 = uniform)


class HardExampleSampler:
    """Draws training images more often the higher their recent training loss.

    Each image's loss is an exponential average of the losses it had in the batches
    it was in (``record``). ``draw`` weights an image by the rank of that loss, from
    1 (easiest) to ``1 + boost`` (hardest): ranks, not values, so a few images with
    wrong labels and huge losses cannot take over the batches. Images not seen yet
    get the middle weight.
    """

    def __init__(self, n: int, smoothing: float = 0.5):
        self.loss = np.full(n, np.nan)
        self.smoothing = smoothing

    def record(self, indices: np.ndarray, losses: np.ndarray) -> None:
        for i, v in zip(np.asarray(indices), np.asarray(losses, np.float64)):
            old = self.loss[i]
            self.loss[i] = v if np.isnan(old) else self.smoothing * old + (1 - self.smoothing) * v

    def weights(self, boost: float) -> np.ndarray:
        loss = self.loss.copy()          # the training thread may update it meanwhile
        seen = ~np.isnan(loss)
        rank = np.full(len(loss), 0.5)
        if seen.sum() > 1:
            order = np.argsort(np.argsort(loss[seen]))
            rank[seen] = order / (seen.sum() - 1)
        return 1.0 + boost * rank

    def draw(self, rng: np.random.Generator, k: int, boost: float) -> np.ndarray:
        if boost <= 0:
            return rng.integers(len(self.loss), size=k)
        w = self.weights(boost)
        return rng.choice(len(w), size=k, p=w / w.sum())


class Augmenter:
    """Turns a sample of a ``PortraitSet`` into a square, augmented training pair."""

    def __init__(self, data: PortraitSet, cfg: AugmentConfig, rng: np.random.Generator):
        self.data = data
        self.cfg = cfg
        self.rng = rng
        self.add_objects = None     # (img, mask) -> img: objects beside the person (``SceneMix.add_objects``)

    def sample(self, idx: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Photo ``idx`` cropped near ``shape``'s aspect and resized to ``shape`` (h, w), with its mask."""
        r, c = self.rng, self.cfg
        img, mask = self.data.images[idx], self.data.masks[idx]
        if self.data.plates and r.random() < c.recompose_p:
            img, mask = self._recompose(img, mask)
        img, mask = self._crop(img, mask, shape[1] / shape[0])
        if r.random() < c.rotate_p:
            img, mask = self._rotate(img, mask)
        size = (shape[1], shape[0])
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if img.shape[0] > shape[0] else cv2.INTER_LINEAR)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        if self.add_objects is not None:
            img = self.add_objects(img, mask)
        return self.flip_and_photometric(img, mask)

    def flip_and_photometric(self, img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A random mirror of both, then the camera-like colour, blur, noise and JPEG changes of the image."""
        r, c = self.rng, self.cfg
        if r.random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        if r.random() < c.color_p:
            img = self._color(img)
        if r.random() < c.blur_p:
            img = cv2.GaussianBlur(img, (0, 0), r.uniform(0.4, 1.3))
        if r.random() < c.noise_p:
            img = np.clip(img + r.normal(0, r.uniform(2, 8), img.shape), 0, 255).astype(np.uint8)
        if r.random() < c.jpeg_p:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(30, 90))])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.ascontiguousarray(img), np.ascontiguousarray(mask)

    def _recompose(self, img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Webcam framing: the person bottom-aligned in a (often landscape) frame of another room."""
        r = self.rng
        plate = self.data.plates[int(r.integers(len(self.data.plates)))]
        h = img.shape[0]
        # A person cut by the photo's edge must stay on the canvas edge, or the cut shows.
        top, left, right = mask[0].any(), mask[:, 0].any(), mask[:, -1].any()
        scale = 1.0 if top else r.uniform(0.7, 1.0)
        fh, fw = max(8, round(h * scale)), max(8, round(img.shape[1] * scale))
        w = fw if (left and right) else int(h * r.uniform(0.75, 1.78))
        ph, pw = plate.shape[:2]
        s = max(w / pw, h / ph)
        bg = cv2.resize(plate, (max(w, round(pw * s)), max(h, round(ph * s))), interpolation=cv2.INTER_LINEAR)
        y0 = int(r.integers(bg.shape[0] - h + 1))
        x0 = int(r.integers(bg.shape[1] - w + 1))
        bg = bg[y0:y0 + h, x0:x0 + w].copy()
        fg = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
        fm = cv2.resize(mask, (fw, fh), interpolation=cv2.INTER_NEAREST)
        if left:
            x = 0
        elif right:
            x = w - fw
        else:
            x = int(r.integers(-fw // 4, max(1, w - 3 * fw // 4)))
        y = h - fh
        out_mask = np.zeros((h, w), np.uint8)
        sx0, sx1 = max(0, -x), min(fw, w - x)
        dx0, dx1 = x + sx0, x + sx1
        if sx1 <= sx0:
            return img, mask
        out_mask[y:, dx0:dx1] = fm[:, sx0:sx1]
        alpha = cv2.GaussianBlur(fm[:, sx0:sx1].astype(np.float32), (3, 3), 0.7)[..., None]
        region = bg[y:, dx0:dx1].astype(np.float32)
        bg[y:, dx0:dx1] = (fg[:, sx0:sx1] * alpha + region * (1 - alpha)).astype(np.uint8)
        return bg, out_mask

    def _crop(self, img: np.ndarray, mask: np.ndarray, aspect_wh: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """A random crop of ``min_crop_area`` to all of the photo (less where a side would not fit), its
        width / height within 3:4 to 4:3 of ``aspect_wh``."""
        r = self.rng
        h, w = mask.shape
        area = r.uniform(self.cfg.min_crop_area, 1.0) * h * w
        aspect = aspect_wh * np.exp(r.uniform(np.log(3 / 4), np.log(4 / 3)))
        ys, xs = random_crop(h, w, area, aspect, r)
        return img[ys, xs], mask[ys, xs]

    def _rotate(self, img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), self.rng.uniform(-1, 1) * self.cfg.max_rotate_deg, 1.0)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        return img, mask

    def _color(self, img: np.ndarray) -> np.ndarray:
        r = self.rng
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + r.uniform(-8, 8)) % 180
        hsv[..., 1] *= r.uniform(0.6, 1.4)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
        mean = out.mean()
        out = (out - mean) * r.uniform(0.7, 1.3) + mean + r.uniform(-40, 40)
        out = np.clip(out, 0, 255)
        if r.random() < 0.3:
            out = 255.0 * (out / 255.0) ** r.uniform(0.7, 1.4)
            # per-channel gain: white balance of cheap webcams
        out *= r.uniform(0.9, 1.1, size=3)
        return np.clip(out, 0, 255).astype(np.uint8)


def random_crop(h: int, w: int, area: float, aspect_wh: float, rng: np.random.Generator,
                min_side: int = 8) -> tuple[slice, slice]:
    """Rows and columns of a crop at a random place in an ``h`` x ``w`` image: ``area`` pixels at width /
    height ``aspect_wh``, made smaller (same aspect) where a side would not fit, so that resizing it to
    a shape of that aspect never stretches the picture."""
    ch, cw = np.sqrt(area / aspect_wh), np.sqrt(area * aspect_wh)
    fit = min(1.0, h / ch, w / cw)
    ch, cw = max(min_side, min(h, round(ch * fit))), max(min_side, min(w, round(cw * fit)))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return slice(y, y + ch), slice(x, x + cw)


def boundary_band(mask: np.ndarray, width: int = 3) -> np.ndarray:
    """1 on pixels within ``width`` of the person outline, else 0."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return (cv2.dilate(mask, k) - cv2.erode(mask, k)).astype(np.uint8)


_NORM = ModelMeta()       # the normalisation every export writes to meta.json and the runtime reads back
_SCALE = (1.0 / (255.0 * np.asarray(_NORM.std, np.float32))).reshape(1, 1, 1, 3)
_SHIFT = (np.asarray(_NORM.mean, np.float32) / np.asarray(_NORM.std, np.float32)).reshape(1, 1, 1, 3)


def to_chw_rgb(batch_bgr: np.ndarray) -> np.ndarray:
    """uint8 NHWC BGR -> float32 NCHW in the network's channel order, normalised as ``ModelMeta`` says."""
    x = batch_bgr[..., ::-1] if _NORM.color_order == "RGB" else batch_bgr
    x = x.astype(np.float32) * _SCALE - _SHIFT
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class BatchLoader:
    """Background thread producing batches: images NCHW float32, person targets NHW float32 in [0, 1]
    (soft where a teacher labelled), edge band NHW float32 and the indices of the portrait photos drawn
    (the batch's first rows, for ``sampler.record``). With ``scenes`` (a ``training.scenes.SceneMix``),
    each batch's last ``scenes.per_batch`` rows are room scenes."""

    def __init__(self, data: PortraitSet, aug: AugmentConfig, batch_size: int, seed: int, prefetch: int = 4,
                 scenes=None):
        self.data = data
        self.batch_size = batch_size
        self.size = 192
        self.rng = np.random.default_rng(seed)
        self.aug = Augmenter(data, aug, self.rng)
        self.scenes = scenes
        if scenes is not None:
            self.aug.add_objects = scenes.add_objects
        if scenes is not None and scenes.per_batch >= batch_size:
            raise ValueError(f"scenes take {scenes.per_batch} rows of a batch of {batch_size}: "
                             "leave at least one for the portrait photos")
        self.aspects = [1.0]      # frame height / width; each batch draws one (``set_aspects``)
        self.sizes: list[int] = []   # long sides to draw from per batch (``set_sizes``); empty: ``size``
        self.shape_rule = (DEFAULT_SHORT_SIDE_FLOOR, INPUT_SIZE_STEP)   # input_shape_for's floor and step
        self.sampler = HardExampleSampler(len(data))
        self._q: queue.Queue = queue.Queue(maxsize=prefetch)
        self._generation = 0       # bumped on every settings change; batches made before it are dropped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-loader", daemon=True)
        self._started = False

    def set_size(self, size: int) -> None:
        """Change the training size (the input's longer side); batches made at the old size are dropped."""
        if size != self.size:
            self.size = size
            self._settings_changed()

    def set_aspects(self, aspects: list[float], short_floor: float = DEFAULT_SHORT_SIDE_FLOOR,
                    step: int = INPUT_SIZE_STEP) -> None:
        """Frame shapes (height / width) to train for: each batch is shaped as the runtime feeds a frame of
        one of them (``input_shape_for`` with ``short_floor`` and ``step``, as the model's meta.json will
        say); [1.0] trains square."""
        self.aspects = [float(a) for a in aspects]
        self.shape_rule = (float(short_floor), int(step))
        self._settings_changed()

    def set_sizes(self, sizes: list[int]) -> None:
        """Input long sides to train for, one drawn per batch (the runtime's input-size setting); [] uses
        the stage's size."""
        self.sizes = [int(s) for s in sizes]
        self._settings_changed()

    def set_augment(self, aug: AugmentConfig) -> None:
        """Change the augmentation settings; batches made with the old ones are dropped."""
        self.aug.cfg = aug
        self._settings_changed()

    def _settings_changed(self) -> None:
        self._generation += 1
        while not self._q.empty():
            self._q.get_nowait()

    def _make(self, size: int):
        kinds = self.scenes.kinds() if self.scenes is not None else []
        idx = self.sampler.draw(self.rng, self.batch_size - len(kinds), self.aug.cfg.hard_boost)
        aspect = self.aspects[int(self.rng.integers(len(self.aspects)))]
        if self.sizes:
            size = self.sizes[int(self.rng.integers(len(self.sizes)))]
        shape = input_shape_for((round(1000 * aspect), 1000), size, *self.shape_rule)
        imgs = np.empty((self.batch_size, *shape, 3), np.uint8)
        targets = np.empty((self.batch_size, *shape), np.float32)
        for j, i in enumerate(idx):
            imgs[j], targets[j] = self.aug.sample(int(i), shape)
        for j, kind in enumerate(kinds, len(idx)):
            imgs[j], targets[j] = self.scenes.sample(kind, shape, self.aug)
        edges = np.stack([boundary_band((t > 0.5).astype(np.uint8), max(1, size // 96)) for t in targets])
        return to_chw_rgb(imgs), targets, edges.astype(np.float32), idx

    def _run(self) -> None:
        while not self._stop.is_set():
            generation = self._generation   # read before the settings it tags (they are set first)
            try:
                batch = self._make(self.size)
            except Exception as exc:  # hand the failure to the training loop instead of hanging it
                log.exception("batch loader failed")
                batch = exc
            while not self._stop.is_set():
                try:
                    self._q.put((generation, batch), timeout=0.2)
                    break
                except queue.Full:
                    continue

    def next(self):
        if not self._started:
            self._thread.start()
            self._started = True
        while True:
            generation, item = self._q.get()
            if isinstance(item, Exception):
                raise RuntimeError("batch loader thread failed") from item
            if generation == self._generation:
                return item

    def close(self) -> None:
        self._stop.set()
