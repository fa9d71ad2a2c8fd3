"""Render the bundled, generated backgrounds and copy the public-domain/CC0 photos.

    python tools/make_backgrounds.py      # writes assets/backgrounds/*.jpg (deterministic)
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "assets" / "backgrounds"
W, H = 1280, 720


def gradient(c0, c1, vertical=True) -> np.ndarray:
    t = np.linspace(0, 1, H if vertical else W, dtype=np.float32)
    g = (np.array(c0, np.float32)[None] * (1 - t[:, None]) + np.array(c1, np.float32)[None] * t[:, None])
    return np.repeat(g[:, None], W, 1) if vertical else np.repeat(g[None], H, 0)


def evening_bokeh(rng) -> np.ndarray:
    img = gradient((60, 20, 25), (120, 50, 70))
    layer = np.zeros_like(img)
    for _ in range(70):
        x, y, r = rng.integers(0, W), rng.integers(0, H), int(rng.integers(20, 90))
        col = np.array([rng.uniform(60, 140), rng.uniform(120, 220), rng.uniform(200, 255)], np.float32)
        cv2.circle(layer, (int(x), int(y)), r, col.tolist(), -1, cv2.LINE_AA)
        img = cv2.addWeighted(img, 1.0, layer, 0.12, 0)
        layer[:] = 0
    return cv2.GaussianBlur(img, (0, 0), 6)


def sunrise(rng) -> np.ndarray:
    img = gradient((170, 120, 60), (120, 190, 255))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    glow = np.exp(-(((xx - W * 0.7) / 420) ** 2 + ((yy - H * 0.85) / 260) ** 2))[..., None]
    return img * (1 - 0.6 * glow) + np.array([200, 240, 255], np.float32) * 0.6 * glow


def studio_grey(rng) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = np.sqrt(((xx - W / 2) / (W * 0.6)) ** 2 + ((yy - H * 0.45) / (H * 0.7)) ** 2)
    v = 150 - 90 * np.clip(d, 0, 1.3) ** 1.6
    img = np.dstack([v * 1.02, v, v * 0.96])
    return img + rng.normal(0, 1.5, img.shape)


def ocean_waves(rng) -> np.ndarray:
    img = gradient((140, 90, 30), (90, 40, 10))
    xs = np.arange(W, dtype=np.float32)
    for i in range(7):
        base = H * (0.35 + i * 0.09)
        amp, freq, ph = 18 + 6 * i, 2 * math.pi / (500 - 40 * i), rng.uniform(0, 6.3)
        ys = (base + amp * np.sin(xs * freq + ph)).astype(np.int32)
        pts = np.concatenate([np.stack([xs.astype(np.int32), ys], 1), [[W - 1, H - 1], [0, H - 1]]])
        col = (200 - 18 * i, 140 - 14 * i, 60 - 7 * i)
        cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 2)


def aurora(rng) -> np.ndarray:
    img = gradient((40, 15, 10), (70, 35, 20))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for k, col in enumerate([(120, 255, 80), (255, 120, 180), (160, 255, 120)]):
        centre = H * (0.3 + 0.12 * k) + 60 * np.sin(xx / (180 + 40 * k) + k)
        band = np.exp(-((yy - centre) / (40 + 15 * k)) ** 2)[..., None]
        img = img + band * np.array(col, np.float32) * 0.55
    stars = rng.random((H, W)) > 0.9985
    img[stars] = 255
    return cv2.GaussianBlur(img, (0, 0), 1.2)


def low_poly(rng) -> np.ndarray:
    img = np.zeros((H, W, 3), np.float32)
    pts = [(x, y) for x in np.linspace(-80, W + 80, 11) for y in np.linspace(-80, H + 80, 7)]
    pts = np.array(pts, np.float32) + rng.uniform(-50, 50, (len(pts), 2))
    subdiv = cv2.Subdiv2D((-200, -200, W + 400, H + 400))
    for p in pts:
        subdiv.insert((float(p[0]), float(p[1])))
    for t in subdiv.getTriangleList():
        tri = t.reshape(3, 2)
        cx, cy = tri.mean(0)
        base = np.array([230, 200, 170], np.float32) * (0.75 + 0.25 * cx / W) + (cy / H) * np.array([-40, 10, 50])
        col = np.clip(base + rng.normal(0, 8, 3), 0, 255)
        cv2.fillConvexPoly(img, tri.astype(np.int32), col.tolist(), cv2.LINE_AA)
    return img


GENERATED = {
    "evening_bokeh": evening_bokeh,
    "sunrise": sunrise,
    "studio_grey": studio_grey,
    "ocean_waves": ocean_waves,
    "aurora": aurora,
    "low_poly": low_poly,
}
PHOTOS = {"hubble_deep_field": "hubble_deep_field.jpg", "rocket_launch": "rocket.jpg", "coffee": "coffee.png"}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in GENERATED.items():
        img = np.clip(fn(np.random.default_rng(7)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(OUT / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    try:
        import skimage
    except ImportError:
        return
    data = Path(skimage.__file__).parent / "data"
    for name, file in PHOTOS.items():
        img = cv2.imread(str(data / file), cv2.IMREAD_COLOR)
        if img is not None:
            cv2.imwrite(str(OUT / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])


if __name__ == "__main__":
    main()
