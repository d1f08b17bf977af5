"""Tests of Figures 6-7 (§5.2, lthbook.imp_experiments) through the registry and the runner: presets,
cache and resume, claim checks, CLI."""

from __future__ import annotations

import copy
import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from lthbook import mnist  # noqa: E402
from lthbook.__main__ import main  # noqa: E402
from lthbook.claims import ClaimError, check_fig6, check_fig7  # noqa: E402
from lthbook.imp_experiments import pack_masks, unpack_masks  # noqa: E402
from lthbook.imp_plots import plot_fig6, plot_fig7  # noqa: E402
from lthbook.registry import figure_settings  # noqa: E402
from lthbook.runner import check_figure, measure_figure, run_figure  # noqa: E402

IMP_FIGURES = ("fig6", "fig7")

TINY6 = {"N_values": [60, 400], "trials": 1, "levels": 4, "steps": 150, "test_size": 200}
KEYS = {"figure", "title", "claim", "scale", "seed", "device", "threads", "settings", "axes", "raw", "cells",
        "cells_from_cache", "cell_time_s", "wall_time_s", "versions", "created"}


def test_every_scale_has_valid_settings():
    for name in IMP_FIGURES:
        for scale in ("ci", "book", "paper"):
            s = figure_settings(name, scale)
            assert s["prune_fraction"] == 0.2
    assert figure_settings("fig7", "paper")["network"] == "lenet5-paper-code"
    assert figure_settings("fig7", "book")["N_values"] == [10000, 20000, 30000, 40000]
    assert figure_settings("fig6", "book")["r_star"] / figure_settings("fig6", "book")["d"] == 0.2


@pytest.mark.parametrize("name, overrides, message", [
    ("fig6", {"levels": 0}, "levels"),
    ("fig6", {"prune_fraction": 1.0}, "prune_fraction"),
    ("fig6", {"N_values": [200, 100]}, "increasing"),
    ("fig6", {"r_star": 500}, "r_star"),
    ("fig7", {"network": "resnet"}, "network must be one of"),
    ("fig7", {"N_values": [70000]}, "N_values"),
    ("fig7", {"precision": "float16"}, "precision"),
    ("fig7", {"trials": 0}, "trials"),
    ("fig7", {"batched": "yes"}, "batched"),
    ("fig7", {"bogus": 1}, "unknown setting"),
])
def test_bad_settings_name_the_parameter(name, overrides, message):
    with pytest.raises((TypeError, ValueError), match=message):
        figure_settings(name, "ci", overrides)


def test_masks_pack_round_trip():
    masks = {"a.weight": (torch.rand(3, 5) > 0.5).float(), "b.weight": (torch.rand(7) > 0.3).float()}
    back = unpack_masks(json.loads(json.dumps(pack_masks(masks))))
    assert all(torch.equal(back[k], masks[k]) for k in masks)


def test_fig6_runs_resumes_from_any_level_and_is_deterministic(tmp_path):
    first = run_figure("fig6", "ci", seed=5, cache_dir=tmp_path, progress=False, overrides=TINY6)
    assert KEYS <= set(first) and first["cells"] == 8 and first["cells_from_cache"] == 0
    assert first["raw"]["invariants"]["pruned_nonzero"] == 0 and first["raw"]["invariants"]["frozen"] == 0
    assert first["raw"]["invariants"]["rewind_mismatch"] == []
    assert first["raw"]["remaining"][0][0] == pytest.approx([1.0, 0.8, 0.64, 0.512])
    # drop the cached levels 2 and 3 of one run: they are recomputed from level 1's stored mask
    files = sorted((tmp_path / "fig6").glob("*.json"), key=lambda p: p.stat().st_mtime)
    for f in files[6:]:
        f.unlink()
    again = run_figure("fig6", "ci", seed=5, cache_dir=tmp_path, progress=False, overrides=TINY6)
    assert again["cells_from_cache"] == 6
    assert again["raw"]["test_error"] == first["raw"]["test_error"]
    # a longer grid reuses every level already computed
    longer = run_figure("fig6", "ci", seed=5, cache_dir=tmp_path, progress=False, overrides={**TINY6, "levels": 5})
    assert longer["cells_from_cache"] == 8
    assert [row[:4] for row in longer["raw"]["test_error"][1]] == first["raw"]["test_error"][1]
    fig = plot_fig6(first)
    assert fig.axes[0].get_xlabel() == "remaining weights (%)"


def test_fig6_dispatch_through_run_figure_and_check_figure(tmp_path):
    res = run_figure("fig6", "ci", seed=0, cache_dir=tmp_path, progress=False)
    assert res["figure"] == "fig6"
    fitted = check_figure(res)
    assert fitted["best_remaining"][-1] == pytest.approx(0.2097152)


def _fake(name: str, values, remaining) -> dict:
    s = figure_settings(name, "book", {"N_values": [100 * (i + 1) for i in range(len(values))]})
    key = "mean_test_error" if name == "fig6" else "best_test_accuracy"
    inv = {"pruned_nonzero": 0, "frozen": 0, "frozen_negative": 0, "rewind_mismatch": [], "levels_checked": 1}
    return {"figure": name, "settings": s, "axes": {"remaining": remaining}, "raw": {key: values, "invariants": inv}}


def test_check_fig6_accepts_the_claimed_shape_and_rejects_violations():
    rem = [0.8 ** k for k in range(12)]
    good_big = [1e-3, 8e-4, 7e-4, 6e-4, 5e-4, 4e-4, 3e-4, 2e-4, 5e-2, 0.1, 0.2, 0.3]
    bad_small = [0.5] * 12
    assert check_fig6(_fake("fig6", [bad_small, good_big], rem))["best_remaining"][-1] == pytest.approx(0.8 ** 7)
    with pytest.raises(ClaimError, match="not near"):  # best at the dense level
        check_fig6(_fake("fig6", [bad_small, sorted(good_big)], rem))
    with pytest.raises(ClaimError, match="fail throughout"):
        check_fig6(_fake("fig6", [[0.05] * 12, good_big], rem))
    with pytest.raises(ClaimError, match="larger N is worse"):
        check_fig6(_fake("fig6", [bad_small, good_big, [3 * e for e in good_big]], rem))
    broken = _fake("fig6", [bad_small, good_big], rem)
    broken["raw"]["invariants"]["frozen"] = 3
    with pytest.raises(ClaimError, match="did not train"):
        check_fig6(broken)


def test_check_fig7_accepts_the_claimed_shape_and_rejects_violations():
    rem = [0.8 ** k for k in range(12)]
    small = [0.95, 0.955, 0.96, 0.96, 0.958, 0.957, 0.955, 0.95, 0.945, 0.94, 0.93, 0.92]
    big = [a + 0.01 for a in small]
    out = check_fig7(_fake("fig7", [small, big], rem))
    assert out["shape_checked"]
    with pytest.raises(ClaimError, match="grow with N"):
        check_fig7(_fake("fig7", [big, small], rem))
    with pytest.raises(ClaimError, match="no drop"):
        check_fig7(_fake("fig7", [small[:-1] + [0.96], big[:-1] + [0.97]], rem))
    with pytest.raises(ClaimError, match="below"):
        check_fig7(_fake("fig7", [[0.3] * 12, big], rem))
    # a short grid (ci) does not reach over-pruning: the shape is not asserted, the rest is
    assert not check_fig7(_fake("fig7", [small[:3], big[:3]], rem[:3]))["shape_checked"]


@pytest.mark.skipif(mnist.find_source() is None, reason="MNIST not fetched (run `make setup`)")
def test_fig7_tiny_run_on_mnist(tmp_path):
    over = {"N_values": [300, 600], "levels": 2, "epochs": 1}
    res = run_figure("fig7", "ci", seed=1, cache_dir=tmp_path, progress=False, overrides=over)
    acc = res["raw"]["best_test_accuracy"]
    assert all(a > 0.3 for row in acc for a in row)  # chance is 0.1
    assert res["raw"]["invariants"]["frozen"] == 0 and res["raw"]["invariants"]["rewind_mismatch"] == []
    assert res["raw"]["remaining"][0][1] == pytest.approx(0.8, abs=1e-3)
    assert "mnist" in res["data_source"].lower() or "IDX" in res["data_source"]
    plot_fig7(res)
    again = run_figure("fig7", "ci", seed=1, cache_dir=tmp_path, progress=False, overrides=over)
    assert again["cells_from_cache"] == 4 and again["raw"]["best_test_accuracy"] == acc


@pytest.mark.skipif(mnist.find_source() is None, reason="MNIST not fetched (run `make setup`)")
def test_fig7_batched_trials_equal_separate_runs_and_keep_trial_0(tmp_path):
    over = {"N_values": [300, 420], "levels": 3, "epochs": 1, "trials": 2}
    separate = run_figure("fig7", "ci", seed=1, cache_dir=tmp_path / "a", progress=False, overrides=over)
    batched = run_figure("fig7", "ci", seed=1, cache_dir=tmp_path / "b", progress=False,
                         overrides={**over, "batched": True})
    trials = separate["raw"]["best_test_accuracy_trials"]
    assert len(trials) == 2 and len(trials[0]) == 2 and len(trials[0][0]) == 3  # [N][trial][level]
    assert trials[0][0] != trials[0][1]  # the trials differ (own initialization, subset and order)
    for key in ("best_test_accuracy_trials", "remaining"):
        a, b = torch.tensor(separate["raw"][key]), torch.tensor(batched["raw"][key])
        torch.testing.assert_close(b, a, rtol=0, atol=3 / 10000)  # a few of the 10 000 test images at most
    assert batched["raw"]["invariants"]["frozen"] == 0 and batched["raw"]["invariants"]["pruned_nonzero"] == 0
    assert batched["raw"]["invariants"]["rewind_mismatch"] == []
    # trial 0 alone, unbatched, is the run made before trials existed: its cells are read from the cache
    one = run_figure("fig7", "ci", seed=1, cache_dir=tmp_path / "a", progress=False,
                     overrides={**over, "trials": 1})
    assert one["cells_from_cache"] == 6
    assert one["raw"]["best_test_accuracy"] == [[t[0][k] for k in range(3)] for t in trials]
    assert len(measure_figure(batched)) == 3  # the gain pooled and per N


def test_resolve_precision_auto(tmp_path, monkeypatch):
    from lthbook import training
    from lthbook.networks import build_network

    cpu, path = torch.device("cpu"), tmp_path / "precision.json"
    build = lambda: build_network("lenet5")  # noqa: E731
    assert training.resolve_precision("bfloat16", cpu, build, "lenet5", path) == "bfloat16"  # explicit: honoured
    monkeypatch.setattr(training, "has_bfloat16_arithmetic", lambda device: False)
    assert training.resolve_precision("auto", cpu, build, "lenet5", path) == "float32" and not path.exists()
    monkeypatch.setattr(training, "has_bfloat16_arithmetic", lambda device: True)
    times = iter([1.0, 0.5] * 3)  # float32 1 s, bfloat16 0.5 s per step: bfloat16 is chosen and stored
    monkeypatch.setattr(training, "time_training_steps", lambda model, p, device: next(times))
    assert training.resolve_precision("auto", cpu, build, "lenet5", path) == "bfloat16"
    stored = json.loads(path.read_text())
    (entry,) = stored.values()
    assert entry["choice"] == "bfloat16" and entry["seconds_per_step"] == {"float32": 1.0, "bfloat16": 0.5}
    monkeypatch.setattr(training, "time_training_steps", lambda *a: pytest.fail("measured again"))
    assert training.resolve_precision("auto", cpu, build, "lenet5", path) == "bfloat16"  # from the file
    times = iter([1.0, 0.95] * 3)  # not 10 % faster: float32 (another network: another key)
    monkeypatch.setattr(training, "time_training_steps", lambda model, p, device: next(times))
    assert training.resolve_precision("auto", cpu, build, "other", path) == "float32"
    with pytest.raises(ValueError, match="precision"):
        training.resolve_precision("fp8", cpu, build, "lenet5", path)


def test_fig7_auto_precision_enters_the_key_resolved(monkeypatch):
    from lthbook import imp_experiments
    from lthbook.registry import get

    spec = get("fig7")
    settings = figure_settings("fig7", "ci", {"precision": "auto"})
    monkeypatch.setattr(imp_experiments, "resolve_precision", lambda p, device, build, name: "float32")
    auto = spec.experiment.plan("fig7", settings, 0, "cpu")
    plain = spec.experiment.plan("fig7", figure_settings("fig7", "ci"), 0, "cpu")
    assert [c.config for c in auto] == [c.config for c in plain]


def test_cli_reproduces_fig6_with_json_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "fig6", "--scale", "ci", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
            "--no-progress", *[x for k, v in TINY6.items() for x in ("--set", f"{k}={json.dumps(v)}")]]
    status = main(argv)
    data = json.loads((out / "fig6.json").read_text())
    assert KEYS <= set(data) and "check" in data and status == (0 if data["check"]["passed"] else 1)
    assert (out / "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "fig6.pdf").exists()
    assert "fig6 (ci, seed 0, cpu)" in capsys.readouterr().out


def test_cli_rejects_unknown_fig7_setting(capsys):
    with pytest.raises(SystemExit) as info:
        main(["reproduce", "fig7", "--scale", "ci", "--set", "epochz=1"])
    assert info.value.code == 2 and "unknown setting" in capsys.readouterr().err


def test_results_are_not_mutated_by_checks(tmp_path):
    res = run_figure("fig6", "ci", seed=5, cache_dir=tmp_path, progress=False, overrides=TINY6)
    before = copy.deepcopy(res)
    try:
        check_fig6(res)
    except ClaimError:
        pass
    assert res == before
