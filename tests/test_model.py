import pytest
import torch

from handpose.config import ModelConfig
from handpose.model.hourglass import capped_depth
from handpose.model.pose_net import HandPoseNet, build_model

CPU_SIZE = dict(
    input_size=64,
    backbone="hourglass",
    hourglass={"features": 32, "stacks": 2, "depth": 4},
    mlp_depth=2,
    mlp_width=128,
    dropout=[0.3, 0.4],
    uv="soft_argmax",
)
PAPER_SIZE = dict(
    input_size=256,
    backbone="hourglass",
    hourglass={"features": 256, "stacks": 2, "depth": 4},
    mlp_depth=2,
    mlp_width=1024,
    dropout=[0.3, 0.4, 0.5],
    uv="argmax",
)


def network(settings: dict) -> HandPoseNet:
    return build_model(ModelConfig.model_validate(settings), image_size=224)


def inputs(b, size):
    K = torch.tensor([[500.0, 0, 112], [0, 500, 112], [0, 0, 1]]).expand(b, 3, 3)
    return torch.randn(b, 3, size, size), K, torch.full((b,), 0.6), torch.full((b,), 0.03)


@pytest.mark.parametrize(
    "kwargs",
    [CPU_SIZE, PAPER_SIZE, {**CPU_SIZE, "input_size": 32, "hourglass": {"features": 32, "stacks": 1, "depth": 4}}],
    ids=["cpu", "paper", "tiny"],
)
def test_shapes(kwargs):
    torch.manual_seed(0)
    model = network(kwargs)
    b, size = 2, kwargs["input_size"]
    out = model(*inputs(b, size))
    assert len(out["heatmaps"]) == kwargs["hourglass"]["stacks"]
    assert out["heatmaps"][-1].shape == (b, 21, size // 4, size // 4)
    assert out["uv"].shape == (b, 21, 2) and out["xyz"].shape == (b, 21, 3)
    # The root sits at the given depth; the MLP only moves the other 20 joints.
    torch.testing.assert_close(out["xyz"][:, 0, 2], torch.full((b,), 0.6))  # float32's defaults: ~10 eps


def test_paper_size_latent_is_4096():
    model = network(PAPER_SIZE)
    assert model.latent.dim == 4096
    assert [m.out_features for m in model.mlp if isinstance(m, torch.nn.Linear)] == [1024, 256, 20]


def test_bottleneck_never_reaches_1x1():
    assert capped_depth(4, 64) == 4 and capped_depth(4, 16) == 3 and capped_depth(4, 8) == 2
    assert capped_depth(4, 4) == 1


def test_gradients_reach_the_image_features_through_soft_argmax():
    model = network(CPU_SIZE)
    out = model(*inputs(2, 64))
    out["uv"].sum().backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
