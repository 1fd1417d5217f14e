"""What lies behind and over the hand: natural photos and procedural scenes, and the textures of sleeves
and occluders.

The natural photos are the sample images that installed packages ship (scikit-image's `skimage/data`,
matplotlib's `sample_data`), read from their install folders: nothing is downloaded, and this project
ships no photo of its own. Each use takes a random crop at a random scale, flipped or turned, with its
colours shifted, so a dozen photos give an endless supply of scenes.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from handpose.camera import FRAME_SIZE

# (package, folder inside it, files): colour photos of scenes, and grey textures (tinted when used).
PHOTOS = (
    ("skimage", "data", ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")),
    ("skimage", "data", ("motorcycle_right.png", "hubble_deep_field.jpg", "ihc.png", "color.png")),
    ("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")),
)
TEXTURES = (("skimage", "data", ("brick.png", "grass.png", "gravel.png", "camera.png", "page.png", "moon.png")),)
MAX_SIDE = 512  # px: photos are shrunk to this once, on loading
NATURAL_SHARE = 0.7  # of the backgrounds are a natural photo; the rest procedural


def _read(listing: tuple) -> list[np.ndarray]:
    images = []
    for package, folder, names in listing:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"the renderer's photos come from the package {package}, which is not installed")
        root = Path(spec.submodule_search_locations[0]) / folder
        for name in names:
            bgr = cv2.imread(str(root / name), cv2.IMREAD_COLOR)
            if bgr is None:
                raise RuntimeError(f"{root / name}: a sample photo the renderer uses is missing or unreadable")
            scale = min(1.0, MAX_SIDE / max(bgr.shape[:2]))
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else bgr
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return images


@cache
def photos() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scene photos and the grey textures, read once per process."""
    return _read(PHOTOS), _read(TEXTURES)


def _crop(rng: np.random.Generator, image: np.ndarray, smallest: float) -> np.ndarray:
    """A random square crop (side `smallest`-1 of the short side), flipped or turned, at FRAME_SIZE."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(smallest, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = np.rot90(image[y : y + side, x : x + side], int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)


def _shift_colours(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Per-channel gains, a brightness change and, sometimes, a hue rotation; float32 RGB 0-255."""
    if rng.random() < 0.3:
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(0, 180))) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.3, 3) + rng.uniform(-30, 30), 0, 255)


def natural(rng: np.random.Generator, smallest: float = 0.15) -> np.ndarray:
    """A crop of one of the photos (or of a grey texture, tinted), float32 RGB 0-255."""
    scenes, textures = photos()
    if rng.random() < 0.75:
        img = _crop(rng, scenes[rng.integers(len(scenes))], smallest)
    else:
        grey = _crop(rng, textures[rng.integers(len(textures))], smallest)[..., :1].astype(np.float32)
        img = grey * rng.uniform(0.4, 1.2, 3) / 255 * rng.uniform(120, 255)
    return _shift_colours(rng, img)


def procedural(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour gradient with random discs, bars and lines as clutter; float32 RGB."""
    cells = int(rng.integers(2, 6))
    # Pull the random colours towards one grey level: fully random RGB looks garishly saturated.
    colours = rng.uniform(0, 255, (cells, cells, 3))
    grey = rng.uniform(30, 225)
    colours = (grey + rng.uniform(0.3, 1.0) * (colours - grey)).astype(np.uint8)
    img = cv2.resize(colours, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, FRAME_SIZE, 2))
        size = int(rng.integers(5, 70))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.circle(img, (x, y), size, colour, -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.rectangle(img, (x, y), (x + size, y + int(rng.integers(5, 70))), colour, -1)
        else:
            x2, y2 = (int(v) for v in rng.integers(0, FRAME_SIZE, 2))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 8)), cv2.LINE_AA)
    return img.astype(np.float32)


def background(rng: np.random.Generator) -> np.ndarray:
    """The scene behind the hand: mostly a natural photo, else a procedural one; float32 RGB 0-255."""
    if rng.random() < NATURAL_SHARE:
        return natural(rng)
    return procedural(rng)


def texture(rng: np.random.Generator) -> np.ndarray:
    """A surface for a sleeve or an occluder, float32 RGB 0-255: a plain colour, stripes, or a photo's crop."""
    kind = rng.random()
    if kind < 0.4:
        colour = rng.uniform(0, 255, 3) * rng.uniform(0.3, 1.0)
        return np.broadcast_to(colour.astype(np.float32), (FRAME_SIZE, FRAME_SIZE, 3)).copy()
    if kind < 0.6:  # stripes or checks of two colours
        a, b = rng.uniform(0, 255, (2, 3))
        period = rng.uniform(4, 24)
        yy, xx = np.mgrid[:FRAME_SIZE, :FRAME_SIZE]
        angle = rng.uniform(0, np.pi)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        on = (phase % 1 < 0.5) if rng.random() < 0.7 else ((xx // period + yy // period) % 2 == 0)
        return np.where(on[..., None], a, b).astype(np.float32)
    return natural(rng, smallest=0.1)
