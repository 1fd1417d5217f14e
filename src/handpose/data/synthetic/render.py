"""Pixels and visibility of one synthetic sample: a posed hand (poses.py) as a shaded surface over a scene,
with its mask and each joint's visibility code (layout.VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED).

The hand is a union of tapered capsules (phalanges, metacarpals, forearm) and the palm's polygon, drawn
with a depth buffer: each pixel keeps the nearest surface, its normal and which part it is. Nearby skin
surfaces blend (a smooth minimum of their depths), so the palm and the finger bases read as one body.
A random light (ambient, wrapped diffuse, a little specular) shades it; skin tone varies within the hand,
nails sit on the fingertips, a sleeve of random colour or texture covers part of the forearm. The scene
behind is a natural photo (scenes.py) or a procedural one, and the camera adds white balance, gamma,
vignetting, blur, noise and JPEG's blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handpose.camera import FRAME_SIZE, project
from handpose.data.layout import OBJECT_OCCLUDED, SELF_OCCLUDED
from handpose.data.synthetic.poses import direction, hand_pose, hand_rotation, place_in_view
from handpose.data.synthetic.scenes import background, texture
from handpose.skeleton import FINGER_JOINTS, FINGERS, NUM_JOINTS

# Palm outline in the hand frame (mm): the wrist ~55 mm broad, the palm reaching past the outer knuckles.
_WRIST_ULNAR_MM = np.array([-31.0, 4.0, 4.0])
_WRIST_RADIAL_MM = np.array([24.0, 4.0, 6.0])
_KNUCKLE_OUT_MM = 10.0  # the palm reaches this far beyond the index and pinky bases
_METACARPAL_RADIUS_MM = (15.0, 12.0)  # the palm's thickness about each metacarpal, wrist to knuckle
_FOREARM_LENGTH_MM = 220.0
_FOREARM_RADIUS_MM = (26.0, 34.0)
_SLEEVE_SHARE = 0.75  # of the hands wear a sleeve over the forearm from this far up it (mm)
_SLEEVE_START_MM = (25.0, 170.0)
_BLEND_M = 0.004  # surfaces closer in depth than this blend

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
    """One piece of the hand: a tapered capsule (2 points) or a flat polygon (>2 points)."""

    points: np.ndarray  # (n, 3) camera space, metres
    radii: np.ndarray  # (n,) metres, for capsules
    joints: tuple[int, ...]  # joints this part belongs to: they are visible when it is on top
    nail: bool = False  # a fingertip's phalanx: it carries a nail on its back
    sleeve_from: float = 2.0  # a sleeve covers it from this fraction of its axis on (> 1: none)


def _hand_parts(
    xyz: np.ndarray, radii_mm: np.ndarray, R: np.ndarray, wrist: np.ndarray, rng: np.random.Generator
) -> list[_Part]:
    """Forearm (and sleeve), palm, metacarpals, thumb web and 15 phalanx capsules, in camera space."""
    mm = 1e-3
    palm_width = rng.uniform(0.9, 1.15)

    def to_cam(points_mm: np.ndarray) -> np.ndarray:  # hand frame, mm -> camera space, metres
        return (np.asarray(points_mm) * mm) @ R.T + wrist

    parts: list[_Part] = []
    # Forearm, bent at the wrist by a random amount; it is part of the mask like in FreiHAND.
    arm_dir = direction(np.array([rng.uniform(-25, 25), rng.uniform(-45, 45)]))
    # An arm reaching towards the camera would end up in front of the lens: shorten it instead.
    towards_camera = max(0.0, float((arm_dir @ R.T)[2]))  # the arm runs along -arm_dir
    length = _FOREARM_LENGTH_MM * (1.0 - 0.85 * towards_camera)
    radius = np.array(_FOREARM_RADIUS_MM) * palm_width
    sleeve_from = (rng.uniform(*_SLEEVE_START_MM) - 10.0) / (length - 10.0) if rng.random() < _SLEEVE_SHARE else 2.0
    arm = to_cam(np.stack([-arm_dir * 10.0, -arm_dir * length]))
    parts.append(_Part(arm, radius * mm, (0,), sleeve_from=sleeve_from))

    bases = [FINGER_JOINTS[f][0] for f in FINGERS]  # thumb1, index1, middle1, ring1, pinky1
    index_out = xyz[bases[1]] + [_KNUCKLE_OUT_MM * palm_width, 0, 0]
    pinky_out = xyz[bases[4]] - [_KNUCKLE_OUT_MM * palm_width, 0, 0]
    wrist_ulnar, wrist_radial = _WRIST_ULNAR_MM * [palm_width, 1, 1], _WRIST_RADIAL_MM * [palm_width, 1, 1]
    palm = [wrist_ulnar, wrist_radial, xyz[bases[0]], index_out, *xyz[bases[1:]], pinky_out]
    parts.append(_Part(to_cam(np.stack(palm)), np.zeros(len(palm)), (0, *bases)))
    # The palm's body: a capsule along each finger's metacarpal, from the wrist's width to the knuckle.
    for b, start in zip(bases[1:], np.linspace(wrist_radial, wrist_ulnar, 6)[1:5] * [0.6, 0, 0]):
        r = np.array(_METACARPAL_RADIUS_MM) * palm_width
        parts.append(_Part(to_cam(np.stack([start + [0, 12, 0], xyz[b]])), r * mm, (0, b)))
    # Skin web between thumb and index finger, reaching half way up the thumb's metacarpal.
    thumb1, thumb2 = FINGER_JOINTS["thumb"][:2]
    web = [xyz[thumb1], 0.5 * (xyz[thumb1] + xyz[thumb2]), 0.6 * xyz[bases[1]]]
    parts.append(_Part(to_cam(np.stack(web)), np.zeros(3), (thumb1,)))

    for f, finger in enumerate(FINGERS):
        js = FINGER_JOINTS[finger]
        for k in range(3):
            a, b = js[k], js[k + 1]
            parts.append(_Part(to_cam(xyz[[a, b]]), radii_mm[f, [k, k + 1]] * mm, (a, b), nail=k == 2))
    return parts


def _clip(x: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """np.clip without its overhead, which dominates on the small arrays here."""
    return np.minimum(np.maximum(x, low), high)


@dataclass
class _Buffers:
    """What the depth test keeps per pixel: the nearest surface's depth, normal and part (-1: none)."""

    depth: np.ndarray  # (H, W) metres, inf where no part is
    normal: np.ndarray  # (3, H, W) camera space, unit; z < 0 faces the camera
    part: np.ndarray  # (H, W) int16
    along: np.ndarray  # (H, W) position along the part's axis, 0 at its first point, 1 at its last

    @classmethod
    def empty(cls) -> _Buffers:
        shape, f32 = (FRAME_SIZE, FRAME_SIZE), np.float32
        depth, normal, part = np.full(shape, np.inf, f32), np.zeros((3, *shape), f32), np.full(shape, -1, np.int16)
        return cls(depth, normal, part, np.zeros(shape, f32))

    def merge(self, i: int, surface: tuple) -> None:
        """Depth-test part i's surface (its pixels' flat indices, their depth, normal (3, n) and position
        along the part) into the buffers, blending with what is there."""
        flat, depth, normal, along = surface  # flat indices: gathers and scatters on flat views are cheaper
        depths, parts, alongs = self.depth.reshape(-1), self.part.reshape(-1), self.along.reshape(-1)  # views
        normals = self.normal.reshape(3, -1)  # a plane per component: gathering rows of 3 is slower
        old_z = depths.take(flat)
        # The old surface's weight in a smooth minimum of the two depths: 0 where there is none (inf deep).
        h = _clip(0.5 + 0.5 * (depth - old_z) / _BLEND_M)
        blend = h > 0
        z = np.where(blend, depth * (1 - h) + np.where(blend, old_z, 0) * h - _BLEND_M * h * (1 - h), depth)
        write = blend | (depth < old_z)
        n = normal
        if blend.any():
            n = np.where(blend, normal * (1 - h) + normals.take(flat, axis=1) * h, normal)
            n /= np.maximum(np.sqrt((n * n).sum(0)), 1e-9)
        at_write = flat.compress(write)
        depths.put(at_write, z.compress(write))
        for plane, values in zip(normals, n):
            plane.put(at_write, values.compress(write))
        own = write & (h < 0.5)
        at_own = flat.compress(own)
        parts.put(at_own, i)
        alongs.put(at_own, along.compress(own))


_ROWS, _COLS = np.mgrid[:FRAME_SIZE, :FRAME_SIZE].astype(np.float32)  # each pixel's coordinates
_FLAT = np.arange(FRAME_SIZE * FRAME_SIZE).reshape(FRAME_SIZE, FRAME_SIZE)  # and its index in a flat view


def _box(uv: np.ndarray, r_px: np.ndarray) -> tuple[slice, slice] | None:
    lo = np.maximum(np.floor((uv - r_px[:, None]).min(0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil((uv + r_px[:, None]).max(0)).astype(int) + 2, FRAME_SIZE)
    return None if (hi <= lo).any() else (slice(lo[1], hi[1]), slice(lo[0], hi[0]))


def _capsule(part: _Part, uv: np.ndarray, K: np.ndarray):
    """A capsule's pixels (flat indices into the frame), and there its surface's depth, normal (3, n) and
    position along the axis."""
    z = part.points[:, 2]
    r_px = part.radii * K[0, 0] / z
    box = _box(uv, r_px)
    if box is None:
        return None
    v, u = _ROWS[box].ravel(), _COLS[box].ravel()
    d = (uv[1] - uv[0]).astype(np.float32)
    t = _clip(((u - uv[0, 0]) * d[0] + (v - uv[0, 1]) * d[1]) / max(float(d @ d), 1e-9))
    du, dv = u - (uv[0, 0] + t * d[0]), v - (uv[0, 1] + t * d[1])
    r = r_px[0] + t * (r_px[1] - r_px[0])
    rho2 = (du * du + dv * dv) / np.maximum(r * r, 1e-9)
    inside = rho2 < 1.0
    t, du, dv, r, rho2 = (a.compress(inside) for a in (t, du, dv, r, rho2))
    h = np.sqrt(1.0 - rho2)
    depth = z[0] + t * (z[1] - z[0]) - (part.radii[0] + t * (part.radii[1] - part.radii[0])) * h
    return _FLAT[box].ravel().compress(inside), depth, np.stack([du / r, dv / r, -h]), t


def _polygon(part: _Part, uv: np.ndarray, K: np.ndarray):
    """A flat polygon's pixels (flat indices), and there the plane's depth along each pixel's ray, its normal
    (facing the camera) and 0 along."""
    box = _box(uv, np.zeros(len(uv)))
    if box is None:
        return None
    y0, x0 = box[0].start, box[1].start
    mask = np.zeros((box[0].stop - y0, box[1].stop - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((uv - [x0, y0]) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    p = part.points
    n = np.cross(p, np.roll(p, -1, 0)).sum(0)  # Newell's normal of the (near-planar) polygon
    n /= max(float(np.linalg.norm(n)), 1e-12)
    n = -n if n[2] > 0 else n
    rows, cols = np.nonzero(mask)
    rows, cols = rows + y0, cols + x0
    ray_dot_n = (cols - K[0, 2]) / K[0, 0] * n[0] + (rows - K[1, 2]) / K[1, 1] * n[1] + n[2]
    depth = (float(n @ p.mean(0)) / np.minimum(ray_dot_n, -1e-6)).astype(np.float32)
    normal = np.broadcast_to(n.astype(np.float32)[:, None], (3, len(rows)))
    return rows * FRAME_SIZE + cols, depth, normal, np.zeros(len(rows), np.float32)


def _rasterise(parts: list[_Part], K: np.ndarray) -> _Buffers:
    buffers = _Buffers.empty()
    for i, part in enumerate(parts):
        uv = project(part.points, K)
        surface = _capsule(part, uv, K) if len(uv) == 2 else _polygon(part, uv, K)
        if surface is not None:
            buffers.merge(i, surface)
    return buffers


def _skin_colour(rng: np.random.Generator) -> np.ndarray:
    t = rng.beta(1.2, 1.8) * (len(_SKIN_TONES) - 1)  # lighter tones a bit more often
    i = min(int(t), len(_SKIN_TONES) - 2)
    tone = _SKIN_TONES[i] + (t - i) * (_SKIN_TONES[i + 1] - _SKIN_TONES[i])
    return np.clip(tone * rng.uniform(0.75, 1.15) + rng.normal(0, 8, 3), 0, 255)


def _smooth_noise(rng: np.random.Generator, cells: int, channels: int = 1) -> np.ndarray:
    """(H, W, channels) noise in about [-1, 1], smooth over FRAME_SIZE / cells pixels."""
    coarse = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_LINEAR)
    return out.reshape(FRAME_SIZE, FRAME_SIZE, channels)


def _shade(
    buffers: _Buffers, parts: list[_Part], R: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The hand's colours (H, W, 3) float32 in 0-255 (0 off the hand), and where it is (bool)."""
    on = buffers.part >= 0
    hand = np.flatnonzero(on)  # the hand's pixels; all that follows is computed there only

    def on_hand(image: np.ndarray, at: np.ndarray = hand) -> np.ndarray:  # (H, W[, C]) -> (pixels[, C])
        return image.reshape(FRAME_SIZE * FRAME_SIZE, -1).take(at, axis=0).reshape(len(at), *image.shape[2:])

    n = np.ascontiguousarray(buffers.normal.reshape(3, -1).take(hand, axis=1).T)
    part, along = on_hand(buffers.part), on_hand(buffers.along)
    light = direction(np.array([rng.uniform(-180, 180), rng.uniform(-30, 80)]))
    light = np.array([light[0], light[2], -abs(light[1]) - 0.2])  # from the camera's side, mostly
    light /= np.linalg.norm(light)
    ambient, wrap = rng.uniform(0.25, 0.6), rng.uniform(0.0, 0.6)
    diffuse = _clip((n @ light + wrap) / (1 + wrap))
    half = light + [0.0, 0.0, -1.0]
    half /= np.linalg.norm(half)
    facing = _clip(n @ half)
    specular = rng.uniform(0.0, 0.35) * facing ** rng.uniform(6, 40)
    # Skin varies within a hand (redder, paler patches); nails are paler and shinier.
    skin = _skin_colour(rng).astype(np.float32)
    albedo = skin * (1 + 0.07 * on_hand(_smooth_noise(rng, 6, 3))) * (1 + 0.04 * on_hand(_smooth_noise(rng, 24)))
    sleeve = along > np.array([p.sleeve_from for p in parts])[part]
    if sleeve.any():
        albedo[sleeve] = on_hand(texture(rng), hand.compress(sleeve))
    dorsal = -R[:, 2]  # the back of the hand, in camera space
    nail = np.array([p.nail for p in parts])[part] & (along > 0.45) & (n @ dorsal > 0.55)
    albedo[nail] = albedo[nail] * [1.08, 0.95, 0.95] + 30
    specular[nail] += 0.25 * facing[nail] ** 20
    # Where a nearer part covers a farther one, the farther surface sits in its shadow (soft contact shading).
    depth = np.where(on, buffers.depth, 1e3).astype(np.float32)
    gap = _clip(on_hand(depth - cv2.erode(depth, np.ones((5, 5), np.uint8))) / 0.02)
    light_amount = (ambient + (1 - ambient) * diffuse) * (1 - 0.35 * gap)
    colour = np.zeros((*on.shape, 3), np.float32)
    colour.reshape(-1, 3)[hand] = _clip(albedo * light_amount[:, None] + 255 * specular[:, None], 0, 255)
    return colour, on


def _occluders(rng: np.random.Generator, img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Draw 1-2 objects, each a textured or plain box or ellipse, over part of the hand; returns their
    (H, W) uint8 mask (0/1)."""
    occ = np.zeros(img.shape[:2], np.uint8)
    extent = float(np.max(uv.max(0) - uv.min(0)))
    for _ in range(int(rng.integers(1, 3))):
        centre = uv[rng.integers(0, NUM_JOINTS)] + rng.normal(0, 0.1 * extent, 2)
        axes = rng.uniform(0.1, 0.3, 2) * extent + 3
        angle = rng.uniform(0, 180)
        shape = np.zeros_like(occ)
        if rng.random() < 0.5:
            box = cv2.boxPoints(((float(centre[0]), float(centre[1])), tuple(2 * axes), angle))
            cv2.fillConvexPoly(shape, np.round(box * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        else:
            c, ax = tuple(int(v) for v in np.round(centre * 16)), tuple(int(v) for v in np.round(axes * 16))
            cv2.ellipse(shape, c, ax, angle, 0, 360, 1, -1, cv2.LINE_8, 4)
        surface = texture(rng)
        shading = 1 + 0.25 * _smooth_noise(rng, 3)
        covered = shape > 0
        img[covered] = _clip(surface[covered] * shading[covered], 0, 255)
        occ |= shape
    return occ


_RADIUS2 = sum(((np.mgrid[:FRAME_SIZE, :FRAME_SIZE] - FRAME_SIZE / 2) / FRAME_SIZE) ** 2).astype(np.float32)


def _camera_look(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera does to the scene (float32 RGB in, uint8 out): white balance and exposure, vignetting,
    gamma, defocus or motion blur, sensor noise, and JPEG compression at a random quality."""
    img = img * (rng.uniform(0.8, 1.2, 3) * rng.uniform(0.7, 1.3)).astype(np.float32)
    if rng.random() < 0.5:
        img *= (1 - rng.uniform(0.1, 0.6) * _RADIUS2)[..., None]
    gamma = rng.uniform(0.75, 1.35)
    lut = np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255).astype(np.uint8)
    img = cv2.LUT(np.clip(img, 0, 255).astype(np.uint8), lut)
    if rng.random() < 0.2:  # motion blur: a short line
        k = int(rng.integers(3, 10))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1
        M = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, M, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.6))
    # Sensor noise: mostly in brightness, a little in colour.
    noise = rng.standard_normal((*img.shape[:2], 1), dtype=np.float32) * rng.uniform(1, 7)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED) if ok else img


def render_sample(rng: np.random.Generator, look: np.random.Generator | None = None) -> Sample:
    """Render one random hand: pose and camera from `rng`, then scene, skin, light, occluders and camera
    look from `look` (default: `rng` itself). One `rng` with several `look`s gives what FreiHAND's
    versions are: the same hand in the same camera, re-coloured over other backgrounds."""
    xyz_mm, radii_mm = hand_pose(rng)
    R = hand_rotation(rng)
    hand = (xyz_mm * 1e-3) @ R.T  # metres, relative to the wrist, camera orientation
    joint_r = np.concatenate([[0.028], radii_mm.reshape(-1) * 1e-3])  # the wrist is as wide as the palm
    wrist, K = place_in_view(rng, hand, joint_r)
    xyz = hand + wrist
    parts = _hand_parts(xyz_mm, radii_mm, R, wrist, rng)
    rng = rng if look is None else look

    buffers = _rasterise(parts, K)
    colour, on = _shade(buffers, parts, R, rng)
    # Anti-aliased edge: the hand's coverage, from its mask softened by a pixel.
    alpha = cv2.GaussianBlur(on.astype(np.float32), (3, 3), 0.6)[..., None]
    alpha = np.maximum(alpha, on[..., None])
    img = background(rng) * (1 - alpha) + colour * alpha

    uv_joints = project(xyz, K)
    occluded = np.zeros(on.shape, np.uint8)
    if rng.random() < 0.35:
        occluded = _occluders(rng, img, uv_joints)
    mask = np.where(on & (occluded == 0), 255, 0).astype(np.uint8)

    visibility = np.zeros(NUM_JOINTS, np.int8)
    pix = np.clip(np.floor(uv_joints).astype(int), 0, FRAME_SIZE - 1)
    for j, (u, v) in enumerate(pix):
        top = int(buffers.part[v, u])
        if occluded[v, u]:
            visibility[j] = OBJECT_OCCLUDED
        elif top >= 0 and j not in parts[top].joints and buffers.depth[v, u] < xyz[j, 2] - 0.002:
            # Another part's surface is in front of the joint centre (neighbouring fingers touching at the
            # knuckles do not hide it).
            visibility[j] = SELF_OCCLUDED

    img = _camera_look(img, rng)
    return Sample(img, mask, xyz.astype(np.float32), K.astype(np.float32), visibility)
