"""inference.infer's views: each image also seen through rolled and zoomed cameras, the 3D joints averaged."""

import numpy as np
import torch

from handpose.augment import roll, roll_matrices
from handpose.camera import project
from handpose.inference import infer
from handpose.model.pose_net import build_model

from .conftest import tiny_config


def untrained_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_config("m_cos_2").model, image_size=224)


def test_views_average_what_each_camera_sees_brought_back_to_the_image_camera(tiny_split):
    model, split = untrained_model(), dict(tiny_split["test"])
    plain = infer(model, split)
    one_view = infer(model, split, views=[(0, 1)], with_spread=True)
    np.testing.assert_array_equal(one_view["xyz"], plain["xyz"])  # the image alone: as without views
    np.testing.assert_array_equal(one_view["uv"], plain["uv"])
    np.testing.assert_array_equal(one_view["spread"], 0)  # one view agrees with itself

    # A rolled view is the image rolled (as pretraining rolls it), its joints turned back; both warp the
    # same pixels, so only the matmul's float32 rounding (eps 1.2e-7 of ~0.6 m) parts them: 1e-6 m.
    angle = np.radians(25.0)
    rolled_images, _ = roll(np.array(split["images"]), split["xyz"], split["K"], np.full(len(split["K"]), angle))
    by_hand = infer(model, {**split, "images": rolled_images})["xyz"] @ roll_matrices(np.array([angle]))[0]
    rolled = infer(model, split, views=[(25.0, 1)])
    np.testing.assert_allclose(rolled["xyz"], by_hand, atol=1e-6)
    # and its 2D joints are in the image's frame, not the rolled one's
    np.testing.assert_allclose(rolled["uv"], project(rolled["xyz"], split["K"]), atol=1e-3)

    # Several views: the mean of each one's joints, and the 2D joints their projection.
    views = [(25.0, 1), (0, 0.85), (-20.0, 1.15)]
    each = [infer(model, split, views=[v])["xyz"] for v in views]
    together = infer(model, split, views=views, with_spread=True)
    np.testing.assert_allclose(together["xyz"], np.mean(each, 0), atol=1e-6)
    np.testing.assert_allclose(together["uv"], project(together["xyz"], split["K"]), atol=1e-3)
    # Their spread: how far each view's joints project from the mean's, per image, in the image's px.
    apart = [np.linalg.norm(project(xyz, split["K"]) - together["uv"], axis=-1).mean(1) for xyz in each]
    np.testing.assert_allclose(together["spread"], np.mean(apart, 0), atol=1e-3)
    assert (together["spread"] > 0.01).all()
    assert not np.allclose(together["xyz"], plain["xyz"], atol=1e-4)  # the views did see something else
