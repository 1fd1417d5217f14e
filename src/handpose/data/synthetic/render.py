"""Pixels and visibility of one synthetic sample: a posed hand (poses.py) drawn with OpenCV over a cluttered
background, with its mask and each joint's visibility code (layout.VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handpose.camera import FRAME_SIZE, project
from handpose.data.layout import OBJECT_OCCLUDED, SELF_OCCLUDED
from handpose.data.synthetic.poses import direction, hand_pose, place_in_view, random_rotation
from handpose.skeleton import FINGER_JOINTS, FINGERS, NUM_JOINTS

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
    visibility: np.ndarray  # (21,) int8: layout.VISIBLE, SELF_OCCLUDED or OBJECT_OCCLUDED


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
    arm_dir = direction(np.array([rng.uniform(-25, 25), rng.uniform(-45, 45)]))
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


def render_sample(rng: np.random.Generator, look: np.random.Generator | None = None) -> Sample:
    """Render one random hand: pose and camera from `rng`, then background, skin, occluders and camera
    look from `look` (default: `rng` itself). One `rng` with several `look`s gives what FreiHAND's
    versions are: the same hand in the same camera, re-coloured over other backgrounds."""
    xyz_mm, radii_mm = hand_pose(rng)
    R = random_rotation(rng)
    hand = (xyz_mm * 1e-3) @ R.T  # metres, relative to the wrist, camera orientation
    joint_r = np.concatenate([[0.028], radii_mm.reshape(-1) * 1e-3])  # the wrist is as wide as the palm
    wrist, K = place_in_view(rng, hand, joint_r)
    xyz = hand + wrist
    parts = _hand_parts(xyz_mm, radii_mm, R, wrist, rng)
    rng = rng if look is None else look

    img = _background(rng)
    labels = np.zeros((FRAME_SIZE, FRAME_SIZE), np.uint8)  # which part is on top at each pixel (id + 1)
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
    pix = np.clip(np.floor(uv_joints).astype(int), 0, FRAME_SIZE - 1)
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
