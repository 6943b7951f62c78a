"""The reproduction's claim machinery (xbar.claims): rows to cells, paired differences, crossings."""

import pytest

from xbar.claims import Check, Results, cell, combine, crossing, difference, drops, mean_absolute_difference


def _row(name, chip, acc, **params):
    return {"weights": f"data/weights/{name}", "chip": str(chip), "accuracy": str(acc), **params}


def test_results_group_rows_by_file_parameters_and_chip_order():
    rows = [
        _row("a.h5", 1, 0.8, sigma_syn="0.025"),
        _row("a.h5", 0, 0.9, sigma_syn="0.025"),
        _row("a.h5", 0, 0.95, sigma_syn="0.0"),
        _row("a.h5", 0, 0.7, sigma_syn="0.025", syn_mode="read"),
    ]
    res = Results(rows)
    assert res.chips("a.h5", sigma_syn=0.025) == [0.9, 0.8]  # by chip index, whatever the row order
    assert res.chips("a.h5") == [0.95]  # sigma_syn defaults to 0, syn_mode to static
    assert res.chips("a.h5", sigma_syn=0.025, syn_mode="read") == [0.7]
    assert res.groups(["a.h5", "missing.h5"], sigma_syn=0.025) == [[0.9, 0.8]]


def test_difference_pairs_by_seed_and_chip_and_refuses_what_does_not_pair():
    a, b = [[0.9, 0.8], [0.7, 0.6]], [[0.85, 0.75], [0.6, 0.55]]
    test = difference("a - b", a, b, 1)
    assert test.mean == pytest.approx((0.05 + 0.075) / 2)  # the mean of the seeds' mean differences
    assert test.verdict in ("holds", "not resolved")
    assert difference("x", [[0.9, 0.8]], [[0.9]], 1) is None
    assert difference("x", [], b, 1) is None


def test_drops_are_from_each_seeds_noise_free_mean():
    out = drops([[0.9, 0.9], [0.8, 0.8]], [[0.85, 0.7], [0.8, 0.6]])
    assert [x for g in out for x in g] == pytest.approx([0.05, 0.2, 0.0, 0.2])


def test_combined_verdicts():
    holds, no, open_ = (Check("c", 0.1, (0.05, 0.15), v) for v in ("holds", "does not hold", "not resolved"))
    assert combine([holds, holds]) == "holds"
    assert combine([holds, open_]) == "not resolved"
    assert combine([holds, open_, no]) == "does not hold"
    assert combine([]) == "not run"


def test_crossing_interpolates_linearly_and_says_never():
    xs = [0.0, 0.1, 0.2, 0.3]
    assert crossing(xs, [0.0, 1.0, 3.0, 6.0], 2.0) == pytest.approx(0.15)
    assert crossing(xs, [0.0, 1.0, 3.0, 6.0], 0.0) == 0.0
    assert crossing(xs, [0.0, 1.0, 3.0, 6.0], 7.0) is None


def test_cell_and_mad():
    c = cell([[0.9, 0.92], [0.94, 0.96], [0.9, 0.9]])
    assert c.mean == pytest.approx((0.91 + 0.95 + 0.9) / 3) and c.seeds == 3 and c.chips == 2
    assert cell([]) is None
    assert mean_absolute_difference([(97.0, 96.0), (90.0, 92.0)]) == pytest.approx(1.5)
