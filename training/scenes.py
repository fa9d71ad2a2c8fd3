"""Webcam-like training scenes: empty rooms, labelled people pasted into rooms, people in rooms with a
teacher's soft labels; and the two room checks made from the held-out part of the same photos.

Every room and people-in-room photo is either for training or held out, by a hash of its file name
(``is_held_out``), so the split is the same in every process and on every machine.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.data import load_pair, random_crop, read_file_list, read_image_list
from training.distractors import add_objects_behind
from training.metrics import PHANTOM_SHARE, group_of, person_iou

log = logging.getLogger(__name__)

HOLDOUT_MODULUS = 10          # one photo in ten is held out of training


def is_held_out(name: str) -> bool:
    """Whether a room / people-in-room photo belongs to the held-out checks (stable across machines)."""
    return zlib.crc32(Path(name).name.encode()) % HOLDOUT_MODULUS == 0


def _shrink(img: np.ndarray, long_side: int) -> np.ndarray:
    s = long_side / max(img.shape[:2])
    if s >= 1:
        return img
    return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)


@dataclass
class PhotoSet:
    """Decoded photos of one list (training or held-out part), optionally with soft labels (uint8 0-255)."""

    names: list[str]
    images: list[np.ndarray]
    alphas: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.images)


def load_photo_set(list_path: str | Path, held_out: bool, long_side: int | None = 320,
                   labels: list[np.ndarray] | None = None, limit: int | None = None) -> PhotoSet:
    """The training (``held_out=False``) or held-out part of a one-path-per-line image list (its first
    ``limit`` photos), each photo shrunk to ``long_side`` (None: as it is); ``labels`` (one per list
    entry, e.g. ``teacher_labels.load_labels``) ride along."""
    root = Path(list_path).parent
    names, images, alphas = [], [], []
    for i, rel in enumerate(read_image_list(list_path)):
        if is_held_out(rel) != held_out:
            continue
        if limit is not None and len(images) >= limit:
            break
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {root / rel}")
        if long_side is not None:
            img = _shrink(img, long_side)
        names.append(Path(rel).name)
        images.append(img)
        if labels is not None:
            a = labels[i]
            alphas.append(cv2.resize(a, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
                          if a.shape != img.shape[:2] else a)
    log.info("%s: %d %s photos", list_path, len(images), "held-out" if held_out else "training")
    return PhotoSet(names, images, alphas if labels is not None else None)


def random_view(img: np.ndarray, rng: np.random.Generator, size: tuple[int, int], min_area: float = 0.5,
                alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A random crop of ``min_area`` to all of ``img`` (and ``alpha``) near ``size``'s aspect (smaller where a
    side would not fit), resized to ``size`` (w, h)."""
    h, w = img.shape[:2]
    aspect = size[0] / size[1] * np.exp(rng.uniform(-0.15, 0.15))
    area = rng.uniform(min_area, 1.0) * h * w
    ys, xs = random_crop(h, w, area, aspect, rng)
    interp = cv2.INTER_AREA if xs.stop - xs.start > size[0] else cv2.INTER_LINEAR
    out = cv2.resize(img[ys, xs], size, interpolation=interp)
    if alpha is not None:
        alpha = cv2.resize(alpha[ys, xs], size, interpolation=cv2.INTER_LINEAR)
    return out, alpha


def match_colour(fg: np.ndarray, mask: np.ndarray, bg: np.ndarray, strength: float) -> np.ndarray:
    """Move the person's Lab mean and spread ``strength`` of the way to the room's (lighting match)."""
    if strength <= 0 or not mask.any():
        return fg
    lab_fg = cv2.cvtColor(fg, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab_bg = cv2.cvtColor(bg, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1, 3)
    sel = lab_fg[mask > 0]
    mu_f, sd_f = sel.mean(0), sel.std(0) + 1.0
    mu_b, sd_b = lab_bg.mean(0), lab_bg.std(0) + 1.0
    gain = 1 + strength * (np.clip(sd_b / sd_f, 0.6, 1.6) - 1)
    shift = mu_f + strength * (mu_b - mu_f)
    out = (lab_fg - mu_f) * gain + shift
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def _person_crop(img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """The person's bounding box in a labelled photo, and which photo edges cut them."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = mask.shape
    cuts = {"top": y0 == 0, "bottom": y1 == h, "left": x0 == 0, "right": x1 == w}
    return img[y0:y1, x0:x1], mask[y0:y1, x0:x1], cuts


def paste_person(canvas: np.ndarray, label: np.ndarray, img: np.ndarray, mask: np.ndarray,
                 rng: np.random.Generator, far: bool = False, colour_match: float = 0.5) -> bool:
    """Paste the labelled person of ``img``/``mask`` into ``canvas`` in place, at webcam framing, and
    put their (slightly feathered) alpha into ``label`` over what is there. Returns False if nothing showed.

    Framing: a person cut by their photo's edge is placed so that edge lies on or past the canvas
    edge (head and shoulders cut by the bottom edge); otherwise anywhere from partly out of frame
    left or right to the other side. ``far``: small, a full figure standing in the room.
    """
    if not mask.any():
        return False
    fg, fm, cuts = _person_crop(img, mask)
    H, W = canvas.shape[:2]
    ph0, pw0 = fm.shape
    if far:
        target_h = rng.uniform(0.3, 0.65) * H
    elif cuts["bottom"]:
        target_h = rng.uniform(0.55, 1.15) * H
    else:
        target_h = rng.uniform(0.6, 1.0) * H
    s = target_h / ph0
    if cuts["top"] and cuts["bottom"]:
        s = max(s, H / ph0)
    if cuts["left"] and cuts["right"]:
        s = max(s, W / pw0)
    ph, pw = max(4, round(ph0 * s)), max(4, round(pw0 * s))
    if cuts["bottom"]:
        y = H - ph + int(rng.integers(0, max(1, ph // 5)))      # the cut edge at or below the frame's bottom
    else:
        bottom = int(rng.integers(int(0.6 * H), H + max(1, ph // 10)))   # feet on the floor or cut by the frame
        y = bottom - ph
    if cuts["top"]:
        y = min(y, 0)
    if cuts["left"] and not cuts["right"]:
        x = -int(rng.integers(0, max(1, pw // 4)))
    elif cuts["right"] and not cuts["left"]:
        x = W - pw + int(rng.integers(0, max(1, pw // 4)))
    elif cuts["left"] and cuts["right"]:
        x = -int(rng.integers(0, pw - W + 1))
    else:
        x = int(rng.integers(-pw // 3, max(-pw // 3 + 1, W - 2 * pw // 3)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    fg = cv2.resize(fg, (pw, ph), interpolation=interp)
    alpha = cv2.resize(fm.astype(np.float32), (pw, ph), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.6)
    sy0, sx0 = max(0, -y), max(0, -x)
    sy1, sx1 = min(ph, H - y), min(pw, W - x)
    if sy1 <= sy0 or sx1 <= sx0:
        return False
    dy, dx = y + sy0, x + sx0
    region = canvas[dy:dy + sy1 - sy0, dx:dx + sx1 - sx0]
    a = alpha[sy0:sy1, sx0:sx1]
    if a.max() < 0.5:
        return False
    fg = match_colour(fg[sy0:sy1, sx0:sx1], a > 0.5, region, colour_match)
    a3 = a[..., None]
    region[:] = (fg * a3 + region * (1 - a3) + 0.5).astype(np.uint8)
    lab = label[dy:dy + sy1 - sy0, dx:dx + sx1 - sx0]
    lab[:] = a + lab * (1 - a)
    return True


def pasted_scene(room: np.ndarray, people: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                 size: tuple[int, int], far_p: float = 0.15, colour_match: tuple[float, float] = (0.2, 0.7)
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` (w, h) view of ``room`` with ``people`` (image, 0/1 mask) pasted in, back to front;
    returns the BGR scene and the person alpha (float32 0-1)."""
    canvas, _ = random_view(room, rng, size, min_area=0.4)
    canvas = canvas.copy()
    label = np.zeros(canvas.shape[:2], np.float32)
    for k, (img, mask) in enumerate(people):       # everyone but the last (front) person is mostly far
        far = rng.random() < (0.7 if k < len(people) - 1 else far_p)
        paste_person(canvas, label, img, mask, rng, far=far, colour_match=rng.uniform(*colour_match))
    return canvas, label


# ---------------------------------------------------------------------------------------------- checks


def pasted_check_set(people: list[tuple[str, np.ndarray, np.ndarray]], rooms: PhotoSet, seed: int = 0,
                     size: tuple[int, int] = (320, 240)) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The fixed check set: each labelled person (name, image, mask) pasted into a held-out room at
    webcam framing, 4:3. Deterministic for a given ``seed`` and input."""
    rng = np.random.default_rng(seed)
    out = []
    for name, img, mask in people:
        room = rooms.images[int(rng.integers(len(rooms)))]
        scene, alpha = pasted_scene(room, [(img, mask)], rng, size, far_p=0.0)
        out.append((name, scene, alpha > 0.5))
    return out


@dataclass
class RoomFigures:
    """What a model does on held-out empty rooms and on people pasted into them."""

    room_person_share: float        # mean share of an empty room's pixels called person
    room_phantom_rate: float        # share of empty rooms with more than PHANTOM_SHARE called person
    pasted_person_iou: float        # mean person IoU of people pasted into held-out rooms
    rooms: int
    pasted: int
    pasted_groups: dict             # the same per source of the person (file-name prefix: eg_, ccp_)

    def as_dict(self) -> dict:
        return {"room_share": self.room_person_share, "room_phantom": self.room_phantom_rate,
                "pasted_iou": self.pasted_person_iou, "rooms": self.rooms, "pasted": self.pasted,
                **{f"pasted_iou_{k.rstrip('_')}": v for k, v in self.pasted_groups.items()}}


def room_figures(predict, rooms: PhotoSet, pasted: list[tuple[str, np.ndarray, np.ndarray]],
                 batch: int = 16) -> RoomFigures:
    """Score ``predict`` (a list of BGR frames -> their person probabilities, each at its frame's size)
    on both room checks, ``batch`` frames per call."""
    def probabilities(imgs):
        for s in range(0, len(imgs), batch):
            yield from predict(imgs[s:s + batch])

    shares = np.array([float((p > 0.5).mean()) for p in probabilities(rooms.images)])
    ious, groups = [], {}
    for (name, _, gt), prob in zip(pasted, probabilities([img for _, img, _ in pasted])):
        ious.append(person_iou(prob > 0.5, gt))
        groups.setdefault(group_of(name), []).append(ious[-1])
    return RoomFigures(float(shares.mean()), float((shares > PHANTOM_SHARE).mean()), float(np.mean(ious)),
                       len(shares), len(ious), {k: float(np.mean(v)) for k, v in sorted(groups.items())})


def load_room_checks(rooms_list: str | Path, val_list: str | Path, long_side: int = 320,
                     seed: int = 0) -> tuple[PhotoSet, list]:
    """The held-out rooms and the pasted-people check set built from them and ``val_list``'s people."""
    rooms = load_photo_set(rooms_list, held_out=True, long_side=long_side)
    people = []
    for ip, mp in read_file_list(val_list):
        img, mask = load_pair(ip, mp)
        s = 400 / max(mask.shape)
        if s < 1:
            size = (round(mask.shape[1] * s), round(mask.shape[0] * s))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        people.append((ip.name, img, mask))
    return rooms, pasted_check_set(people, rooms, seed)


# ---------------------------------------------------------------------------------------------- training


def empty_rooms(rooms: PhotoSet, max_person: float) -> PhotoSet:
    """The rooms of ``rooms`` (with teacher labels) where the teachers call at most ``max_person`` of the
    pixels person (probability >= 0.5)."""
    from training.teacher_labels import person_share

    keep = [i for i, share in enumerate(person_share(rooms.alphas)) if share <= max_person]
    log.info("%d of %d training rooms are empty by the teachers' mean (<= %.1f %% person); the rest are left out",
             len(keep), len(rooms), 100 * max_person)
    return PhotoSet([rooms.names[i] for i in keep], [rooms.images[i] for i in keep],
                    [rooms.alphas[i] for i in keep])


@dataclass
class SceneConfig:
    """The room-scene rows of every training batch (the ``scenes`` block of a training config)."""

    rooms_list: str
    people_rooms_list: str = ""
    teacher_labels: str = "~/.cache/bgswap-train/teachers"
    teachers: tuple[str, ...] = ("mediapipe", "meet", "pphumanseg", "rvm")   # their mean is the soft target
    room_max_person: float | None = 0.005   # training rooms where the teachers' mean calls more than this share
                                    # person are left out: some hold a person, the rest are close-ups
                                    # (a toilet, a pie) the teachers mistake; None keeps every room
    pasted: int = 3                 # rows per batch: portrait people pasted into training rooms
    room: int = 1                   # rows per batch: a training room with nobody in it (all background)
    teacher: int = 2                # rows per batch: a people-in-room photo with the teacher's alpha as target
    two_people_p: float = 0.15      # a pasted scene holds a second (mostly far) person
    far_p: float = 0.15             # the (front) pasted person is small and far
    long_side: int = 320            # photos are kept decoded at this size
    objects_p: float = 0.0          # a portrait or pasted row gets objects put behind the person, beside
                                    # their outline, an empty room row gets them anywhere
                                    # (training.distractors); the target stays as it was


class SceneMix:
    """Makes the room-scene rows of each batch from training rooms, the portrait set's people and the
    teacher-labelled people-in-room photos (``kinds`` says which rows, ``sample`` makes one)."""

    def __init__(self, cfg: SceneConfig, people, rng: np.random.Generator):
        from training.teacher_labels import load_labels

        self.cfg = cfg
        self.people = people                       # a training.data.PortraitSet
        self.rng = rng
        rooms = Path(cfg.rooms_list).expanduser()
        self.rooms = load_photo_set(rooms, held_out=False, long_side=cfg.long_side,
                                    labels=load_labels(rooms, cfg.teacher_labels, cfg.teachers)
                                    if cfg.room_max_person is not None else None)
        if cfg.room_max_person is not None:
            self.rooms = empty_rooms(self.rooms, cfg.room_max_person)
        self.people_rooms = None
        if cfg.teacher:
            if not cfg.people_rooms_list:
                raise ValueError("scenes.teacher > 0 needs scenes.people_rooms_list")
            lst = Path(cfg.people_rooms_list).expanduser()
            self.people_rooms = load_photo_set(lst, held_out=False, long_side=cfg.long_side,
                                               labels=load_labels(lst, cfg.teacher_labels, cfg.teachers))

    @property
    def per_batch(self) -> int:
        return self.cfg.pasted + self.cfg.room + self.cfg.teacher

    def kinds(self) -> list[str]:
        return ["pasted"] * self.cfg.pasted + ["room"] * self.cfg.room + ["teacher"] * self.cfg.teacher

    def _person(self) -> tuple[np.ndarray, np.ndarray]:
        i = int(self.rng.integers(len(self.people)))
        return self.people.images[i], self.people.masks[i]

    def add_objects(self, img: np.ndarray, target: np.ndarray) -> np.ndarray:
        """With probability ``objects_p``, ``img`` with one or two objects (banners, pieces of training
        rooms) behind the person of ``target`` and touching their outline (anywhere if nobody is
        there); else ``img``."""
        if self.cfg.objects_p <= 0 or self.rng.random() >= self.cfg.objects_p:
            return img
        return add_objects_behind(img, target, self.rng, self.rooms.images, count=1 + (self.rng.random() < 0.3))

    def sample(self, kind: str, shape: tuple[int, int], augmenter) -> tuple[np.ndarray, np.ndarray]:
        """One ``shape`` (h, w) scene of ``kind`` and its person target (float32 0-1), with ``augmenter``'s
        mirror and camera-like changes (a ``training.data.Augmenter``)."""
        r = self.rng
        size = (shape[1], shape[0])
        if kind == "pasted":
            room = self.rooms.images[int(r.integers(len(self.rooms)))]
            people = [self._person() for _ in range(1 + (r.random() < self.cfg.two_people_p))]
            img, target = pasted_scene(room, people, r, size, far_p=self.cfg.far_p)
            img = self.add_objects(img, target)
        elif kind == "room":
            img, _ = random_view(self.rooms.images[int(r.integers(len(self.rooms)))], r, size, 0.3)
            target = np.zeros(shape, np.float32)
            img = self.add_objects(img, target)
        elif kind == "teacher":
            i = int(r.integers(len(self.people_rooms)))
            img, a = random_view(self.people_rooms.images[i], r, size, 0.5, self.people_rooms.alphas[i])
            target = a.astype(np.float32) / 255.0
        else:
            raise ValueError(f"unknown scene kind {kind!r}")
        return augmenter.flip_and_photometric(img, target)
