import json

import cv2
import numpy as np
import pytest
import yaml

from handpose import predict
from handpose.camera import FRAME_SIZE, project
from handpose.cli import main
from handpose.data import layout
from handpose.data.freihand import open_freihand
from handpose.predict import SEARCH_ZOOMS, frame_intrinsics

from .conftest import ROOT, tiny_config, train_tiny


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
        "--box",  # a model trained for seconds finds no hand (its heatmaps' peaks stay near 0.03)
        "60,0,224,224",
    ]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert len(results) == 2
    first = results[0]
    assert first["joints"][0] == "wrist" and len(first["uv_px"]) == 21 and len(first["xyz_mm"]) == 21
    x0, y0, side = first["crop"]  # the second pass's square, in the image's pixels
    assert side >= 16 and first["hand"] == "right"
    # The wrist sits at --root-depth: float32 metres round by ~1e-4 mm, and 0.1 mm is far below any pose error.
    assert np.array(first["xyz_mm"])[0, 2] == pytest.approx(600.0, abs=0.1)
    overlay = cv2.imread(first["overlay"])
    assert overlay.shape == (224, 384, 3)


def oracle(true_xyz: np.ndarray, peak: float = 0.8, sharpest_when_framed: bool = False):
    """An `infer` that sees a right hand perfectly: its true joints projected with the frame's K, each
    joint's heatmap peaking at `peak` where it lies inside the frame and at 0 outside it. With
    `sharpest_when_framed`, the peaks also fall in proportion as the hand spans less of the frame than
    the training framing (predict.FRAMING_SPAN), as a model's do on hands smaller than it learnt."""

    def infer(model, split, with_peaks=False, views=None, with_spread=False):
        uv = project(true_xyz, split["K"][0].astype(np.float64))
        inside = ((uv >= 0) & (uv < FRAME_SIZE)).all(-1)
        span = (uv.max(0) - uv.min(0)).max() / FRAME_SIZE
        framed = min(1.0, span / predict.FRAMING_SPAN) if sharpest_when_framed else 1.0
        peaks = np.where(inside, peak * framed, 0.0)[None]
        return {"uv": uv[None], "xyz": true_xyz[None], "peaks": peaks, "spread": np.zeros(1)}

    return infer


def oracle_search(photo_uv: np.ndarray, photo_shape: tuple[int, int], finds_at: tuple[int, ...] = SEARCH_ZOOMS):
    """A `locate` that finds the hand's true joints at the zooms `finds_at` of the search, and elsewhere a
    small hand in the photo's corner farthest from it."""
    h, w = photo_shape
    side = max(h, w)
    corner = np.array([(w - side) // 2, (h - side) // 2])
    corners = np.array([[40, 40], [w - 40, 40], [40, h - 40], [w - 40, h - 40]])
    far = corners[np.argmax(np.linalg.norm(corners - photo_uv.mean(0), axis=1))]
    elsewhere = (photo_uv - photo_uv.mean(0)) * 0.1 + far
    size_in = tiny_config("m_cos_2").model.input_size

    def locate(backbone, image):
        size = image.shape[0]
        uv = photo_uv if size // size_in in finds_at else elsewhere
        return (uv - corner + 0.5) * size / side - 0.5

    return locate


def photo_with_a_hand(tiny_dataset, path, at: tuple[int, int], side: int) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 photo holding dataset image 0 shrunk or grown to `side` px at `at`; its K and joints."""
    data = open_freihand(tiny_dataset)
    frame = cv2.imread(str(layout.rgb_path(tiny_dataset, 0)))
    photo = np.full((480, 640, 3), 90, np.uint8)
    x, y = at
    photo[y : y + side, x : x + side] = cv2.resize(frame, (side, side), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), photo)
    K = np.diag([side / FRAME_SIZE, side / FRAME_SIZE, 1.0]) @ data.K[0]
    K[0, 2] += x
    K[1, 2] += y
    return K, data.xyz[0].astype(np.float64)


@pytest.mark.parametrize("at, side, finds_at", [((420, 260), 150, (3,)), ((0, 0), 480, (1,)), ((60, 40), 300, (2, 3))])
def test_two_passes_find_the_hand_and_frame_it_as_in_training(
    tiny_model, tiny_dataset, tmp_path, monkeypatch, at, side, finds_at
):
    """The search's zooms find the hand at some zooms and something else at the others; the second pass
    keeps the square it is surest of, the one around the hand."""
    photo = tmp_path / "photo.png"
    K, xyz = photo_with_a_hand(tiny_dataset, photo, at, side)
    monkeypatch.setattr(predict, "infer", oracle(xyz))
    monkeypatch.setattr(predict, "locate", oracle_search(project(xyz, K), (480, 640), finds_at))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    (result,) = predict.predict_images(tiny_model, [photo], K=(fx, fy, cx, cy), out=tmp_path / "j.json")
    true_uv = project(xyz, K)
    # A perfect model stays perfect through both passes: the only error is float32's.
    np.testing.assert_allclose(result["uv_px"], true_uv, atol=0.02)
    x0, y0, crop = result["crop"]
    extent = (true_uv.max(0) - true_uv.min(0)).max()
    assert crop == pytest.approx(extent / predict.FRAMING_SPAN, abs=1)  # the training framing's margin
    centre = (true_uv.max(0) + true_uv.min(0)) / 2
    np.testing.assert_allclose([x0 + crop / 2, y0 + crop / 2], centre, atol=1)


def test_joints_found_on_the_background_are_left_out_of_the_square(tiny_model, tiny_dataset, tmp_path, monkeypatch):
    """At the zoom that finds a small hand, three joints land in the photo's far corner instead: the square
    is framed on the joints near the others (here the hand's whole box), not on all 21."""
    photo = tmp_path / "photo.png"
    K, xyz = photo_with_a_hand(tiny_dataset, photo, (420, 260), 150)
    true_uv = project(xyz, K)
    extremes = {int(i) for i in (*true_uv.argmin(0), *true_uv.argmax(0))}
    inner = [j for j in range(len(true_uv)) if j not in extremes][:3]  # the rest span the hand's whole box
    found = true_uv.copy()
    found[inner] = [40.0, 40.0]
    monkeypatch.setattr(predict, "infer", oracle(xyz, sharpest_when_framed=True))
    monkeypatch.setattr(predict, "locate", oracle_search(found, (480, 640), (3,)))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    (result,) = predict.predict_images(tiny_model, [photo], K=(fx, fy, cx, cy), out=tmp_path / "j.json")
    np.testing.assert_allclose(result["uv_px"], true_uv, atol=0.02)
    extent = (true_uv.max(0) - true_uv.min(0)).max()
    assert result["crop"][2] == pytest.approx(extent / predict.FRAMING_SPAN, abs=1)  # not the corner's too


class TwoSquares:
    """A `predict._Camera` whose search finds a hand and something else. The model peaks higher on the
    something else, and its views even agree there, as the search framed it; framed anew on the joints
    it found there, the square holds nothing its views agree on. In the hand's squares they always do."""

    model_path = "m.pt"

    def __init__(self, hand_uv: np.ndarray):
        self.hand_uv = hand_uv
        self.junk_uv = np.linspace([20.0, 30.0], [60.0, 50.0], 21)  # in the photo's top-left corner

    def search(self, rgb):
        return [self.junk_uv, self.hand_uv]

    def see(self, rgb, x0, y0, side):
        if x0 + side < 200:  # a square in the corner
            spread = 1.0 if (x0, y0, side) == predict.framing(self.junk_uv) else 9.0
            junk = self.junk_uv[::-1] * 0.5 + [x0 + side / 4, y0 + side / 4]  # wherever the square is
            return {"uv": junk, "xyz": np.zeros((21, 3)), "peak": 0.9, "spread": spread}
        return {"uv": self.hand_uv, "xyz": np.zeros((21, 3)), "peak": 0.5, "spread": 2.0}


def test_of_the_squares_with_a_hand_the_one_whose_views_agree_when_framed_anew_is_kept(tiny_dataset, tmp_path):
    photo = tmp_path / "photo.png"
    K, xyz = photo_with_a_hand(tiny_dataset, photo, (420, 260), 150)
    camera = TwoSquares(project(xyz, K))
    result = predict._predict_one(camera, photo, None, "right", None)
    np.testing.assert_allclose(result["uv_px"], camera.hand_uv, atol=0.005)  # rounded to 0.01
    assert result["crop"] == list(predict.framing(camera.hand_uv)) and result["peak"] == 0.5
    assert result["views_spread_px"] == round(2.0 * result["crop"][2] / FRAME_SIZE, 2)  # in the photo's px


def test_predict_sees_through_the_params_views(tiny_model, tiny_dataset, tmp_path):
    """`handpose predict` takes its views from params.yaml's evaluate section: one view agrees with itself."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    spreads = {}
    for name, rolls, zooms in (("one", [0], [1]), ("nine", [-20, 0, 20], [0.85, 1, 1.15])):
        params["evaluate"] = {"rolls": rolls, "zooms": zooms}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
        out = tmp_path / f"{name}.json"
        image = str(layout.rgb_path(tiny_dataset, 0))
        args = ["predict", image, "--model", str(tiny_model), "--box", "0,0,224,224", "--out", str(out)]
        assert main([*args, "--params", str(tmp_path / f"{name}.yaml")]) == 0
        spreads[name] = json.loads(out.read_text())[0]["views_spread_px"]
    assert spreads["one"] == 0 and spreads["nine"] > 0


def test_no_hand_found_is_refused_writing_nothing(tiny_model, tiny_dataset, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "photo.png"
    K, xyz = photo_with_a_hand(tiny_dataset, photo, (0, 0), 100)
    monkeypatch.setattr(predict, "infer", oracle(xyz, peak=0.05))
    monkeypatch.setattr(predict, "locate", oracle_search(project(xyz, K), (480, 640)))
    args = ["predict", str(photo), "--model", str(tiny_model), "--out", str(tmp_path / "j.json")]
    assert main([*args, "--overlay-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no hand found" in err and "--box" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "j.json").exists() and not list((tmp_path).glob("o/*"))
    assert main([*args, "--box", "0,0,100,100"]) == 0  # a box skips the pass that finds the hand


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hand", "both"], "--hand: must be one of right, left, got 'both'"),
        (["--box", "1,2,3"], "--box: expected x,y,w,h"),
        (["--box", "0,0,-5,10"], "--box: expected x,y,w,h"),
    ],
)
def test_bad_hand_or_box_is_refused_in_one_line(tiny_model, tiny_dataset, tmp_path, capsys, flags, message):
    out = tmp_path / "j.json"
    args = ["predict", str(layout.rgb_path(tiny_dataset, 0)), "--model", str(tiny_model), "--out", str(out), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_predict_bad_input_exits_2_naming_it(tiny_model, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.jpg"), "--model", str(tiny_model)]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.jpg"), "--model", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
