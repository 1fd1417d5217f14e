"""Sampling hands and cameras: anatomically plausible right-hand poses seen by a FreiHAND-like camera."""

from __future__ import annotations

import numpy as np

from handpose.camera import FRAME_SIZE, PRINCIPAL_POINT, intrinsics, lift, project

FOCAL_RANGE = (375.0, 600.0)  # px, FreiHAND's framing
DEPTH_RANGE = (0.40, 0.95)  # wrist depth, metres
CENTRE_JITTER_PX = 12.0  # sd of the hand centre's offset from the image centre
# A share of the hands is framed as a crop around the hand (as a detector's box, or a photo of a hand):
# the joints then span this fraction of the frame, the focal length following (a crop zooms in).
CLOSE_SHARE = 0.5
CLOSE_SPAN = (0.5, 0.85)
CLOSE_FOCAL_RANGE = (300.0, 1500.0)  # px, what such crops give
CLOSE_JITTER_PX = 4.0  # sd of the joints' box centre from the image centre in a close-up
SIZE_RANGE = (0.9, 1.1)  # per-hand size factor applied to every bone
WIDTH_RANGE = (0.85, 1.2)  # per-hand factor of the fingers' widths (and of the palm's, see render.py)
BONE_SD_CLIP = 2.0  # bone lengths are mean + sd * N(0,1) clipped to +-2 sd, so no freak fingers

# Views: a share of the hands is seen as photographed (hand_rotation), most of them palm towards the camera
# (realphotos-dev: 89%), tilted in a random direction by up to PHOTO_TILT_DEG (its angle drawn as a
# disc's radius), rolled about the lens by a normal angle.
PHOTOGRAPHED_SHARE = 0.7
PALM_SHARE = 0.75
PHOTO_TILT_DEG = 60.0
PHOTO_ROLL_SD_DEG = 30.0

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
# Half-widths (mm) of each finger at its 4 joints, base to tip: adult fingers are about 18-21 mm wide at the
# knuckle and 13-15 mm at the tip; the thumb's base is the fleshy thenar pad.
FINGER_RADIUS_MM = np.array(
    [
        [15.0, 12.1, 10.9, 9.2],
        [10.4, 9.4, 8.5, 7.5],
        [10.6, 9.7, 8.7, 7.6],
        [10.1, 9.1, 8.3, 7.2],
        [9.2, 8.1, 7.4, 6.6],
    ]
)

# Hand frame: x radial (thumb side), y distal (towards the fingers), z palmar. For a right hand this
# frame is right-handed (x cross y = z), so any rotation keeps the hand a right hand.
# Direction of each wrist->finger-base bone as (angle towards the thumb, palmar tilt) in degrees:
# the metacarpals fan across the palm, the index and little knuckles ~59 mm apart, so that with its edges
# (render.py) the palm is ~80 mm broad, as adults' are (hand breadth at the metacarpals: 70-75 mm for
# women, 80-85 mm for men in British and Hong Kong surveys); the ring and pinky bases sit slightly palmar
# (the palm's arch).
_ROOT_DIR_DEG = np.array([[42.0, 28.0], [15.0, 0.0], [1.0, 0.0], [-13.0, 4.0], [-27.0, 9.0]])
# Rest direction of the first moving bone: the fingers continue their metacarpal, the thumb points
# out to the side and forward, in front of the palm.
_REST_DIR_DEG = np.array([[50.0, 38.0], [15.0, 0.0], [1.0, 0.0], [-13.0, 4.0], [-27.0, 9.0]])
# Abduction of each finger when the hand is fully spread (degrees, + towards the thumb).
_SPREAD_DEG = np.array([0.0, 13.0, 0.0, -9.0, -17.0])
# Flexion limits (degrees) of the three moving joints: MCP/PIP/DIP for fingers, CMC/MCP/IP for the thumb.
_FLEX_MAX_DEG = np.array([[45.0, 60.0, 80.0]] + [[90.0, 110.0, 80.0]] * 4)
_FLEX_MIN_DEG = np.array([[-10.0, 0.0, -10.0]] + [[0.0, 0.0, 0.0]] * 4)
_ABD_LIMIT_DEG = np.array([25.0, 20.0, 15.0, 15.0, 20.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def direction(deg: np.ndarray) -> np.ndarray:
    """(..., 2) angles (towards thumb, palmar tilt) in degrees -> unit vectors in the hand frame."""
    a, p = np.radians(deg[..., 0]), np.radians(deg[..., 1])
    return np.stack([np.sin(a) * np.cos(p), np.cos(a) * np.cos(p), np.sin(p)], -1)


# The gestures people make, as each finger's curl (thumb, index, middle, ring, pinky) in [0, 1] and the
# hand's spread; a sampled gesture adds noise to both.
GESTURES = {
    "open palm": ([0.05, 0.0, 0.0, 0.0, 0.0], 0.9),
    "fist": ([0.85, 1.0, 1.0, 1.0, 1.0], 0.0),
    "pointing": ([0.8, 0.0, 1.0, 1.0, 1.0], 0.2),
    "two": ([0.8, 0.0, 0.0, 1.0, 1.0], 0.8),
    "three": ([0.7, 0.0, 0.0, 0.0, 1.0], 0.6),
    "four": ([0.95, 0.0, 0.0, 0.0, 0.0], 0.6),
    "thumbs-up": ([0.0, 1.0, 1.0, 1.0, 1.0], 0.0),
    "pinch": ([0.55, 0.6, 0.85, 0.95, 1.0], 0.1),
    "ok": ([0.55, 0.6, 0.05, 0.05, 0.05], 0.5),
    "rock": ([0.8, 0.0, 1.0, 1.0, 0.0], 0.7),
    "call": ([0.0, 1.0, 1.0, 1.0, 0.0], 0.6),
}
GESTURE_SHARE = 0.4  # of the hands; the rest are random grasps, open hands, fists and random subsets


def _sample_curls(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-finger curl in [0, 1] (thumb first) and the hand's spread in [0, 1].

    A share of the hands make one of GESTURES. Otherwise one "grasp" amount drives all fingers, so that
    poses look like open hands, grasps and fists, or a random subset of fingers is straight.
    """
    if rng.random() < GESTURE_SHARE:
        curls, spread = GESTURES[list(GESTURES)[rng.integers(len(GESTURES))]]
        curls = np.clip(np.asarray(curls) + rng.normal(0.0, 0.08, 5), 0.0, 1.0)
        return curls, float(np.clip(spread + rng.normal(0.0, 0.15), 0.0, 1.0))
    kind = rng.random()
    if kind < 0.2:
        grasp = rng.uniform(0.0, 0.15)  # open / flat hand
    elif kind < 0.4:
        grasp = rng.uniform(0.75, 1.0)  # fist
    else:
        grasp = rng.uniform(0.0, 1.0)
    curls = np.clip(grasp + rng.normal(0.0, 0.12, 5), 0.0, 1.0)
    if rng.random() < 0.25:  # some fingers straight, the others curled
        extended = rng.random(4) < 0.5
        curls[1:] = np.where(extended, rng.uniform(0.0, 0.1, 4), rng.uniform(0.75, 1.0, 4))
        curls[0] = rng.uniform(0.0, 1.0)
    spread = rng.uniform(0.0, 1.0) * (1.0 - 0.8 * grasp)
    return curls, spread


def hand_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random right-hand pose in the hand frame: (21, 3) joints in mm and the (5, 4) joint radii in mm."""
    size = rng.uniform(*SIZE_RANGE)
    z = np.clip(rng.standard_normal((5, 4)), -BONE_SD_CLIP, BONE_SD_CLIP)
    lengths = (BONE_MEAN_MM + BONE_SD_MM * z) * size

    root_dir = direction(_ROOT_DIR_DEG + rng.normal(0.0, 2.0, (5, 2)))
    forward = direction(_REST_DIR_DEG + rng.normal(0.0, 2.0, (5, 2)))
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
    return xyz, FINGER_RADIUS_MM * size * rng.uniform(*WIDTH_RANGE)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform rotation over SO(3) from a uniform unit quaternion."""
    w, x, y, z = _unit(rng.standard_normal(4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation by `angle` radians about `axis`."""
    x, y, z = _unit(axis)
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


# The hand frame's axes in camera space for a hand held up, fingers towards the image's top (camera -y),
# with its palm (hand +z) or its back towards the camera (camera -z). Both are proper rotations.
_PALM_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
_BACK_TO_CAMERA = np.diag([-1.0, -1.0, 1.0])


def hand_rotation(rng: np.random.Generator) -> np.ndarray:
    """The hand's orientation in camera space: PHOTOGRAPHED_SHARE of the hands as people hold a hand up to
    a camera, palm or back towards it and fingers up, the rest uniform over SO(3) so no view goes unseen."""
    if rng.random() >= PHOTOGRAPHED_SHARE:
        return random_rotation(rng)
    facing = _PALM_TO_CAMERA if rng.random() < PALM_SHARE else _BACK_TO_CAMERA
    azimuth = rng.uniform(0.0, 2 * np.pi)
    tilt_axis = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
    tilt = _axis_angle(tilt_axis, np.radians(PHOTO_TILT_DEG) * np.sqrt(rng.random()))
    roll = _axis_angle(np.array([0.0, 0.0, 1.0]), np.radians(rng.normal(0.0, PHOTO_ROLL_SD_DEG)))
    return roll @ tilt @ facing


def place_in_view(rng: np.random.Generator, points: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick focal length, wrist depth and wrist pixel so the hand lands inside the image.

    `points` (M, 3) are metres relative to the wrist (the 21 joints first), `radii` (M,) their half-widths
    in metres. Most hands are framed as FreiHAND's (FOCAL_RANGE, DEPTH_RANGE, the hand's centre near the
    middle), the whole hand inside. CLOSE_SHARE of them are framed as a crop around the hand: the joints'
    box is centred and spans CLOSE_SPAN of the frame, and only the joints need be inside (a crop cuts the
    palm's and the arm's edges). Candidates are drawn in batches and the first that fits is kept
    (rejection sampling), so the distributions are the requested uniform ones conditioned on the hand
    fitting. Returns the wrist position (3,) in camera space and K (3, 3).
    """
    margin_px = 3.0
    close = rng.random() < CLOSE_SHARE
    joints = points[:21]
    low, high = joints.min(0), joints.max(0)
    span_m = float(np.max(high[:2] - low[:2]))  # the joints' extent, seen head on
    if close:
        centre, jitter_px = np.array([*(low[:2] + high[:2]) / 2, joints[:, 2].mean()]), CLOSE_JITTER_PX
        points, radii = joints, np.zeros(len(joints))
    else:  # FreiHAND's images are crops around the hand: its centre lands near the middle
        centre, jitter_px = points.mean(0), CENTRE_JITTER_PX
    while True:
        n = 64
        depth = rng.uniform(*DEPTH_RANGE, n)
        if close:
            f = np.clip(rng.uniform(*CLOSE_SPAN, n) * FRAME_SIZE * (depth + centre[2]) / span_m, *CLOSE_FOCAL_RANGE)
        else:
            f = rng.uniform(*FOCAL_RANGE, n)
        uv = np.asarray(PRINCIPAL_POINT) + rng.normal(0.0, jitter_px, (n, 1, 2))
        K = intrinsics(f, f, *PRINCIPAL_POINT)
        wrist = lift(uv, depth[:, None] + centre[2], K) - centre  # (n, 1, 3), wrist at `depth`
        cam = points[None] + wrist
        z = cam[..., 2]
        proj = project(cam, K)  # (n, M, 2)
        r_px = radii[None] * f[:, None] / np.maximum(z, 1e-6) + margin_px
        fits = (z > 0.1).all(1) & ((proj - r_px[..., None] >= 0) & (proj + r_px[..., None] <= FRAME_SIZE)).all((1, 2))
        if fits.any():
            i = int(np.argmax(fits))
            return wrist[i, 0], K[i]
