"""`handpose convert`: your images and labels -> the interchange layout, with K moved to the 224 frame."""

import json

import cv2
import numpy as np
import pytest

from handpose.camera import FRAME_SIZE, intrinsics, project
from handpose.cli import main
from handpose.data.freihand import open_freihand

from .test_bad_inputs import left_behind, refused

# A hand 0.5 m away, near the optical axis, in a camera with a 600 px focal length.
XYZ = (np.random.default_rng(0).normal(0, 0.03, (21, 3)) + [0.0, 0.0, 0.5]).round(4)


def write_case(folder, width: int, height: int) -> dict:
    """A black `width` x `height` image with a white dot where the wrist projects, and its labels entry."""
    K = intrinsics(600.0, 600.0, width / 2, height / 2)
    image = np.zeros((height, width, 3), np.uint8)
    u, v = project(XYZ, K)[0]
    cv2.circle(image, (round(u), round(v)), 6, (255, 255, 255), -1)
    name = f"{width}x{height}.png"
    cv2.imwrite(str(folder / name), image)
    return {"image": name, "xyz": XYZ.tolist(), "K": K.tolist()}


def test_any_image_size_lands_in_the_224_frame_with_its_k_moved_along(tmp_path):
    (tmp_path / "mine").mkdir()
    entries = [write_case(tmp_path / "mine", w, h) for w, h in ((640, 480), (300, 500), (224, 224))]
    entries[1]["scale"] = 0.031
    (tmp_path / "labels.json").write_text(json.dumps(entries))
    out = tmp_path / "layout"
    assert main(["convert", "--images", str(tmp_path / "mine"), "--labels", str(tmp_path / "labels.json")]
                + ["--out", str(out), "-q"]) == 0  # fmt: skip
    data = open_freihand(out)  # the pipeline's own reader accepts it
    assert data.num_poses == data.num_images == 3
    for i in range(3):
        frame = data.read_rgb(i)
        assert frame.shape == (FRAME_SIZE, FRAME_SIZE, 3)
        wrist = project(data.xyz[i], data.K[i])[0]
        rows, cols = np.nonzero(frame[..., 0] > 127)
        centre = np.array([cols.mean(), rows.mean()])
        # The dot was drawn at the wrist's projection rounded to a pixel (up to 0.71 px off); its centre of
        # mass lands within that, plus a fraction of a pixel of resampling, of the new K's projection.
        assert np.linalg.norm(wrist - centre) < 1.2, (i, wrist, centre)
    np.testing.assert_allclose(data.xyz, np.stack([XYZ] * 3), atol=1e-6)
    assert data.scale[1] == pytest.approx(0.031)
    assert data.scale[0] == pytest.approx(np.linalg.norm(XYZ[9] - XYZ[10]), rel=1e-6)  # SCALE_BONE by default


@pytest.mark.parametrize(
    "labels, named",
    [
        ("[", "labels.json: not a readable JSON"),
        ("[]", "labels.json: expected a non-empty list"),
        ('[{"image": "a.png"}]', "labels.json: entry 0: expected an object with image, xyz and K"),
        ('[{"image": "a.png", "xyz": [[0, 0, 1]], "K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]', "entry 0: xyz must be"),
        ('[{"image": "nope.png", "xyz": XYZ, "K": [[600, 0, 50], [0, 600, 50], [0, 0, 1]]}]', "nope.png"),
    ],
)
def test_bad_labels_or_images_are_one_line_naming_them_and_leave_nothing(labels, named, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "labels.json").write_text(labels.replace("XYZ", json.dumps(XYZ.tolist())))
    argv = ["convert", "--images", str(tmp_path / "mine"), "--labels", str(tmp_path / "labels.json")]
    refused(capsys, [*argv, "--out", str(tmp_path / "layout"), "-q"], named)
    assert left_behind(tmp_path / "layout") == [] and not (tmp_path / "layout").exists()
