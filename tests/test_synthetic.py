"""The synthetic renderer: anatomical bones, FreiHAND camera, consistent labels, deterministic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handpose.camera import FRAME_SIZE, PRINCIPAL_POINT, project
from handpose.data import layout
from handpose.data.layout import OBJECT_OCCLUDED, SELF_OCCLUDED, VISIBLE
from handpose.data.synthetic import Sample, render_sample, write_dataset
from handpose.data.synthetic import write as synthetic_write
from handpose.data.synthetic.poses import (
    BONE_MEAN_MM,
    BONE_SD_CLIP,
    BONE_SD_MM,
    CLOSE_FOCAL_RANGE,
    CLOSE_SPAN,
    DEPTH_RANGE,
    FOCAL_RANGE,
    PALM_SHARE,
    PHOTO_TILT_DEG,
    PHOTOGRAPHED_SHARE,
    SIZE_RANGE,
    hand_pose,
    hand_rotation,
    place_in_view,
)
from handpose.skeleton import BONES, SCALE_BONE


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return [render_sample(np.random.default_rng([11, i])) for i in range(60)]


def test_hand_rotation_holds_most_hands_up_to_the_camera() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    R = np.stack([hand_rotation(rng) for _ in range(n)])
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1.0)
    # Palm towards the camera (the palmar axis, hand +z, within the tilt of camera -z): every photographed
    # palm, plus the uniform views that happen to land in that cap.
    cap = 1 - np.cos(np.radians(PHOTO_TILT_DEG))
    palm = np.mean(R[:, 2, 2] <= -np.cos(np.radians(PHOTO_TILT_DEG)) + 1e-9)
    expected = PHOTOGRAPHED_SHARE * PALM_SHARE + (1 - PHOTOGRAPHED_SHARE) * cap / 2
    assert abs(palm - expected) < 4 * np.sqrt(expected * (1 - expected) / n)  # 4 binomial sd


def test_sample_types(samples: list[Sample]) -> None:
    s = samples[0]
    assert s.rgb.shape == (FRAME_SIZE, FRAME_SIZE, 3) and s.rgb.dtype == np.uint8
    assert s.mask.shape == (FRAME_SIZE, FRAME_SIZE) and s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 255}
    assert s.xyz.shape == (21, 3) and s.xyz.dtype == np.float32
    assert s.K.shape == (3, 3) and s.K.dtype == np.float32
    assert s.visibility.shape == (21,) and s.visibility.dtype == np.int8


def test_bone_lengths_in_anatomical_range(samples: list[Sample]) -> None:
    low = (BONE_MEAN_MM - BONE_SD_CLIP * BONE_SD_MM).reshape(-1) * SIZE_RANGE[0] / 1000
    high = (BONE_MEAN_MM + BONE_SD_CLIP * BONE_SD_MM).reshape(-1) * SIZE_RANGE[1] / 1000
    for s in samples:
        lengths = np.linalg.norm(s.xyz[[c for _, c in BONES]] - s.xyz[[p for p, _ in BONES]], axis=-1)
        # float32 joints (~0.5 m: 6e-8 m a rounding) put a length within ~1e-7 m; a micron is room.
        assert np.all(lengths >= low - 1e-6) and np.all(lengths <= high + 1e-6)


def test_camera_and_projection(samples: list[Sample]) -> None:
    spans = []
    for s in samples:
        assert (s.K[0, 2], s.K[1, 2]) == PRINCIPAL_POINT and s.K[0, 1] == 0 and s.K[2, 2] == 1
        f = s.K[0, 0]
        assert s.K[1, 1] == f and (
            FOCAL_RANGE[0] <= f <= FOCAL_RANGE[1] or CLOSE_FOCAL_RANGE[0] <= f <= CLOSE_FOCAL_RANGE[1]
        )
        # float32 rounds a depth near 1 m by ~6e-8 m: a micron is room.
        assert DEPTH_RANGE[0] - 1e-6 <= s.xyz[0, 2] <= DEPTH_RANGE[1] + 1e-6
        uv = project(s.xyz, s.K)
        assert np.all(uv >= 0) and np.all(uv < FRAME_SIZE)
        spans.append((uv.max(0) - uv.min(0)).max() / FRAME_SIZE)
    # Both framings occur: FreiHAND's (the joints span ~40% of the frame) and close-ups (CLOSE_SPAN of it).
    assert min(spans) < CLOSE_SPAN[0] - 0.1 and max(spans) > CLOSE_SPAN[0]


def test_close_ups_span_their_whole_range() -> None:
    """Close-ups are crops around the hand: the joints' box is centred and spans up to CLOSE_SPAN[1] of the
    frame, however wide the wrist and the palm are (a crop cuts them; only the joints must be inside)."""
    rng = np.random.default_rng(3)
    spans, off_centre = [], []
    for _ in range(600):
        xyz_mm, radii_mm = hand_pose(rng)
        hand = (xyz_mm * 1e-3) @ hand_rotation(rng).T
        wrist, K = place_in_view(rng, hand, np.concatenate([[0.028], radii_mm.reshape(-1) * 1e-3]))
        uv = project(hand + wrist, K)
        assert np.all(uv >= 0) and np.all(uv < FRAME_SIZE)
        spans.append((uv.max(0) - uv.min(0)).max() / FRAME_SIZE)
        off_centre.append(np.abs((uv.max(0) + uv.min(0)) / 2 - PRINCIPAL_POINT).max())
    spans, off_centre = np.array(spans), np.array(off_centre)
    # The projected box differs from the head-on span by perspective: a tenth of the range is room.
    top = CLOSE_SPAN[1] - 0.1 * (CLOSE_SPAN[1] - CLOSE_SPAN[0])
    assert np.mean(spans > top) > 0.02, f"only {np.mean(spans > top):.1%} of hands span more than {top:.2f}"
    close = spans > CLOSE_SPAN[0]
    assert np.median(off_centre[close]) < 12, "close-ups are not centred on the joints' box"


def test_visible_joints_lie_on_the_mask(samples: list[Sample]) -> None:
    for s in samples:
        padded = np.pad(s.mask, 1)
        for (u, v), code in zip(np.floor(project(s.xyz, s.K)).astype(int), s.visibility, strict=True):
            if code == VISIBLE:
                assert padded[v : v + 3, u : u + 3].any()  # 3x3 neighbourhood of (u, v)


def test_all_visibility_codes_occur(samples: list[Sample]) -> None:
    codes = np.concatenate([s.visibility for s in samples])
    assert set(codes) == {VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_written_layout_and_scale(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", n=5, seed=1, workers=1, progress=False)
    root = tmp_path / "ds"
    assert len(list(layout.rgb_dir(root).glob("*.jpg"))) == 5
    assert len(list(layout.mask_dir(root).glob("*.jpg"))) == 5
    xyz = np.array(json.loads((root / layout.XYZ_FILE).read_text()), np.float32)
    scale = np.array(json.loads((root / layout.SCALE_FILE).read_text()), np.float32)
    vis = np.array(json.loads((root / layout.VISIBILITY_FILE).read_text()))
    assert xyz.shape == (5, 21, 3) and vis.shape == (5, 21)
    # float32 values: the written scale and the length recomputed here differ by a few eps (1.2e-7).
    np.testing.assert_allclose(scale, np.linalg.norm(xyz[:, SCALE_BONE[0]] - xyz[:, SCALE_BONE[1]], axis=-1), rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind


def test_deterministic_whatever_the_workers(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", n=9, seed=4, workers=1, progress=False)
    write_dataset(tmp_path / "b", n=9, seed=4, workers=1, progress=False)
    write_dataset(tmp_path / "c", n=9, seed=4, workers=2, progress=False)
    a = _files(tmp_path / "a")
    assert len(a) == 9 * 2 + 4
    assert a == _files(tmp_path / "b") == _files(tmp_path / "c")
    write_dataset(tmp_path / "d", n=9, seed=5, workers=1, progress=False)
    assert a[layout.XYZ_FILE] != _files(tmp_path / "d")[layout.XYZ_FILE]


def test_rewrite_replaces_old_root(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", n=4, seed=0, workers=1, progress=False)
    write_dataset(tmp_path / "ds", n=2, seed=0, workers=1, progress=False)
    assert len(list(layout.rgb_dir(tmp_path / "ds").iterdir())) == 2


def _fail_on_third_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = synthetic_write.render_sample, []

    def flaky(rng: np.random.Generator, look: np.random.Generator | None = None) -> Sample:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(rng, look)

    monkeypatch.setattr(synthetic_write, "render_sample", flaky)  # the name the writer calls


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_third_sample(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset(tmp_path / "ds", n=6, seed=0, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_old_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dataset(tmp_path / "ds", n=2, seed=0, workers=1, progress=False)
    before = _files(tmp_path / "ds")
    _fail_on_third_sample(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset(tmp_path / "ds", n=6, seed=1, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"] and _files(tmp_path / "ds") == before
