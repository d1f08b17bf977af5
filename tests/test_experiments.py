"""Tests of Figures 2-5 (§5.1) through the registry and the runner: cells, cache, resume,
claim checks (lthbook.claims), plots (lthbook.synthetic_plots), timing helpers.

The runs here use tiny custom settings (``overrides``) so the whole file takes seconds;
the real presets are exercised by the chapter and the CLI. The claim checks are tested
on synthetic result dictionaries that satisfy or violate each claim.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lthbook import claims, presets, registry, runner, stats, style, synthetic_plots, timing  # noqa: E402
from lthbook import synthetic_experiments as se  # noqa: E402
from lthbook.cache import ResultCache  # noqa: E402
from lthbook.scales import SCALES  # noqa: E402

TINY = {
    "fig2": {"K": 2, "d": 10, "N": 80, "r_values": [3, 5, 7], "distances": [0.3, 1.0, 3.0], "trials": 3,
             "chunk": 2, "max_iter": 300},
    "fig3": {"K": 2, "d": 10, "N": 200, "r_values": [3, 6, 9], "trials": 2, "chunk": 2, "max_iter": 400,
             "eta": "auto"},
    "fig4": {"K": 2, "d": 10, "r_values": [2, 4], "N_values": [4, 12, 30], "trials": 2, "chunk": 2,
             "max_iter": 300},
    "fig5": {"K": 2, "d": 10, "N": 100, "r_values": [2, 4, 6], "noise_levels": [0.01, 0.1], "trials": 2,
             "chunk": 1, "max_iter": 300},
}

SYNTHETIC = tuple(name for name, spec in registry.FIGURES.items() if spec.section == "5.1")

DOCUMENTED_KEYS = {"figure", "title", "claim", "scale", "seed", "device", "threads", "settings", "eta", "axes", "raw",
                   "cells", "cells_from_cache", "cell_time_s", "wall_time_s", "versions", "created"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def tiny(name, tmp_path=None, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("workers", 1)  # in this process, where the monkeypatched sessions below apply
    if tmp_path is None:
        kwargs.setdefault("cache", False)
    else:
        kwargs.setdefault("cache_dir", tmp_path)
    return runner.run_figure(name, "ci", kwargs.pop("seed", 0), overrides=TINY[name], **kwargs)


# --------------------------------------------------------------------------- presets


def test_presets_cover_every_scale_with_the_same_keys():
    for name in SYNTHETIC:
        assert set(presets.PRESETS[name]) == set(SCALES)
        keys = set(presets.PRESETS[name]["ci"])
        for scale in SCALES:
            assert set(presets.PRESETS[name][scale]) == keys
            registry.figure_settings(name, scale)  # validates


def test_paper_presets_use_the_papers_numbers():
    p = {name: presets.PRESETS[name]["paper"] for name in SYNTHETIC}
    assert (p["fig2"]["K"], p["fig2"]["d"], p["fig2"]["N"], p["fig2"]["trials"]) == (5, 500, 3000, 100)
    assert (p["fig3"]["K"], p["fig3"]["d"], p["fig3"]["N"], p["fig3"]["betas"]) == (5, 300, 3000, [0.2, 0.0])
    assert presets.resolve_eta(p["fig3"]["eta"], 5) == 12.5
    assert (p["fig4"]["d"], p["fig4"]["trials"]) == (100, 100)
    assert (p["fig5"]["K"], p["fig5"]["d"], p["fig5"]["N"]) == (10, 300, 1000)
    for name in ("fig2", "fig4", "fig5"):
        assert (p[name]["max_iter"], p[name]["tol"], p[name]["success_tol"]) == (10_000, 1e-8, 1e-4)


# --------------------------------------------------------------------------- runner


@pytest.mark.parametrize("name", SYNTHETIC)
def test_run_figure_returns_documented_json(name, tmp_path):
    res = tiny(name, tmp_path)
    assert DOCUMENTED_KEYS <= set(res)
    assert res["figure"] == name and res["scale"] == "ci" and res["seed"] == 0 and res["device"] == "cpu"
    assert set(res["versions"]) == {"python", "numpy", "torch", "lthbook"}
    assert res["settings"]["r_values"] == TINY[name]["r_values"]
    json.dumps(res, allow_nan=False)  # strict JSON
    assert res["cells"] == len(registry.get(name).experiment.cells(res["settings"]))
    fig = runner.plot_figure(res)
    assert isinstance(fig, Figure)


def test_fig2_raw_statistics_are_consistent():
    res = tiny("fig2")
    succ = np.array(res["raw"]["success"])
    trials = np.array(res["raw"]["trials"])
    err = np.array(res["raw"]["rel_error"])
    assert succ.shape == trials.shape == (3, 3) and np.all(trials == 3)
    assert err.shape == (3, 3, 3)
    assert np.array_equal(succ, (err < 1e-4).sum(axis=1))  # no run diverged in this setting
    assert res["cells"] == 3 * 2  # 3 trials in chunks of 2


def test_fig2_far_block_adds_cells_without_touching_the_grid_cells(tmp_path):
    plain = tiny("fig2", tmp_path)
    far = runner.run_figure("fig2", "ci", 0, progress=False, workers=1, cache_dir=tmp_path,
                            overrides={**TINY["fig2"], "far_distances": [6.0, 20.0], "far_r_values": [3, 5]})
    # the grid's cells come from the cache (same keys), only the far block is new: 2 r x 2 chunks
    assert far["cells_from_cache"] == plain["cells"] and far["cells"] == plain["cells"] + 4
    assert far["raw"]["success"] == plain["raw"]["success"] and far["axes"] == plain["axes"]
    block = far["raw"]["far"]
    assert block["r"] == [3, 5] and block["distance"] == [6.0, 20.0]
    assert np.array(block["rel_error"]).shape == (2, 3, 2) and np.all(np.array(block["trials"]) == 3)
    dist, rate = claims.fig2_success(far)
    assert dist.tolist() == [0.3, 1.0, 3.0, 6.0, 20.0]
    assert np.isnan(rate[2, 3:]).all() and np.isfinite(rate[:2]).all()  # r = 7 has no far block
    assert isinstance(runner.plot_figure(far), Figure)
    for bad, match in (({"far_distances": [2.0], "far_r_values": [3]}, "far_distances"),
                       ({"far_distances": [6.0], "far_r_values": [4]}, "subset"),
                       ({"far_distances": [], "far_r_values": [3]}, "far_distances")):
        with pytest.raises(ValueError, match=match):
            registry.figure_settings("fig2", "ci", {**TINY["fig2"], **bad})


def test_cells_of_another_device_are_reused_only_when_asked(tmp_path):
    first = tiny("fig2", tmp_path / "cpu")
    store = ResultCache(tmp_path / "cpu")
    cells = registry.get("fig2").experiment.plan("fig2", first["settings"], 0, "cpu")
    for folder in ("plain", "reuse"):
        other = ResultCache(tmp_path / folder)
        for cell in cells[:4]:  # pretend these were computed on a GPU: same payload, key with device "cuda"
            other.put({**cell.config, "device": "cuda"}, store.get(cell.config))
    plain = tiny("fig2", tmp_path / "plain")
    assert plain["cells_from_cache"] == 0 and "cells_by_device" not in plain
    reused = runner.run_figure("fig2", "ci", 0, progress=False, workers=1, cache_dir=tmp_path / "reuse",
                               overrides=TINY["fig2"], reuse_cells_from=["cuda"])
    assert reused["cells_from_cache"] == 4 and reused["cells_by_device"] == {"cpu": 2, "cuda": 4}
    assert reused["raw"] == first["raw"]
    for bad, error in (("cuda", TypeError), (["tpu"], ValueError)):
        with pytest.raises(error, match="reuse_cells_from"):
            runner.run_figure("fig2", "ci", 0, progress=False, cache=False, overrides=TINY["fig2"],
                              reuse_cells_from=bad)


def test_fig2_radius_reads_the_far_block():
    res = fake_fig2([9, 9, 4.2, 3.1, 2.2, 1.1], r=(10, 16, 22, 27, 32, 37))
    # a far block for the first two r: r = 10 still succeeds at 40 (censored), r = 16 fails from 12 on
    res["raw"]["far"] = {"r": [10, 16], "distance": [8.0, 12.0, 40.0], "success": [[10, 10, 10], [10, 0, 0]],
                         "trials": [[10] * 3, [10] * 3], "diverged": [[0] * 3, [0] * 3]}
    rad = claims.success_radius(res)
    assert rad["status"][:2] == ["above", "ok"] and rad["radius"][0] == 40.0
    assert 8.0 < rad["radius"][1] < 12.0
    assert claims.check_fig2(res)["fitted"] == [False, True, True, True, True, True]


def test_same_seed_same_numbers_and_cache_gives_identical_results(tmp_path):
    a = tiny("fig2")
    b = tiny("fig2")
    c = tiny("fig2", tmp_path)
    d = tiny("fig2", tmp_path)  # read back
    assert d["cells_from_cache"] == d["cells"]
    for other in (b, c, d):
        assert other["raw"] == a["raw"] and other["axes"] == a["axes"]
    e = tiny("fig2", seed=1)
    assert e["raw"]["rel_error"] != a["raw"]["rel_error"]


def test_cells_do_not_depend_on_the_grid_they_sit_in():
    """A cell's randomness depends only on (seed, figure, seed_key): dropping other r values
    or changing the chunking of later trials does not change it."""
    full = tiny("fig2")
    one = runner.run_figure("fig2", "ci", 0, cache=False, progress=False, overrides={**TINY["fig2"], "r_values": [5]})
    assert one["raw"]["rel_error"][0] == full["raw"]["rel_error"][1]


def test_resume_recomputes_only_missing_cells(tmp_path, monkeypatch):
    first = tiny("fig2", tmp_path)
    store = ResultCache(tmp_path)
    cells = registry.get("fig2").experiment.cells(first["settings"])
    victim = store.path_for(se.cell_config("fig2", cells[3], 0, "cpu"))
    victim.unlink()
    calls = []
    real = se._AgdSession.compute

    def counting(session, cell, previous=None):
        calls.append(cell.config)
        return real(session, cell, previous)

    monkeypatch.setattr(se._AgdSession, "compute", counting)
    second = tiny("fig2", tmp_path)
    assert len(calls) == 1 and calls[0]["r"] == cells[3]["r"] and calls[0]["chunk"] == cells[3]["chunk"]
    assert second["cells_from_cache"] == second["cells"] - 1
    assert second["raw"] == first["raw"]


def test_interrupted_run_keeps_finished_cells(tmp_path, monkeypatch):
    real = se._AgdSession.compute
    calls = []

    def dies_on_third(session, cell, previous=None):
        calls.append(cell.config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(session, cell, previous)

    monkeypatch.setattr(se._AgdSession, "compute", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        tiny("fig4", tmp_path)
    assert len(list((tmp_path / "fig4").glob("*.json"))) == 2
    calls.clear()
    monkeypatch.setattr(se._AgdSession, "compute", lambda session, cell, previous=None: (
        calls.append(cell.config), real(session, cell, previous))[1])
    res = tiny("fig4", tmp_path)
    assert res["cells_from_cache"] == 2 and len(calls) == res["cells"] - 2


def test_corrupted_cache_entry_is_recomputed(tmp_path):
    first = tiny("fig5", tmp_path)
    files = sorted((tmp_path / "fig5").glob("*.json"))
    files[0].write_text(files[0].read_text()[:50])
    with pytest.warns(UserWarning, match="corrupted"):
        second = tiny("fig5", tmp_path)
    assert second["cells_from_cache"] == second["cells"] - 1
    assert second["raw"] == first["raw"]


def test_fig3_agd_and_gd_share_problems_and_rates_are_fitted():
    res = tiny("fig3")
    nu = res["raw"]["nu"]
    assert np.array(nu["AGD"]).shape == (3, 2)
    assert np.all(np.isfinite(nu["AGD"])) and np.all(np.isfinite(nu["GD"]))
    curves = res["raw"]["curves"]["AGD"]
    assert len(curves) == 3 and curves[0]["mean_log10_error"][0] == pytest.approx(-1.0)  # distance 0.1
    cells = registry.get("fig3").experiment.cells(res["settings"])
    assert cells[0]["seed_key"] == cells[1]["seed_key"] and cells[0]["beta"] != cells[1]["beta"]


def test_fig5_noise_levels_share_everything_but_the_noise_scale():
    res = tiny("fig5")
    err = np.array(res["raw"]["rel_error"])  # (levels, r, trials)
    assert err.shape == (2, 3, 2)
    ratio = err[1] / err[0]
    assert np.all((ratio > 5) & (ratio < 20))  # 10x the noise, about 10x the error


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "fig9"}, "figure name"),
        ({"name": "fig2", "scale": "huge"}, "scale"),
        ({"name": "fig2", "seed": -1}, "seed"),
        ({"name": "fig2", "device": "tpu"}, "device"),
        ({"name": "fig2", "threads": 0}, "threads"),
        ({"name": "fig2", "progress": "yes"}, "progress"),  # wrong type: TypeError
        ({"name": "fig2", "overrides": {"nonsense": 1}}, "unknown setting"),
        ({"name": "fig2", "overrides": {"r_values": [10, 60]}}, "r_values"),
        ({"name": "fig2", "overrides": {"r_values": [20, 10]}}, "increasing"),
        ({"name": "fig2", "overrides": {"distances": [0.5, -1.0]}}, "distances"),
        ({"name": "fig2", "overrides": {"beta": 1.0}}, "beta"),
        ({"name": "fig2", "overrides": {"eta": "fast"}}, "eta"),
        ({"name": "fig2", "overrides": {"trials": 0}}, "trials"),
        ({"name": "fig2", "overrides": {"K": 2.5}}, "K"),
        ({"name": "fig3", "overrides": {"betas": [0.2, 0.1]}}, "betas"),
        ({"name": "fig3", "overrides": {"fit_window": [1e-3, 1e-11]}}, "fit_window"),
        ({"name": "fig5", "overrides": {"noise_levels": [0.1]}}, "noise_levels"),
        ({"name": "fig2", "overrides": [("K", 2)]}, "overrides"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    """A bad value raises ValueError, a value of the wrong type TypeError; both name the parameter."""
    name = kwargs.pop("name")
    kwargs.setdefault("scale", "ci")
    kwargs.setdefault("progress", False)
    wrong_type = (kwargs["progress"] == "yes" or isinstance(kwargs.get("overrides"), list)
                  or kwargs.get("overrides") == {"K": 2.5})
    with pytest.raises(TypeError if wrong_type else ValueError, match=match):
        runner.run_figure(name, cache=False, **kwargs)


def test_estimate_run_time_counts_every_cell():
    est = timing.estimate_run_time("fig2", "ci", sample_iterations=2, overrides=TINY["fig2"], shapes=[0, 2])
    assert [row["shape"] for row in est["shapes"]] == [[3], [5], [7]]
    assert [row["measured"] for row in est["shapes"]] == [True, False, True]
    assert all(row["cells"] == 2 and row["iterations"] == 300 for row in est["shapes"])
    assert est["total_s"] == pytest.approx(sum(row["seconds"] for row in est["shapes"]))
    est4 = timing.estimate_run_time("fig4", "ci", sample_iterations=2, overrides=TINY["fig4"], iterations={2: 50})
    assert len(est4["shapes"]) == 6 and {row["iterations"] for row in est4["shapes"]} == {50, 300}
    with pytest.raises(ValueError, match="sample_iterations"):
        timing.estimate_run_time("fig2", "ci", sample_iterations=0)


# --------------------------------------------------------------------------- helpers


def test_fit_rate_recovers_a_geometric_rate():
    t = np.arange(200)
    err = 0.1 * 0.93**t
    assert stats.fit_rate(t, err, [1e-11, 1e-3]) == pytest.approx(0.93, rel=1e-10)
    # a stopped run's history repeats its last value: the frozen tail is ignored
    frozen = np.concatenate([err[:150], np.full(50, err[149])])
    assert stats.fit_rate(t, frozen, [1e-11, 1e-3]) == pytest.approx(0.93, rel=1e-10)
    assert np.isnan(stats.fit_rate(t[:3], err[:3], [1e-11, 1e-3]))


def test_crossing():
    x = [1.0, 2.0, 3.0, 4.0]
    assert stats.crossing(x, [1, 1, 0, 0]) == (2.5, "ok")
    assert stats.crossing(x, [1, 1, 1, 1]) == (4.0, "above")
    assert stats.crossing(x, [0.2, 0, 0, 0]) == (1.0, "below")
    assert stats.crossing(x, [0, 0.25, 0.75, 1], decreasing=False) == (2.5, "ok")
    assert stats.crossing(x, [0, 0, 0, 0], decreasing=False) == (4.0, "below")
    with pytest.raises(ValueError):
        stats.crossing([1.0], [1.0])


# --------------------------------------------------------------------------- claim checks on synthetic data


def fake_fig2(radii, distances=(0.5, 1, 1.5, 2, 2.5, 3, 4, 5), r=(22, 27, 32, 37, 42), trials=10):
    dist = np.asarray(distances, dtype=float)
    succ = [[trials if d_ <= rad else 0 for d_ in dist] for rad in radii]
    return {"figure": "fig2", "settings": {"K": 5, "d": 50, "N": 300, "trials": trials},
            "scale": "ci", "seed": 0,
            "axes": {"r": list(r), "sqrt_r": np.sqrt(r).tolist(), "distance": dist.tolist()},
            "raw": {"success": succ, "trials": [[trials] * len(dist)] * len(r),
                    "diverged": [[0] * len(dist)] * len(r)}}


def test_check_fig2_passes_on_a_linearly_shrinking_radius_and_fails_otherwise():
    out = claims.check_fig2(fake_fig2([4.2, 3.4, 2.6, 1.7, 0.9]))
    assert out["slope"] < 0 and out["r2"] > 0.9
    with pytest.raises(claims.ClaimError, match="shrink"):
        claims.check_fig2(fake_fig2([0.9, 1.7, 2.6, 3.4, 4.2]))  # larger r succeeds more
    with pytest.raises(claims.ClaimError, match="trivial"):
        claims.check_fig2(fake_fig2([9, 9, 9, 9, 9]))  # everything succeeds: no boundary
    bad = fake_fig2([4.2, 3.4, 2.6, 1.7, 0.9])
    bad["raw"]["diverged"][0] = [1] + [0] * 7
    with pytest.raises(claims.ClaimError, match="diverged"):
        claims.check_fig2(bad)
    with pytest.raises(ValueError, match="fig2"):
        claims.check_fig2({"figure": "fig3"})


def test_check_fig2_fits_only_the_r_whose_boundary_is_inside_the_grid():
    # the first two r succeed at every distance of the grid: their "radius" is the grid's end
    res = fake_fig2([9, 9, 4.2, 3.1, 2.2, 1.1], r=(10, 16, 22, 27, 32, 37))
    rad = claims.success_radius(res)
    assert rad["censored"] == [True, True, False, False, False, False]
    out = claims.check_fig2(res)
    assert out["fitted"] == [False, False, True, True, True, True]
    inside = np.sqrt([22, 27, 32, 37])
    fit = stats.linear_fit(inside, np.asarray(rad["radius"])[2:])
    assert out["slope"] == pytest.approx(fit.slope) and out["r2"] == pytest.approx(fit.r2)
    # every r fails already at the smallest distance but the last ones: censored from below
    assert claims.success_radius(fake_fig2([0.1, 0.1, 4, 3, 2]))["censored"] == [True, True, False, False, False]
    with pytest.raises(ValueError, match="inside the distance grid"):
        claims.check_fig2(fake_fig2([9, 9, 9, 2.2, 1.1]))  # two measured radii cannot test a line


def fake_fig3(nu_agd, nu_gd, r=(10, 25, 40, 55, 70)):
    return {"figure": "fig3", "settings": {"K": 5, "d": 100, "N": 1000, "trials": 2, "betas": [0.2, 0.0],
                                           "eta": "paper"},
            "scale": "ci", "seed": 0, "axes": {"r": list(r), "sqrt_r": np.sqrt(r).tolist()},
            "raw": {"nu": {"AGD": [[v, v + 1e-4] for v in nu_agd], "GD": [[v, v + 1e-4] for v in nu_gd]},
                    "diverged": {"AGD": [0] * len(r), "GD": [0] * len(r)},
                    "curves": {"AGD": [{"iterations": [0, 1, 2], "mean_log10_error": [-1, -1.1, -1.2]}] * len(r)}}}


def test_check_fig3():
    sq = np.sqrt([10, 25, 40, 55, 70])
    agd = 0.85 + 0.015 * sq
    out = claims.check_fig3(fake_fig3(agd, agd + 0.01))
    assert out["AGD"]["slope"] > 0 and min(out["gd_minus_agd"]) > 0
    with pytest.raises(claims.ClaimError, match="AGD is not faster"):
        claims.check_fig3(fake_fig3(agd, agd - 0.01))
    with pytest.raises(claims.ClaimError, match="does not grow"):
        claims.check_fig3(fake_fig3(agd[::-1], agd[::-1] + 0.01))
    nan = fake_fig3(agd, agd + 0.01)
    nan["raw"]["nu"]["GD"][0][0] = None
    with pytest.raises(claims.ClaimError, match="fit window"):
        claims.check_fig3(nan)


def fake_fig4(threshold, r=(4, 8, 12, 16, 20), N=tuple(range(10, 170, 10)), trials=6):
    succ = [[trials if n >= threshold(ri) else 0 for n in N] for ri in r]
    return {"figure": "fig4", "settings": {"K": 5, "d": 100, "trials": trials, "distance": 0.1},
            "scale": "ci", "seed": 0, "axes": {"r": list(r), "N": list(N)},
            "raw": {"success": succ, "trials": [[trials] * len(N)] * len(r), "diverged": [[0] * len(N)] * len(r)}}


def test_check_fig4():
    out = claims.check_fig4(fake_fig4(lambda r: 6 * r + 5))
    assert out["slope"] == pytest.approx(6, rel=0.1) and out["r2"] > 0.95
    with pytest.raises(claims.ClaimError, match="does not increase"):
        claims.check_fig4(fake_fig4(lambda r: 150 - 6 * r))
    with pytest.raises(claims.ClaimError, match="outside the N grid"):
        claims.check_fig4(fake_fig4(lambda r: 20 * r))
    with pytest.raises(claims.ClaimError, match="not linear in r"):  # quadratic sample complexity
        claims.check_fig4(fake_fig4(lambda r: 0.5 * r**2, N=tuple(range(2, 220, 2))))


def fake_fig5(err_of_sqrt_r, levels=(0.01, 0.05, 0.1), r=(5, 10, 15, 20, 25), plateau=1.0):
    sq = np.sqrt(r)
    mean = [[lev * err_of_sqrt_r(s) for s in sq] for lev in levels]
    return {"figure": "fig5", "settings": {"K": 10, "d": 150, "N": 500, "trials": 1},
            "scale": "ci", "seed": 0,
            "axes": {"r": list(r), "sqrt_r": sq.tolist(), "noise_levels": list(levels)},
            "raw": {"mean_rel_error": mean, "rel_error": [[[m] for m in row] for row in mean],
                    "plateau": [[[plateau] for _ in r] for _ in levels], "diverged": [[0] * len(r)] * len(levels)}}


def test_check_fig5():
    out = claims.check_fig5(fake_fig5(lambda s: 0.5 * s))
    assert all(f["r2"] > 0.99 for f in out["fits"]) and np.allclose(out["level_exponent"], 1)
    with pytest.raises(claims.ClaimError, match="does not grow"):
        claims.check_fig5(fake_fig5(lambda s: 5 - 0.5 * s))
    with pytest.raises(claims.ClaimError, match="proportional"):
        data = fake_fig5(lambda s: 0.5 * s)
        data["raw"]["mean_rel_error"][2] = [v * 3 for v in data["raw"]["mean_rel_error"][2]]
        claims.check_fig5(data)
    with pytest.raises(claims.ClaimError, match="settled"):
        claims.check_fig5(fake_fig5(lambda s: 0.5 * s, plateau=0.9))


def test_checks_pass_on_the_synthetic_data_plots():
    for data in (fake_fig2([4.2, 3.4, 2.6, 1.7, 0.9]), fake_fig4(lambda r: 6 * r + 5),
                 fake_fig5(lambda s: 0.5 * s)):
        assert isinstance(runner.plot_figure(data), Figure)
    fig = synthetic_plots.plot_fig3(fake_fig3(0.85 + 0.01 * np.arange(5), 0.9 + 0.01 * np.arange(5)))
    assert len(fig.axes) == 2


def test_figure_functions_reject_wrong_results():
    with pytest.raises(ValueError, match="fig2"):
        synthetic_plots.plot_fig2(fake_fig4(lambda r: 6 * r))
    with pytest.raises(ValueError, match="figure name"):
        runner.plot_figure({"figure": "fig9"})
    with pytest.raises(TypeError, match="results"):
        runner.check_figure([1, 2])
    with pytest.raises(ValueError, match="max_curves"):
        synthetic_plots.plot_fig3(fake_fig3([0.9] * 5, [0.95] * 5), max_curves=0)
    with pytest.raises(TypeError, match="fig"):
        style.save_figure("not a figure", "x")


def test_success_maps_are_black_and_white_scales():
    fig = synthetic_plots.plot_fig2(fake_fig2([4.2, 3.4, 2.6, 1.7, 0.9]), show_radius=False)
    mesh = fig.axes[0].collections[0]
    assert mesh.get_cmap().name == "gray" and mesh.norm.vmin == 0 and mesh.norm.vmax == 1
    assert fig.axes[0].get_xlabel().startswith(r"$\sqrt{r}$")
    values = np.asarray(mesh.get_array()).reshape(8, 5)  # (distance, r)
    assert values[0, 0] == 1 and values[-1, -1] == 0


# --------------------------------------------------------------------------- early exits


def test_early_exit_settings_are_validated():
    with pytest.raises(TypeError, match="early_exit"):
        registry.figure_settings("fig2", "ci", {"early_exit": "yes"})
    with pytest.raises(ValueError, match="plateau_exit"):
        registry.figure_settings("fig5", "ci", {"plateau_exit": 2.0})


def test_exits_off_keep_the_cache_key_of_the_plain_protocol():
    s = registry.figure_settings("fig2", "ci")
    cell = registry.get("fig2").experiment.cells(s)[0]
    cfg = se.cell_config("fig2", cell, 0, "cpu")
    assert "early_exit" not in cfg and "plateau_exit" not in cfg
    on = se.cell_config("fig2", registry.get("fig2").experiment.cells({**s, "early_exit": True})[0], 0, "cpu")
    assert on["early_exit"] is True


@pytest.mark.parametrize("name", ["fig2", "fig4", "fig5"])
def test_compare_exit_rules_runs_both_protocols_on_the_same_draws(name):
    overrides = {**TINY[name], "max_iter": 2000}
    out = timing.compare_exit_rules(name, "ci", 0, overrides=overrides, cache=False)
    assert out["runs"] == int(np.size(tiny(name)["raw"]["rel_error"]) * 1)
    assert 0 <= out["disagreements"] <= out["runs"]
    assert out["iterations_early"] <= out["iterations_full"]
    if name == "fig5":
        assert out["max_rel_error_difference"] < 0.05
    with pytest.raises(ValueError, match="fig3 has none"):
        timing.compare_exit_rules("fig3", "ci", 0, overrides=TINY["fig3"], cache=False)


# --------------------------------------------------------------------------- reference results


def test_load_reference_reads_cli_output_and_rejects_others(tmp_path):
    assert runner.load_reference("fig3", tmp_path) is None
    res = tiny("fig3")
    (tmp_path / "fig3.json").write_text(json.dumps(res))
    back = runner.load_reference("fig3", tmp_path)
    assert back["figure"] == "fig3" and back["raw"] == json.loads(json.dumps(res))["raw"]
    runner.plot_reference("fig3", tmp_path)  # draws the committed result
    placeholder = runner.plot_reference("fig2", tmp_path)  # none there: a panel that says so
    assert "reproduce fig2" in placeholder.axes[0].texts[0].get_text()
    (tmp_path / "fig4.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        runner.load_reference("fig4", tmp_path)
    (tmp_path / "fig5.json").write_text(json.dumps({"figure": "fig2", "raw": {}}))
    with pytest.raises(ValueError, match="not a result of figure fig5"):
        runner.load_reference("fig5", tmp_path)
    with pytest.raises(ValueError, match="figure name"):
        runner.load_reference("fig9", tmp_path)


def test_fig3_mean_curve_averages_chunks_thinned_to_different_spacings():
    """Regression (issue 13): chunks of one r thinned to spacings 4 and 3 were averaged index by
    index, mixing iteration 4k with 3k; the mean must be taken at equal iterations."""
    from lthbook.synthetic_experiments import _mean_curve

    slow = {"curve_iterations": list(range(0, 401, 4)), "curve_mean_log10_error": [-0.01 * t for t in range(0, 401, 4)],
            "runs": 5}
    fast = {"curve_iterations": list(range(0, 301, 3)), "curve_mean_log10_error": [-0.01 * t for t in range(0, 301, 3)],
            "runs": 5}
    curve = _mean_curve([slow, fast])
    it = np.asarray(curve["iterations"], dtype=float)
    expected = (-0.01 * it + -0.01 * np.minimum(it, 300)) / 2  # the fast chunk holds its last value after 300
    np.testing.assert_allclose(curve["mean_log10_error"], expected, atol=1e-12)
    slope = np.polyfit(it[it <= 300], np.asarray(curve["mean_log10_error"])[it <= 300], 1)[0]
    assert slope == pytest.approx(-0.01)  # index-by-index averaging gave a flatter line
    same = _mean_curve([slow, dict(slow, runs=1)])  # equal grids: point-by-point mean, unchanged
    assert same["mean_log10_error"] == pytest.approx(slow["curve_mean_log10_error"])


def test_format_duration_units():
    from lthbook.registry import format_duration

    assert [format_duration(s) for s in (42, 420, 10_026, 57_600, 553_000)] == ["42 s", "7 min", "2.8 h", "16 h",
                                                                               "6 days"]
