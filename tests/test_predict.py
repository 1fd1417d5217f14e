import json

import cv2
import numpy as np
import pytest

from handpose.camera import FRAME_SIZE, project
from handpose.cli import main
from handpose.data import layout
from handpose.predict import frame_intrinsics

from .conftest import tiny_config, train_tiny


def test_frame_intrinsics_follow_the_crop_and_resize():
    K = np.array([[900.0, 0, 330], [0, 880, 250], [0, 0, 1]])
    xyz = np.array([[0.03, -0.02, 0.7], [-0.05, 0.04, 0.5]])
    x0, y0, side = 80, 10, 480
    expected = (project(xyz, K) - [x0, y0]) * FRAME_SIZE / side
    # frame_intrinsics is float32 (eps 1.2e-7): a projection through it is within a few eps of the exact one.
    np.testing.assert_allclose(project(xyz, frame_intrinsics(K, x0, y0, side).astype(np.float64)), expected, rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_model(tiny_split, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.pt"
    train_tiny(tiny_config("m_cos_2"), tiny_split, path, progress=False)
    return path


def test_predict_writes_joints_and_overlays(tiny_model, tiny_dataset, tmp_path):
    wide = tmp_path / "wide.jpg"
    image = cv2.imread(str(layout.rgb_path(tiny_dataset, 0)))
    cv2.imwrite(str(wide), cv2.copyMakeBorder(image, 0, 0, 60, 100, cv2.BORDER_CONSTANT))  # 384 x 224
    out = tmp_path / "joints.json"
    args = [
        "predict",
        str(wide),
        str(layout.rgb_path(tiny_dataset, 1)),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--overlay-dir",
        str(tmp_path / "overlays"),
        "--K",
        "480",
        "480",
        "172",
        "112",
    ]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert len(results) == 2
    first = results[0]
    assert first["joints"][0] == "wrist" and len(first["uv_px"]) == 21 and len(first["xyz_mm"]) == 21
    uv = np.array(first["uv_px"])
    assert (uv[:, 0] >= 80).all() and (uv[:, 0] <= 80 + 224).all()  # in the centre crop (x 80-304), image pixels
    # The wrist sits at --root-depth: float32 metres round by ~1e-4 mm, and 0.1 mm is far below any pose error.
    assert np.array(first["xyz_mm"])[0, 2] == pytest.approx(600.0, abs=0.1)
    overlay = cv2.imread(first["overlay"])
    assert overlay.shape == (224, 384, 3)


def test_predict_bad_input_exits_2_naming_it(tiny_model, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.jpg"), "--model", str(tiny_model)]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.jpg"), "--model", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
