"""Our training step against a plain reference loop, in one run, at the default and the paper's size.
Prints JSON: training samples/s of both and their ratio, heatmap generation samples/s, inference
images/s at batch 1 and 32, and peak RSS.

The reference is what the public baseline code does: the same model in fp32 NCHW, fed by a
`Dataset` that decodes the JPEG and draws the heatmaps in `__getitem__`, through a DataLoader,
with PyTorch's default (per-tensor) RMSprop. Ours: images decoded once into a uint8 array, heatmaps
drawn once, channels_last, the training loop's RMSprop over one flat buffer, and bf16 autocast where `train.bf16`
picks it (`auto`: a CPU with native bf16); ours is measured in fp32 and bf16 either way.

    python benchmarks/training_speed.py [--params params.yaml] [--steps 20] [--sizes default paper]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from handpose.camera import project
from handpose.config import VariantConfig, heatmap_side, load_params
from handpose.configure import variant_config
from handpose.data.freihand import open_freihand
from handpose.data.synthetic import write_dataset
from handpose.device import uses_bf16
from handpose.heatmaps import HEATMAP_CHUNK, gaussian_heatmaps
from handpose.inference import infer
from handpose.losses import Batch, term_settings
from handpose.model.pose_net import build_model, root_relative_in_scale, to_input
from handpose.skeleton import ROOT
from handpose.step import DivergenceCheck, FlatRMSprop
from handpose.step import train_step as one_step

sys.path.insert(0, str(Path(__file__).parent))  # model_speed, beside this script
from model_speed import sized_model  # noqa: E402

VARIANT = "m_cos_2"


class JpegDataset(Dataset):
    """The reference input pipeline: decode, resize and draw the heatmaps for every sample, every epoch."""

    def __init__(self, root: Path, size: int, sigma: float):
        self.data, self.size, self.sigma = open_freihand(root), size, sigma

    def __len__(self) -> int:
        return self.data.num_images

    def __getitem__(self, i: int) -> dict:
        image = cv2.resize(self.data.read_rgb(i), (self.size, self.size), interpolation=cv2.INTER_AREA)
        pose = self.data.pose_index(i)
        uv = project(self.data.xyz[pose], self.data.K[pose])[None]
        heatmaps = gaussian_heatmaps(uv, 224, heatmap_side(self.size), self.sigma)[0]
        xyz, K, scale = self.data.xyz[pose], self.data.K[pose], self.data.scale[pose]
        return {"image": image, "heatmaps": heatmaps, "xyz": xyz, "K": K, "scale": np.float32(scale)}


CHECK = DivergenceCheck(lambda step: "training_speed: diverged", "", torch.device("cpu"))


def train_step(model, optimizer, config: VariantConfig, batch: dict, channels_last: bool, bf16: bool) -> None:
    xyz, scale = batch["xyz"], batch["scale"]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(to_input(batch["image"], channels_last), batch["K"], xyz[:, ROOT, 2], scale)
    pred = root_relative_in_scale(out["xyz"], xyz[:, ROOT], scale)
    true = root_relative_in_scale(xyz, xyz[:, ROOT], scale)
    settings = {t: term_settings(t, values) for t, values in config.term_settings.items()}
    terms = Batch(pred, true, out["heatmaps"], batch["heatmaps"].float())
    one_step(optimizer, terms, config.losses, [], settings, CHECK, 0)


def samples_per_s(
    config: VariantConfig, batches, steps: int, channels_last: bool, bf16: bool, flat: bool = True
) -> float:
    torch.manual_seed(0)
    model = build_model(config.model, image_size=224)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = FlatRMSprop(model, lr=1e-4) if flat else torch.optim.RMSprop(model.parameters(), lr=1e-4)
    batches = iter(batches)
    train_step(model, optimizer, config, next(batches), channels_last, bf16)  # warm-up, not timed
    tic, n = time.perf_counter(), 0
    for _ in range(steps):
        batch = next(batches)
        train_step(model, optimizer, config, batch, channels_last, bf16)
        n += len(batch["image"])
    return n / (time.perf_counter() - tic)


def forever(loader):
    while True:
        yield from loader


def in_memory_batches(dataset: JpegDataset, batch: int):
    """Ours: everything decoded and drawn once, then batches are index lookups."""
    items = [dataset[i] for i in range(len(dataset))]
    arrays = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}
    arrays["heatmaps"] = arrays["heatmaps"].half()
    g = torch.Generator().manual_seed(0)
    while True:
        order = torch.randperm(len(items), generator=g)
        for s in range(len(items) // batch):
            idx = order[s * batch : (s + 1) * batch]
            yield {k: v[idx] for k, v in arrays.items()}


def inference_images_per_s(config: VariantConfig, batch: int, repeats: int) -> float:
    model = build_model(config.model, image_size=224).eval()
    size = config.model.input_size
    split = {
        "images": np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
        "K": np.tile(np.array([[480, 0, 112], [0, 480, 112], [0, 0, 1]], np.float32), (batch, 1, 1)),
        "xyz": np.full((batch, 21, 3), 0.6, np.float32),
        "scale": np.full(batch, 0.03, np.float32),
    }
    infer(model, split, batch_size=batch)  # warm-up
    tic = time.perf_counter()
    for _ in range(repeats):
        infer(model, split, batch_size=batch, channels_last=config.train.channels_last)
    return batch * repeats / (time.perf_counter() - tic)


def heatmaps_per_s(
    n: int = 4000, side: int = 64, sigma: float = 2.0, dtype: type = np.float32, fresh: bool = False
) -> float:
    """Heatmaps drawn per second into memory already in use (a reused batch buffer, or a file's pages);
    `fresh`: into a new n-sample array, so the first touch of its pages is counted too."""
    uv = np.random.default_rng(0).uniform(0, 224, (n, 21, 2))
    out = None if fresh else np.ones((HEATMAP_CHUNK, 21, side, side), dtype)
    gaussian_heatmaps(uv[:64], 224, side, sigma, dtype)  # warm-up
    tic = time.perf_counter()
    if fresh:
        gaussian_heatmaps(uv, 224, side, sigma, dtype)
    else:
        for start in range(0, n, HEATMAP_CHUNK):
            gaussian_heatmaps(uv[start : start + HEATMAP_CHUNK], 224, side, sigma, out=out)
    return n / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per case (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    args = parser.parse_args()
    params = load_params(args.params)
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    results: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "variant": VARIANT}
    results["heatmaps_per_s_21x64x64"] = round(heatmaps_per_s())
    results["heatmaps_per_s_21x64x64_float16"] = round(heatmaps_per_s(dtype=np.float16))  # what the stage stores
    results["heatmaps_per_s_21x64x64_into_a_new_array"] = round(heatmaps_per_s(fresh=True))
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp) / "data", n=64, seed=0, workers=1, progress=False)
        for size in args.sizes:
            model = sized_model(params.model, size)  # the paper's: model_speed.PAPER_MODEL
            config = variant_config(params.model_copy(update={"model": model}), VARIANT)
            steps = args.steps if size == "default" else max(2, args.steps // 10)
            dataset = JpegDataset(Path(tmp) / "data", config.model.input_size, params.heatmap.sigma)
            batch = config.train.batch_size
            loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
            reference = samples_per_s(config, forever(loader), steps, channels_last=False, bf16=False, flat=False)
            fp32, bf16 = (
                samples_per_s(config, in_memory_batches(dataset, batch), steps, config.train.channels_last, autocast)
                for autocast in (False, True)
            )
            ours = bf16 if uses_bf16(config.train, torch.device("cpu")) else fp32  # what train.bf16 picks here
            results[size] = {
                "input_size": config.model.input_size,
                "backbone": {config.model.backbone: config.model.backbone_settings},
                "batch": batch,
                "train_samples_per_s_ours": round(ours, 1),
                "train_samples_per_s_reference": round(reference, 1),
                "speedup": round(ours / reference, 2),
                "train_samples_per_s_ours_fp32": round(fp32, 1),
                "train_samples_per_s_ours_bf16": round(bf16, 1),
                "speedup_fp32": round(fp32 / reference, 2),
                "inference_images_per_s_batch1": round(
                    inference_images_per_s(config, 1, 20 if size == "default" else 2), 1
                ),
                "inference_images_per_s_batch32": round(
                    inference_images_per_s(config, 32, 3 if size == "default" else 1), 1
                ),
            }
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
