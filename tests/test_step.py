"""The training step's optimiser: RMSprop over one flat buffer trains exactly as torch's per-tensor one."""

import pytest
import torch

from handpose.model.hourglass import StackedHourglass
from handpose.step import FlatRMSprop

SIZE = 32  # input px: 8x8 heatmaps


def trained(flat: bool, bf16: bool, steps: int = 6) -> StackedHourglass:
    """A small channels_last hourglass after `steps` RMSprop steps on fixed random data; midway, the
    module's own zero_grad() sets every .grad to None, as user code might."""
    torch.manual_seed(0)
    model = StackedHourglass(2, 16, 21, 2).to(memory_format=torch.channels_last)
    optimizer = FlatRMSprop(model, lr=1e-2) if flat else torch.optim.RMSprop(model.parameters(), lr=1e-2, foreach=True)
    images = torch.randn(4, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    targets = torch.rand(4, 21, SIZE // 4, SIZE // 4)
    for step in range(steps):
        if step == steps // 2:
            model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            heatmaps, _ = model(images)
        loss = sum(((h.float() - targets) ** 2).sum() for h in heatmaps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_flat_rmsprop_trains_bit_for_bit_as_per_tensor_rmsprop(bf16):
    torch.manual_seed(0)
    start = StackedHourglass(2, 16, 21, 2).state_dict()
    reference, flat = trained(False, bf16).state_dict(), trained(True, bf16).state_dict()
    assert not torch.equal(reference["heads.1.weight"], start["heads.1.weight"])  # it did train
    assert reference.keys() == flat.keys()
    assert all(torch.equal(reference[k], flat[k]) for k in reference), [
        k for k in reference if not torch.equal(reference[k], flat[k])
    ]


def test_the_parameters_keep_their_memory_format_and_live_in_one_buffer():
    model = StackedHourglass(1, 16, 21, 2).to(memory_format=torch.channels_last)
    optimizer = FlatRMSprop(model, lr=1e-3)
    (flat,) = optimizer.param_groups[0]["params"]
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for p in model.parameters())
    assert flat.numel() == sum(p.numel() for p in model.parameters())


def test_parameters_of_mixed_dtypes_are_refused():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double())
    with pytest.raises(ValueError, match="one dtype"):
        FlatRMSprop(model, lr=1e-3)


def test_a_submodules_lr_factor_scales_its_steps_and_leaves_the_rest_as_they_were():
    """A factor of 0 freezes the backbone's weights, and 0.1 slows them; a factor of 1 changes nothing."""

    def stepped(factors: dict | None, steps: int = 3) -> tuple[dict, dict]:
        torch.manual_seed(0)
        model = torch.nn.ModuleDict({"backbone": torch.nn.Linear(3, 4), "head": torch.nn.Linear(4, 2)})
        before = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = FlatRMSprop(model, lr=1e-2, lr_factors=factors)
        optimizer.set_lr(1e-2)
        for _ in range(steps):
            optimizer.zero_grad()
            model["head"](model["backbone"](torch.randn(5, 3))).square().sum().backward()
            optimizer.step()
        return before, model.state_dict()

    before, plain = stepped(None)
    _, frozen = stepped({"backbone": 0.0})
    for key in ("backbone.weight", "backbone.bias"):
        assert torch.equal(frozen[key], before[key]) and not torch.equal(plain[key], before[key])
    # Two param groups at factor 1 are one group split in two: bit for bit the same weights.
    _, split = stepped({"backbone": 1.0})
    assert all(torch.equal(split[k], plain[k]) for k in plain)
    # One step from the same weights sees the same gradients, so it moves the backbone a tenth as far
    # (to float32's rounding of weight minus weight, ~1e-7 of steps ~1e-2) and the head as far.
    before, plain = stepped(None, steps=1)
    _, slower = stepped({"backbone": 0.1}, steps=1)
    for key in plain:
        factor = 0.1 if key.startswith("backbone") else 1.0
        torch.testing.assert_close(slower[key] - before[key], factor * (plain[key] - before[key]), rtol=1e-4, atol=0)
