"""Nested and paired summaries of accuracies over training seeds and chip instances (xbar.stats)."""

import math

import numpy as np
import pytest

from xbar.stats import bounded_interval, paired_difference, summarize, summarize_nested, verdict


def test_nested_mean_is_the_mean_of_seed_means_and_its_interval_their_logit_t_interval():
    groups = [[0.90, 0.91, 0.95], [0.92, 0.93, 0.93], [0.85, 0.90, 0.86]]
    out = summarize_nested(groups)
    means = np.array([np.mean(g) for g in groups])
    m, se = means.mean(), means.std(ddof=1) / math.sqrt(3)
    half = 4.303 * se / (m * (1 - m))
    centre = math.log(m / (1 - m))
    assert out["mean"] == pytest.approx(m, rel=1e-12)
    assert (out["groups"], out["n"]) == (3, 9)
    low, high = out["ci95"]
    assert math.log(low / (1 - low)) == pytest.approx(centre - half, rel=1e-9)
    assert math.log(high / (1 - high)) == pytest.approx(centre + half, rel=1e-9)


def test_nested_interval_covers_the_spread_between_seeds_that_chips_alone_hide():
    # Every chip of a seed gives the same accuracy: chips alone would claim no spread at all.
    groups = [[0.80] * 5, [0.90] * 5, [0.85] * 5]
    pooled = summarize([a for g in groups for a in g])
    nested = summarize_nested(groups)
    assert nested["ci95"][1] - nested["ci95"][0] > pooled["ci95"][1] - pooled["ci95"][0]
    assert nested["ci95"][0] < 0.80 and nested["ci95"][1] > 0.90


def test_one_group_is_chips_only():
    assert summarize_nested([[0.5, 0.6, 0.7]])["ci95"] == summarize([0.5, 0.6, 0.7])["ci95"]


def test_bounded_interval_inside_0_1_and_degenerate_at_the_bounds():
    assert bounded_interval(1.0, 0.0, 2) == (1.0, 1.0)
    low, high = bounded_interval(0.99, 0.05, 2)
    assert 0 < low < 0.99 < high < 1


def test_paired_difference_uses_seed_means_as_replicates():
    a = [[0.9, 0.8], [0.7, 0.75], [0.6, 0.7]]
    b = [[0.85, 0.8], [0.7, 0.7], [0.6, 0.6]]
    d = np.array([np.mean(np.subtract(x, y)) for x, y in zip(a, b)])
    out = paired_difference(a, b)
    half = 4.303 * d.std(ddof=1) / math.sqrt(3)
    assert out["mean"] == pytest.approx(d.mean())
    assert out["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert out["df"] == 2
    # One group: the chips' paired differences are the replicates.
    one = paired_difference([[0.9, 0.8, 0.7]], [[0.8, 0.8, 0.6]])
    assert one["df"] == 2 and one["mean"] == pytest.approx(0.2 / 3)
    with pytest.raises(ValueError):
        paired_difference([[0.9, 0.8]], [[0.9]])


@pytest.mark.parametrize(
    ("ci", "sign", "expected"),
    [([0.01, 0.02], 1, "holds"), ([0.01, 0.02], -1, "does not hold"), ([-0.01, 0.02], 1, "not resolved"),
     (None, 1, "not resolved"), ([-0.03, -0.01], -1, "holds")],
)
def test_verdict(ci, sign, expected):
    assert verdict(ci, sign) == expected
