"""Procedural hand renderer that writes a FreiHAND-v2-shaped dataset (the offline default dataset).

Every sample is a right hand with a random but anatomically plausible pose, seen from a random direction by
a FreiHAND-like camera, drawn with OpenCV over a cluttered background. The output folder can be read by
`handpose.data.freihand.open_freihand` exactly like the real dataset.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from handpose.atomic import atomic_path
from handpose.camera import intrinsics, lift, project
from handpose.data.freihand import VISIBILITY_FILE
from handpose.skeleton import FINGER_JOINTS, FINGERS, NUM_JOINTS, SCALE_BONE

IMAGE_SIZE = 224
PRINCIPAL_POINT = (112.0, 112.0)
FOCAL_RANGE = (375.0, 600.0)  # px
DEPTH_RANGE = (0.40, 0.95)  # wrist depth, metres
CENTRE_JITTER_PX = 12.0  # sd of the hand centre's offset from the image centre
SIZE_RANGE = (0.9, 1.1)  # per-hand size factor applied to every bone
BONE_SD_CLIP = 2.0  # bone lengths are mean + sd * N(0,1) clipped to +-2 sd, so no freak fingers
JPEG_QUALITY = 90

VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED = 0, 1, 2

# Bone lengths in mm, per finger (FINGERS order): wrist->finger base, then the three phalanges.
BONE_MEAN_MM = np.array(
    [
        [32.6, 38.2, 34.0, 27.0],  # thumb
        [87.0, 42.0, 24.5, 23.7],  # index
        [80.1, 49.0, 28.8, 23.6],  # middle
        [74.4, 45.1, 28.4, 22.2],  # ring
        [79.5, 31.1, 20.6, 19.1],  # pinky
    ]
)
BONE_SD_MM = np.array(
    [
        [2.4, 4.9, 4.1, 2.7],
        [5.6, 4.2, 2.8, 2.3],
        [5.5, 4.3, 2.9, 1.9],
        [5.6, 4.5, 2.6, 2.5],
        [5.7, 4.2, 2.6, 3.5],
    ]
)
# Half-widths (mm) of each finger at its 4 joints, base to tip; the thumb base is the fleshy thenar pad.
FINGER_RADIUS_MM = np.array(
    [
        [13.0, 10.5, 9.5, 8.0],
        [9.0, 8.2, 7.4, 6.5],
        [9.2, 8.4, 7.6, 6.6],
        [8.8, 7.9, 7.2, 6.3],
        [8.0, 7.0, 6.4, 5.7],
    ]
)

# Hand frame: x radial (thumb side), y distal (towards the fingers), z palmar. For a right hand this
# frame is right-handed (x cross y = z), so any rotation keeps the hand a right hand.
# Direction of each wrist->finger-base bone as (angle towards the thumb, palmar tilt) in degrees:
# the metacarpals fan across the palm, the ring and pinky bases sit slightly palmar (the palm's arch).
_ROOT_DIR_DEG = np.array([[42.0, 28.0], [13.0, 0.0], [1.0, 0.0], [-11.0, 4.0], [-23.0, 9.0]])
# Rest direction of the first moving bone: the fingers continue their metacarpal, the thumb points
# out to the side and forward, in front of the palm.
_REST_DIR_DEG = np.array([[50.0, 38.0], [13.0, 0.0], [1.0, 0.0], [-11.0, 4.0], [-23.0, 9.0]])
# Abduction of each finger when the hand is fully spread (degrees, + towards the thumb).
_SPREAD_DEG = np.array([0.0, 13.0, 0.0, -9.0, -17.0])
# Flexion limits (degrees) of the three moving joints: MCP/PIP/DIP for fingers, CMC/MCP/IP for the thumb.
_FLEX_MAX_DEG = np.array([[45.0, 60.0, 80.0]] + [[90.0, 110.0, 80.0]] * 4)
_FLEX_MIN_DEG = np.array([[-10.0, 0.0, -10.0]] + [[0.0, 0.0, 0.0]] * 4)
_ABD_LIMIT_DEG = np.array([25.0, 20.0, 15.0, 15.0, 20.0])

# Palm outline in the hand frame (mm); finger-base vertices are filled in from the posed joints.
_WRIST_ULNAR_MM = np.array([-27.0, 4.0, 4.0])
_WRIST_RADIAL_MM = np.array([20.0, 4.0, 6.0])
_KNUCKLE_OUT_MM = 8.0  # the palm reaches this far beyond the index and pinky bases
_FOREARM_LENGTH_MM = 150.0
_FOREARM_RADIUS_MM = (24.0, 28.0)

# Skin tones (RGB) from light to dark; a sample interpolates between neighbours.
_SKIN_TONES = np.array(
    [[241, 205, 180], [224, 172, 140], [198, 134, 96], [160, 102, 68], [112, 70, 45], [80, 52, 36]],
    dtype=np.float64,
)


@dataclass(frozen=True)
class Sample:
    rgb: np.ndarray  # (H, W, 3) uint8, RGB
    mask: np.ndarray  # (H, W) uint8, 255 on visible hand (and forearm) pixels, else 0
    xyz: np.ndarray  # (21, 3) float32, metres, camera space
    K: np.ndarray  # (3, 3) float32
    visibility: np.ndarray  # (21,) int8: VISIBLE, SELF_OCCLUDED or OBJECT_OCCLUDED


# ----------------------------------------------------------------------------------------- kinematics


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _direction(deg: np.ndarray) -> np.ndarray:
    """(..., 2) angles (towards thumb, palmar tilt) in degrees -> unit vectors in the hand frame."""
    a, p = np.radians(deg[..., 0]), np.radians(deg[..., 1])
    return np.stack([np.sin(a) * np.cos(p), np.cos(a) * np.cos(p), np.sin(p)], -1)


def _sample_curls(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-finger curl in [0, 1] (thumb first) and the hand's spread in [0, 1].

    One "grasp" amount drives all fingers so that poses look like open hands, grasps and fists;
    gestures (pointing, victory, ...) extend a random subset of fingers and curl the rest.
    """
    kind = rng.random()
    if kind < 0.2:
        grasp = rng.uniform(0.0, 0.15)  # open / flat hand
    elif kind < 0.4:
        grasp = rng.uniform(0.75, 1.0)  # fist
    else:
        grasp = rng.uniform(0.0, 1.0)
    curls = np.clip(grasp + rng.normal(0.0, 0.12, 5), 0.0, 1.0)
    if rng.random() < 0.25:  # gesture: some fingers straight, the others curled
        extended = rng.random(4) < 0.5
        curls[1:] = np.where(extended, rng.uniform(0.0, 0.1, 4), rng.uniform(0.75, 1.0, 4))
        curls[0] = rng.uniform(0.0, 1.0)
    spread = rng.uniform(0.0, 1.0) * (1.0 - 0.8 * grasp)
    return curls, spread


def _hand_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random right-hand pose in the hand frame: (21, 3) joints in mm and the (5, 4) joint radii in mm."""
    size = rng.uniform(*SIZE_RANGE)
    z = np.clip(rng.standard_normal((5, 4)), -BONE_SD_CLIP, BONE_SD_CLIP)
    lengths = (BONE_MEAN_MM + BONE_SD_MM * z) * size

    root_dir = _direction(_ROOT_DIR_DEG + rng.normal(0.0, 2.0, (5, 2)))
    forward = _direction(_REST_DIR_DEG + rng.normal(0.0, 2.0, (5, 2)))
    # Direction each finger curls towards: palmar, and for the thumb also across the palm (ulnar).
    curl_towards = np.tile([0.0, 0.0, 1.0], (5, 1))
    curl_towards[0] = [-0.75, 0.0, 0.65]
    normal = _unit(curl_towards - np.sum(curl_towards * forward, -1, keepdims=True) * forward)
    radial = np.cross(forward, normal)

    curls, spread = _sample_curls(rng)
    # Flexion: the curl sets each joint as a fraction of its range, with per-joint noise; the DIP
    # follows the PIP (they are coupled by tendons).
    flex_max = np.radians(_FLEX_MAX_DEG)
    flex = curls[:, None] * flex_max * rng.uniform(0.75, 1.05, (5, 3)) + rng.normal(0.0, 0.08, (5, 3))
    flex = np.clip(flex, np.radians(_FLEX_MIN_DEG), flex_max)
    abd_limit = np.radians(_ABD_LIMIT_DEG)
    abd = np.radians(_SPREAD_DEG) * spread + rng.normal(0.0, np.radians(4.0), 5)
    abd[0] = rng.uniform(-0.6, 1.0) * abd_limit[0] * (1.0 - 0.5 * curls[0])
    abd = np.clip(abd, -abd_limit, abd_limit)

    # Abduct about the curl normal, then flex in the (abducted forward, normal) plane.
    fwd = np.cos(abd)[:, None] * forward + np.sin(abd)[:, None] * radial
    phi = np.cumsum(flex, axis=1)  # (5, 3) cumulative flexion of each phalanx
    seg_dir = np.cos(phi)[..., None] * fwd[:, None, :] + np.sin(phi)[..., None] * normal[:, None, :]
    base = lengths[:, :1] * root_dir  # (5, 3)
    joints = np.concatenate([base[:, None], base[:, None] + np.cumsum(lengths[:, 1:, None] * seg_dir, 1)], 1)
    xyz = np.concatenate([np.zeros((1, 3)), joints.reshape(20, 3)], 0)
    return xyz, FINGER_RADIUS_MM * size


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform rotation over SO(3) from a uniform unit quaternion."""
    w, x, y, z = _unit(rng.standard_normal(4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _place_in_view(rng: np.random.Generator, points: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick focal length, wrist depth and wrist pixel so the whole hand lands inside the image.

    `points` (M, 3) are metres relative to the wrist, `radii` (M,) their half-widths in metres.
    Candidates are drawn in batches and the first that fits is kept (rejection sampling), so the
    distributions are the requested uniform ones conditioned on the hand fitting.
    Returns the wrist position (3,) in camera space and K (3, 3).
    """
    margin_px = 3.0
    centre = points.mean(0)  # FreiHAND's images are crops around the hand: its centre lands near the middle
    while True:
        n = 64
        f = rng.uniform(*FOCAL_RANGE, n)
        depth = rng.uniform(*DEPTH_RANGE, n)
        uv = np.asarray(PRINCIPAL_POINT) + rng.normal(0.0, CENTRE_JITTER_PX, (n, 1, 2))
        K = intrinsics(f, f, *PRINCIPAL_POINT)
        wrist = lift(uv, depth[:, None] + centre[2], K) - centre  # (n, 1, 3), wrist at `depth`
        cam = points[None] + wrist
        z = cam[..., 2]
        proj = project(cam, K)  # (n, M, 2)
        r_px = radii[None] * f[:, None] / np.maximum(z, 1e-6) + margin_px
        fits = (z > 0.1).all(1) & ((proj - r_px[..., None] >= 0) & (proj + r_px[..., None] <= IMAGE_SIZE)).all((1, 2))
        if fits.any():
            i = int(np.argmax(fits))
            return wrist[i, 0], K[i]


# ------------------------------------------------------------------------------------------ rendering


@dataclass
class _Part:
    """One drawable piece of the hand: a tapered capsule (2 points) or a filled polygon (>2 points)."""

    points: np.ndarray  # (n, 3) camera space, metres
    radii: np.ndarray  # (n,) metres, for capsules
    joints: tuple[int, ...]  # joints this part belongs to: they are visible when it is on top


def _hand_parts(
    xyz: np.ndarray, radii_mm: np.ndarray, R: np.ndarray, wrist: np.ndarray, rng: np.random.Generator
) -> list[_Part]:
    """Forearm, palm, thumb web and 15 phalanx capsules, in camera space."""
    mm = 1e-3

    def to_cam(points_mm: np.ndarray) -> np.ndarray:  # hand frame, mm -> camera space, metres
        return (np.asarray(points_mm) * mm) @ R.T + wrist

    parts: list[_Part] = []

    # Forearm, bent at the wrist by a random amount; it is part of the mask like in FreiHAND.
    arm_dir = _direction(np.array([rng.uniform(-25, 25), rng.uniform(-45, 45)]))
    # An arm reaching towards the camera would end up in front of the lens: shorten it instead.
    towards_camera = max(0.0, float((arm_dir @ R.T)[2]))  # the arm runs along -arm_dir
    length = _FOREARM_LENGTH_MM * (1.0 - 0.8 * towards_camera)
    arm = np.stack([-arm_dir * 15.0, -arm_dir * length])
    parts.append(_Part(to_cam(arm), np.array(_FOREARM_RADIUS_MM) * mm, (0,)))

    bases = [FINGER_JOINTS[f][0] for f in FINGERS]  # thumb1, index1, middle1, ring1, pinky1
    index_out = xyz[bases[1]] + [_KNUCKLE_OUT_MM, 0, 0]
    pinky_out = xyz[bases[4]] - [_KNUCKLE_OUT_MM, 0, 0]
    palm = [_WRIST_ULNAR_MM, _WRIST_RADIAL_MM, xyz[bases[0]], index_out, *xyz[bases[1:]], pinky_out]
    parts.append(_Part(to_cam(np.stack(palm)), np.zeros(len(palm)), (0, *bases)))
    # Skin web between thumb and index finger, reaching half way up the thumb's metacarpal.
    thumb1, thumb2 = FINGER_JOINTS["thumb"][:2]
    web = [xyz[thumb1], 0.5 * (xyz[thumb1] + xyz[thumb2]), 0.6 * xyz[bases[1]]]
    parts.append(_Part(to_cam(np.stack(web)), np.zeros(3), (thumb1,)))

    for f, finger in enumerate(FINGERS):
        js = FINGER_JOINTS[finger]
        for k in range(3):
            a, b = js[k], js[k + 1]
            parts.append(_Part(to_cam(xyz[[a, b]]), radii_mm[f, [k, k + 1]] * mm, (a, b)))
    return parts


def _background(rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour gradient with random shapes as clutter."""
    cells = int(rng.integers(2, 6))
    # Pull the random colours towards one grey level: fully random RGB looks garishly saturated.
    colours = rng.uniform(0, 255, (cells, cells, 3))
    grey = rng.uniform(30, 225)
    colours = (grey + rng.uniform(0.3, 1.0) * (colours - grey)).astype(np.uint8)
    img = cv2.resize(colours, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE, 2))
        size = int(rng.integers(5, 70))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.circle(img, (x, y), size, colour, -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.rectangle(img, (x, y), (x + size, y + int(rng.integers(5, 70))), colour, -1)
        else:
            x2, y2 = (int(v) for v in rng.integers(0, IMAGE_SIZE, 2))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 8)), cv2.LINE_AA)
    return img


_SHIFT = 4  # OpenCV fixed-point bits: draw with 1/16 px precision
_ONE = 1 << _SHIFT


def _fixed(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32)


def _draw_capsule(img: np.ndarray, p: np.ndarray, r: np.ndarray, colour: tuple, line_type: int) -> None:
    """Tapered capsule: two end discs joined by the quad between them."""
    d = p[1] - p[0]
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
    quad = np.stack([p[0] + n * r[0], p[1] + n * r[1], p[1] - n * r[1], p[0] - n * r[0]])
    cv2.fillConvexPoly(img, _fixed(quad), colour, line_type, _SHIFT)
    for k in range(2):
        cv2.circle(img, tuple(_fixed(p[k])), int(round(r[k] * _ONE)), colour, -1, line_type, _SHIFT)


def _draw_part(img: np.ndarray, uv: np.ndarray, r_px: np.ndarray, colour: tuple, line_type: int) -> None:
    if len(uv) == 2:
        _draw_capsule(img, uv, r_px, colour, line_type)
    else:
        cv2.fillPoly(img, [_fixed(uv)], colour, line_type, _SHIFT)


def _skin_colour(rng: np.random.Generator) -> np.ndarray:
    t = rng.beta(1.2, 1.8) * (len(_SKIN_TONES) - 1)  # lighter tones a bit more often
    i = min(int(t), len(_SKIN_TONES) - 2)
    tone = _SKIN_TONES[i] + (t - i) * (_SKIN_TONES[i + 1] - _SKIN_TONES[i])
    return np.clip(tone * rng.uniform(0.75, 1.15) + rng.normal(0, 8, 3), 0, 255)


def _occluder_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour that is not skin: saturated greens/blues/purples, or a grey."""
    if rng.random() < 0.3:
        g = int(rng.integers(20, 236))
        return (g, g, g)
    hsv = np.array([[[rng.integers(40, 165), rng.integers(120, 256), rng.integers(60, 256)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _draw_occluders(rng: np.random.Generator, img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Draw 1-2 objects over part of the hand; returns their (H, W) uint8 mask (0/1)."""
    occ = np.zeros(img.shape[:2], np.uint8)
    extent = float(np.max(uv.max(0) - uv.min(0)))
    for _ in range(int(rng.integers(1, 3))):
        centre = uv[rng.integers(0, NUM_JOINTS)] + rng.normal(0, 0.1 * extent, 2)
        axes = rng.uniform(0.1, 0.3, 2) * extent + 3
        angle = rng.uniform(0, 180)
        colour = _occluder_colour(rng)
        if rng.random() < 0.5:
            box = cv2.boxPoints(((float(centre[0]), float(centre[1])), tuple(2 * axes), angle))
            for target, c in ((img, colour), (occ, 1)):
                cv2.fillConvexPoly(target, _fixed(box), c, cv2.LINE_8, _SHIFT)
        else:
            c_fix, ax_fix = tuple(_fixed(centre)), tuple(_fixed(axes))
            for target, c in ((img, colour), (occ, 1)):
                cv2.ellipse(target, c_fix, ax_fix, angle, 0, 360, c, -1, cv2.LINE_8, _SHIFT)
    return occ


def _front_depth(part: _Part, uv: np.ndarray, pixel: np.ndarray) -> float:
    """Depth of the near surface of `part` at `pixel` (capsules interpolate along their axis)."""
    z = part.points[:, 2]
    if len(uv) != 2:
        return float(z.mean())
    d = uv[1] - uv[0]
    t = float(np.clip(np.dot(pixel - uv[0], d) / max(float(np.dot(d, d)), 1e-9), 0, 1))
    return float((1 - t) * (z[0] - part.radii[0]) + t * (z[1] - part.radii[1]))


def render_sample(rng: np.random.Generator) -> Sample:
    """Render one random hand: pose, camera, background, hand, occluders, mask and visibility."""
    xyz_mm, radii_mm = _hand_pose(rng)
    R = _random_rotation(rng)
    hand = (xyz_mm * 1e-3) @ R.T  # metres, relative to the wrist, camera orientation
    joint_r = np.concatenate([[0.028], radii_mm.reshape(-1) * 1e-3])  # the wrist is as wide as the palm
    wrist, K = _place_in_view(rng, hand, joint_r)
    xyz = hand + wrist
    parts = _hand_parts(xyz_mm, radii_mm, R, wrist, rng)

    img = _background(rng)
    labels = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)  # which part is on top at each pixel (id + 1)
    skin = _skin_colour(rng)
    z_near, z_far = xyz[:, 2].min(), xyz[:, 2].max()
    focal = K[0, 0]
    # Painter's algorithm: draw far to near, so nearer parts overwrite farther ones.
    order = sorted(range(len(parts)), key=lambda i: -parts[i].points[:, 2].mean())
    part_uv = [project(p.points, K) for p in parts]
    for i in order:
        part, uv = parts[i], part_uv[i]
        r_px = part.radii * focal / part.points[:, 2]
        # Nearer parts are brighter; a dark rim and a light core make overlapping fingers readable.
        shade = 1.0 - 0.35 * (part.points[:, 2].mean() - z_near) / max(z_far - z_near, 1e-6)
        base = skin * shade
        _draw_part(img, uv, r_px + 0.8, tuple(base * 0.6), cv2.LINE_AA)
        _draw_part(img, uv, r_px, tuple(base), cv2.LINE_AA)
        if len(uv) > 2:
            cv2.polylines(img, [_fixed(uv)], True, tuple(base * 0.6), 1, cv2.LINE_AA, _SHIFT)
        else:
            _draw_part(img, uv, r_px * 0.45, tuple(np.minimum(base * 1.12 + 6, 255)), cv2.LINE_AA)
        _draw_part(labels, uv, r_px + 0.8, i + 1, cv2.LINE_8)

    uv_joints = project(xyz, K)
    occluded = _draw_occluders(rng, img, uv_joints) if rng.random() < 0.35 else np.zeros_like(labels)
    mask = np.where((labels > 0) & (occluded == 0), 255, 0).astype(np.uint8)

    visibility = np.zeros(NUM_JOINTS, np.int8)
    pix = np.clip(np.floor(uv_joints).astype(int), 0, IMAGE_SIZE - 1)
    for j, (u, v) in enumerate(pix):
        top = int(labels[v, u]) - 1
        if occluded[v, u]:
            visibility[j] = OBJECT_OCCLUDED
        elif top >= 0 and j not in parts[top].joints:
            # Another part was painted over the joint; call it hidden only if its surface is really in
            # front of the joint centre (neighbouring fingers touching at the knuckles do not hide).
            if _front_depth(parts[top], part_uv[top], uv_joints[j]) < xyz[j, 2] - 0.002:
                visibility[j] = SELF_OCCLUDED

    # Camera look: slight blur, global brightness/contrast, sensor noise.
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.9))
    img = cv2.convertScaleAbs(img, alpha=rng.uniform(0.8, 1.2), beta=rng.uniform(-20, 20))
    amp = int(rng.integers(1, 10))
    img = cv2.subtract(cv2.add(img, rng.integers(0, 2 * amp + 1, img.shape, dtype=np.uint8)), amp)
    return Sample(img, mask, xyz.astype(np.float32), K.astype(np.float32), visibility)


# -------------------------------------------------------------------------------------------- writing


def _write_jpeg(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


_Labels = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # first index, xyz, K, visibility of a chunk


def _render_range(args: tuple[str, int, int, int]) -> _Labels:
    """Render and write samples [start, stop); returns their labels for the json files."""
    folder, seed, start, stop = args
    rgb_dir, mask_dir = Path(folder, "training", "rgb"), Path(folder, "training", "mask")
    xyz = np.zeros((stop - start, NUM_JOINTS, 3), np.float32)
    K = np.zeros((stop - start, 3, 3), np.float32)
    vis = np.zeros((stop - start, NUM_JOINTS), np.int8)
    for k, i in enumerate(range(start, stop)):
        # Each sample's RNG depends only on (seed, index): output is independent of worker count.
        sample = render_sample(np.random.default_rng([seed, i]))
        _write_jpeg(rgb_dir / f"{i:08d}.jpg", cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR))
        _write_jpeg(mask_dir / f"{i:08d}.jpg", sample.mask)
        xyz[k], K[k], vis[k] = sample.xyz, sample.K, sample.visibility
    return start, xyz, K, vis


def _imap_in_processes(tasks: list[tuple[str, int, int, int]], workers: int) -> Iterator[_Labels]:
    """Run `_render_range` over `tasks` in a forked process pool, yielding results as they finish.

    Fork (not spawn/forkserver) so it works whatever the caller's __main__ is. A child forked while
    OpenCV's thread pool is alive deadlocks on its first OpenCV thread call, so the parent shrinks
    that pool to one thread (which the children inherit) for the pool's lifetime.
    """
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(_render_range, tasks)
    finally:
        cv2.setNumThreads(cv_threads)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_dataset(root: str | Path, n: int, seed: int, workers: int | None = None, progress: bool = True) -> None:
    """Write `n` synthetic samples (one image per pose) in the FreiHAND v2 layout at `root`.

    Deterministic for a given (seed, n) whatever `workers` is. The dataset is built in a temporary
    sibling folder and only replaces `root` once complete, so `root` is never half-written.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    workers = _default_workers() if workers is None else max(1, workers)
    with atomic_path(root) as tmp:  # replaces `root` only once the whole dataset is written
        (tmp / "training" / "rgb").mkdir(parents=True)
        (tmp / "training" / "mask").mkdir(parents=True)
        xyz = np.zeros((n, NUM_JOINTS, 3), np.float32)
        K = np.zeros((n, 3, 3), np.float32)
        vis = np.zeros((n, NUM_JOINTS), np.int8)
        chunk = max(1, min(64, math.ceil(n / (workers * 8))))
        tasks = [(str(tmp), seed, s, min(s + chunk, n)) for s in range(0, n, chunk)]
        with tqdm(total=n, desc="rendering hands", unit="img", disable=not progress) as bar:

            def collect(result: _Labels) -> None:
                start, x, k, v = result
                xyz[start : start + len(x)], K[start : start + len(x)], vis[start : start + len(x)] = x, k, v
                bar.update(len(x))

            if workers == 1:
                for task in tasks:
                    collect(_render_range(task))
            else:
                for result in _imap_in_processes(tasks, workers):
                    collect(result)

        scale = np.linalg.norm(xyz[:, SCALE_BONE[0]] - xyz[:, SCALE_BONE[1]], axis=-1)
        for name, value in (
            ("training_xyz.json", xyz),
            ("training_K.json", K),
            ("training_scale.json", scale),
            (VISIBILITY_FILE, vis),
        ):
            (tmp / name).write_text(json.dumps(value.tolist()))
