"""Which differences between variants are real: paired, per-sample statistics over the shared test hands.

Every variant is scored on the same test hands, so two variants are compared sample by sample. An
interval is a bootstrap (scipy.stats.bootstrap) over the test samples and, with several seeds, over the
seeds too (both resampled independently), so it holds the training noise as well as the test set's.
The test is Wilcoxon's signed-rank (scipy.stats.wilcoxon) on the per-sample differences averaged over
seeds, Holm-corrected over the comparisons of one metric.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 4999
ALPHA = 0.05


def interval(errors: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """The mean of (S seeds, N samples) `errors` and its bootstrap interval, resampling samples and,
    when S > 1, seeds."""
    errors = np.asarray(errors, dtype=np.float64)
    seeds, samples = errors.shape
    if np.ptp(errors) <= 1e-9 * (1 + np.abs(errors).max()):  # no spread to resample (BCa would give NaN)
        return float(errors.mean()), float(errors.mean()), float(errors.mean())
    rng = np.random.default_rng(seed)
    if seeds > 1:
        data = (np.arange(seeds), np.arange(samples))

        def statistic(s: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
            return errors[s[..., :, None], n[..., None, :]].mean(axis=(-1, -2))

        # Percentile: BCa's jackknife is degenerate over a handful of seeds.
        method = "percentile"
    else:
        data = (np.arange(samples),)

        def statistic(n: np.ndarray, axis: int = -1) -> np.ndarray:
            return errors[0][n].mean(axis=-1)

        method = "BCa"
    result = stats.bootstrap(
        data, statistic, n_resamples=RESAMPLES, batch=500, vectorized=True, confidence_level=CONFIDENCE,
        method=method, rng=rng,
    )  # fmt: skip
    low, high = result.confidence_interval
    return float(errors.mean()), float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: each p-value times the number of hypotheses not yet rejected,
    kept monotone and at most 1."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_differences(errors: dict[str, np.ndarray], reference: str) -> list[dict]:
    """Every pair of variants, each against `reference` first: the mean per-sample difference
    (second minus first, in the errors' unit; negative: the second is better), its interval, the
    Wilcoxon p-value on the seed-averaged differences and its Holm adjustment over these pairs.

    `errors` maps a variant to its (S seeds, N samples) errors; seeds pair by position (every variant
    trains the same `train.seed` list)."""
    names = list(errors)
    pairs = [(reference, other) for other in names if other != reference]
    pairs += [(a, b) for a, b in combinations([n for n in names if n != reference], 2)]
    rows = []
    for first, second in pairs:
        a, b = errors[first], errors[second]
        if a.shape != b.shape:
            raise ValueError(f"{first} and {second}: errors of shapes {a.shape} and {b.shape} do not pair")
        difference = b - a
        mean, low, high = interval(difference)
        per_sample = difference.mean(0)
        p = 1.0 if not np.any(per_sample) else float(stats.wilcoxon(per_sample).pvalue)
        rows.append({"first": first, "second": second, "difference": mean, "low": low, "high": high, "p": p})
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["p_holm"] = adjusted
        row["significant"] = adjusted < ALPHA and not row["low"] <= 0 <= row["high"]
    return rows


def seed_interval(values: list[float], seed: int = 0) -> tuple[float, float | None, float | None]:
    """The mean of one value per seed and its bootstrap interval over seeds (None with one seed; the
    value itself when every seed agrees)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), None, None
    if np.all(values == values[0]):  # no spread to resample
        return float(values[0]), float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    low, high = result.confidence_interval
    return float(values.mean()), float(low), float(high)
