"""The benchmark scripts run and print the JSON they promise (on a tiny model; speed itself is not tested)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Each test runs a benchmark script in a process of its own (torch's import and a tiny training or more).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(input_size=32, mlp_width=32, hourglass={"features": 16, "stacks": 2, "depth": 4})
    path = tmp_path_factory.mktemp("bench") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300
    )


def run_benchmark(script: str, *args: str) -> dict:
    result = run_script(script, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(script: str, *args: str) -> str:
    """The one-line error of a run that must be refused: exit 2 (argparse's), no traceback."""
    result = run_script(script, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_training_speed_compares_ours_with_the_reference_loop(tiny_params):
    out = run_benchmark("training_speed.py", "--params", str(tiny_params), "--steps", "2", "--sizes", "default")
    default = out["default"]
    assert default["train_samples_per_s_ours"] > 0 and default["train_samples_per_s_reference"] > 0
    # speedup is ours / reference rounded to 0.01, from the speeds before the JSON rounds them to 0.1: it lies
    # in the range of ratios the rounded speeds allow, widened by 0.005. No fixed relative bound fits: at a
    # speedup of 0.2, the rounding to 0.01 alone moves it by 2.5%.
    ours, reference = default["train_samples_per_s_ours"], default["train_samples_per_s_reference"]
    low, high = (ours - 0.05) / (reference + 0.05), (ours + 0.05) / (reference - 0.05)
    assert low - 0.005 - 1e-9 <= default["speedup"] <= high + 0.005 + 1e-9, (ours, reference, default["speedup"])
    assert out["heatmaps_per_s_21x64x64"] > 0 and out["peak_rss_mb"] > 0
    assert default["inference_images_per_s_batch1"] > 0 and default["inference_images_per_s_batch32"] > 0


def test_model_speed_reports_every_variant(tiny_params):
    out = run_benchmark("model_speed.py", "--params", str(tiny_params), "--steps", "1", "--sizes", "default")
    assert set(out["sizes"]["default"]) == {"baseline", "m_cos_1", "m_cos_2", "m_asm"}


def test_model_speed_rounds_report_their_median_and_the_same_weights(tiny_params):
    out = run_benchmark(
        "model_speed.py", "--params", str(tiny_params), "--steps", "1", "--sizes", "default",
        "--variants", "m_cos_2", "--optimizers", "flat", "foreach", "--rounds", "3",
    )  # fmt: skip
    assert out["rounds"] == 3 and set(out["sizes"]) == {"default flat", "default foreach"}
    for case in out["sizes"].values():
        run = case["m_cos_2"]
        assert len(run["samples_per_s_rounds"]) == 3 and run["same_weights_every_round"]
        # the median of three speeds, each already rounded to 0.1, is one of them
        assert run["samples_per_s"] in run["samples_per_s_rounds"]
    # the two optimisers train the same bytes (tests/test_step.py asserts it too)
    assert len({case["m_cos_2"]["weights_sha256"] for case in out["sizes"].values()}) == 1


def test_full_scale_memory_runs_every_stage_and_reports_its_peak(tiny_params, tmp_path):
    out = run_benchmark(
        "full_scale_memory.py", "--work", str(tmp_path / "w"), "--params", str(tiny_params),
        "--poses", "12", "--versions", "2", "--n-test", "4",
    )  # fmt: skip
    assert out["images"] == 24 and out["train_samples"] == 16
    for stage in ("data", "split", "heatmaps", "train_one_epoch"):
        assert out[stage]["peak_rss_mb"] > 0 and out[stage]["seconds"] > 0
    assert out["peak_rss_mb"] == max(out[s]["peak_rss_mb"] for s in ("data", "split", "heatmaps", "train_one_epoch"))
    assert not (tmp_path / "w").exists()  # removed unless --keep


def test_device_speed_falls_back_to_the_cpu_and_projects_both_make_targets(tiny_params):
    """Without a GPU the device benchmark still measures every case, checks two runs for identical
    weights and projects the training time of `make repro` and `make paper` from its own speeds."""
    out = run_benchmark(
        "device_speed.py",
        "--params",
        str(tiny_params),
        "--device",
        "cpu",
        "--steps",
        "1",
        "--sizes",
        "default",
        "paper",
    )
    assert out["device"].startswith("cpu")
    assert set(out["cases"]) == {"default fp32", "default bf16", "paper fp32", "paper bf16"}
    assert all(case["samples_per_s"] > 0 for case in out["cases"].values())
    assert out["two_runs_identical_weights"] is True  # setup_torch's deterministic kernels
    params = yaml.safe_load(tiny_params.read_text())
    best = {s: max(out["cases"][f"{s} {p}"]["samples_per_s"] for p in ("fp32", "bf16")) for s in ("default", "paper")}
    assert out["projected"]["make_paper_training_s"] == round(100 * 3200 * len(params["variants"]) / best["paper"])
    assert out["projected"]["make_repro_training_s"] > 0


def test_model_speed_times_each_batch_size_asked_for(tiny_params):
    out = run_benchmark(
        "model_speed.py", "--params", str(tiny_params), "--steps", "1", "--sizes", "default",
        "--variants", "m_cos_2", "--batches", "2", "5",
    )  # fmt: skip
    assert set(out["sizes"]) == {"default batch 2", "default batch 5"}
    assert [out["sizes"][f"default batch {b}"]["m_cos_2"]["batch"] for b in (2, 5)] == [2, 5]


def test_model_speed_refuses_no_rounds_or_no_steps(tiny_params):
    for flag in ("--rounds", "--steps", "--batches"):
        assert "must be at least 1" in refusal("model_speed.py", "--params", str(tiny_params), flag, "0")
