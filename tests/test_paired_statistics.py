"""The paired statistics: a known improvement is found, noise is not, training noise widens the interval,
and the report words the paper's claims by what is significant."""

import numpy as np
import pytest

from handpose.comparison import holm, interval, paired_differences, seed_interval
from handpose.report import compare, paper_claims

SAMPLES = 200  # the test split's size


def baseline_errors(seeds: int, rng: np.random.Generator) -> np.ndarray:
    """Per-sample pose errors (mm) shaped like the test split's: about 40 mm, spread 15 between hands."""
    hands = 40 + 15 * rng.standard_normal(SAMPLES)
    return hands + 2 * rng.standard_normal((seeds, SAMPLES))  # each seed a little different per hand


@pytest.mark.parametrize("seeds", [1, 3])
def test_a_2_mm_improvement_on_every_sample_is_significant_and_its_interval_covers_2(seeds):
    base = baseline_errors(seeds, np.random.default_rng(0))
    (row,) = paired_differences({"baseline": base, "better": base - 2.0}, "baseline")
    assert row["significant"] and row["p_holm"] < 1e-10
    assert row["low"] <= -2.0 <= row["high"] and row["difference"] == pytest.approx(-2.0)


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_baseline_plus_noise_is_not_found_significant(seeds):
    # Under the null the test errs in about 5% of draws: of 20 independent ones, 4 or more would be
    # a 1.6% event for a calibrated test, and what a test that ignores the noise would do.
    found = 0
    for draw in range(20):
        rng = np.random.default_rng(100 + draw)
        base = baseline_errors(seeds, rng)
        (row,) = paired_differences({"baseline": base, "noisy": base + 3 * rng.standard_normal(base.shape)}, "baseline")
        found += row["significant"]
    assert found <= 3


def test_training_noise_belongs_in_the_interval():
    # Each seed shifts every hand by its own offset (another seed, another machine): the seed-averaged
    # differences all share one sign, so Wilcoxon alone would call it significant; resampling the seeds
    # puts that noise in the interval, which then covers 0.
    rng = np.random.default_rng(1)
    base = baseline_errors(3, rng)
    shifted = base + np.array([[-1.5], [0.2], [1.0]]) + 0.1 * rng.standard_normal(base.shape)
    (row,) = paired_differences({"baseline": base, "m_seedy": shifted}, "baseline")
    assert row["p"] < 1e-10
    assert row["low"] < 0 < row["high"] and not row["significant"]
    # The same per-hand differences from one seed hold the test-sample noise only: significant.
    (one,) = paired_differences({"baseline": base[:1], "m_seedy": shifted[:1]}, "baseline")
    assert one["significant"]


def test_every_pair_is_compared_the_reference_first_and_holm_adjusts_over_them():
    rng = np.random.default_rng(2)
    base = baseline_errors(1, rng)
    errors = {"a": base - 1, "baseline": base, "b": base + 1}
    rows = paired_differences(errors, "baseline")
    assert [(r["first"], r["second"]) for r in rows] == [("baseline", "a"), ("baseline", "b"), ("a", "b")]
    assert [r["difference"] for r in rows] == pytest.approx([-1, 1, 2])
    assert all(r["p_holm"] >= r["p"] for r in rows)


def test_holm_matches_its_definition():
    # Sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, then max(1 x 0.04, 0.06) (monotone).
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 x 0.5, then kept monotone


def test_intervals_resample_seeds_only_when_there_are_several():
    rng = np.random.default_rng(3)
    base = baseline_errors(3, rng) + np.array([[-3.0], [0.0], [3.0]])  # seeds far apart
    _, pooled_low, pooled_high = interval(base.mean(0, keepdims=True))  # the same means, seeds not resampled
    _, low, high = interval(base)
    # Over hands the mean's sd is 15 / sqrt(200) = 1.06 mm; resampling 3 seeds at -3, 0, +3 adds sqrt(6 / 3)
    # = 1.41 in quadrature (1.77 in all): 1.67x as wide. Without the seeds resampled it would be ~1.0x.
    assert high - low > 1.3 * (pooled_high - pooled_low)
    assert seed_interval([5.0]) == (5.0, None, None)
    assert seed_interval([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)  # agreeing seeds: an interval of no width
    mean, low, high = seed_interval([4.0, 5.0, 6.0])
    assert mean == 5.0 and 4.0 <= low < mean < high <= 6.0


def predictions(errors_mm: dict[str, float], seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Predictions whose every joint is off by the given distance along x, per variant."""
    rng = np.random.default_rng(4)
    true = rng.standard_normal((SAMPLES, 21, 3)) * 0.03 + np.array([0, 0, 0.7])
    out = {}
    for name, mm in errors_mm.items():
        noise = rng.standard_normal((len(seeds), SAMPLES, 1, 1)) * 0.002
        xyz = true[None] + np.concatenate([mm / 1000 + noise, 0 * noise, 0 * noise], axis=-1)
        out[name] = {"xyz": xyz, "true_xyz": true, "seeds": np.array(seeds)}
    return out


def test_the_report_refuses_to_pair_variants_trained_on_other_seeds():
    found = predictions({"baseline": 10, "m_cos_2": 8}, [0])
    found["m_cos_2"]["seeds"] = np.array([1])
    with pytest.raises(ValueError, match=r"variants trained different seeds .*baseline.*m_cos_2"):
        compare(found)


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
def test_the_paper_claims_are_worded_by_significance(seeds):
    reference, differences = compare(predictions({"baseline": 12, "m_cos_1": 12, "m_cos_2": 9}, seeds))
    assert reference == "baseline"
    lines = paper_claims(reference, differences["pose"], {}, len(seeds))
    (cos2,) = [line for line in lines if line.startswith("- m_cos_2 beats baseline")]
    (cos1,) = [line for line in lines if line.startswith("- m_cos_1 beats baseline")]
    assert ("**holds**" if len(seeds) > 1 else "holds for this seed's models") in cos2
    assert "not shown" in cos1
