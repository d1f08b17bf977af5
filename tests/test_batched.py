"""Batched IMP training (lthbook.batched) gives the numbers of separate runs, to float rounding."""

from __future__ import annotations

import pytest
import torch

from lthbook.batched import BatchedRuns, train_classifiers_batched
from lthbook.imp import attach_masks, effective_weights, masks, prune_layerwise
from lthbook.networks import build_network
from lthbook.training import prepare_images, train_classifier


def images(n: int, seed: int = 0):
    """Random images with a learnable label (the brightness of one quadrant)."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 28, 28, generator=gen)
    y = (X[:, 0, :14, :14].mean(dim=(1, 2)) * 40).long().clamp(0, 9)
    return prepare_images(X, "float32", torch.device("cpu")), y


def model(network: str, seed: int, prune_steps: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = attach_masks(build_network(network))
    for _ in range(prune_steps):
        prune_layerwise(m, 0.5)
    return m


def both_ways(network: str, sizes, epochs: int, precision: str = "float32"):
    X, y = images(max(sizes) + 200)
    Xt, yt = images(300, seed=9)
    data = [(X[100 * r:100 * r + n], y[100 * r:100 * r + n]) for r, n in enumerate(sizes)]
    seeds = [7 + r for r in range(len(sizes))]
    separate = [model(network, r, prune_steps=r) for r in range(len(sizes))]
    together = [model(network, r, prune_steps=r) for r in range(len(sizes))]
    out_sep = [train_classifier(separate[r], *data[r], Xt, yt, epochs=epochs, seed=seeds[r], precision=precision)
               for r in range(len(sizes))]
    out_bat = train_classifiers_batched(together, data, Xt, yt, seeds=seeds, epochs=epochs, precision=precision)
    return separate, together, out_sep, out_bat


def test_batched_lenet5_equals_separate_runs_with_different_sizes_masks_and_seeds():
    # sizes 240, 170 and 300: different numbers of steps and a partial last batch (170 = 2*60 + 50)
    separate, together, out_sep, out_bat = both_ways("lenet5", [240, 170, 300], epochs=2)
    for r, (a, b) in enumerate(zip(out_sep, out_bat)):
        assert len(b["test_accuracy"]) == len(b["train_loss"]) == 2
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5), r
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=2 / 300), r
        assert b["best_test_accuracy"] == max(b["test_accuracy"])
    moved = 0.0
    for r, (a, b) in enumerate(zip(separate, together)):
        assert {k: torch.equal(v, masks(b)[k]) for k, v in masks(a).items()} == dict.fromkeys(masks(a), True)
        ea, eb = effective_weights(a), effective_weights(b)
        for k in ea:
            torch.testing.assert_close(eb[k], ea[k], rtol=1e-4, atol=1e-5, msg=f"run {r}, {k}")
        initial = dict(model("lenet5", r, prune_steps=r).named_parameters())
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(pb.detach(), pa.detach(), rtol=1e-4, atol=1e-5)
            moved = max(moved, float((pa - initial[name]).detach().abs().max()))
    assert moved > 1e-3  # the runs did train: the comparison is not between untouched initializations


def test_batched_paper_code_network_equals_separate_runs():
    _, _, out_sep, out_bat = both_ways("lenet5-paper-code", [120, 90], epochs=1)
    for a, b in zip(out_sep, out_bat):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=2 / 300)


def test_batched_bfloat16_runs_and_stays_close_to_separate_runs():
    _, _, out_sep, out_bat = both_ways("lenet5", [120, 120], epochs=1, precision="bfloat16")
    for a, b in zip(out_sep, out_bat):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-2)


def test_pruning_after_batched_training_ranks_the_trained_weights():
    # prune_layerwise ranks module.weight; batched training must leave it = weight_orig * mask of the
    # trained weights (what a forward pass would set), not the stale value from before training
    X, y = images(180)
    runs = [model("lenet5", 0), model("lenet5", 1)]
    train_classifiers_batched(runs, [(X, y), (X, y)], X[:60], y[:60], seeds=[0, 1], epochs=1)
    for m in runs:
        for name, mask in masks(m).items():
            layer = m.get_submodule(name.rsplit(".", 1)[0])
            assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)


def test_forward_of_one_run_equals_the_model():
    X, _ = images(50)
    runs = [model("lenet5", s, prune_steps=1) for s in range(3)]
    batched = BatchedRuns(runs)
    out = batched.forward(torch.stack([X, X.flip(0), X], dim=1), [0, 1, 2])
    assert out.shape == (3, 50, 10)
    with torch.no_grad():
        for r, x in enumerate((X, X.flip(0), X)):
            torch.testing.assert_close(out[r].detach(), runs[r](x), rtol=1e-5, atol=1e-5)
        assert batched.accuracies(X, torch.zeros(50, dtype=torch.long), [2, 0]) == [
            float((runs[r](X).argmax(1) == 0).float().mean()) for r in (2, 0)]


def test_bad_input_names_the_problem():
    X, y = images(60)
    with pytest.raises(ValueError, match="models"):
        BatchedRuns([])
    with pytest.raises(ValueError, match="same network"):
        BatchedRuns([model("lenet5", 0), build_network("lenet5-paper-code")])
    with pytest.raises(ValueError, match="features"):
        BatchedRuns([torch.nn.Linear(3, 2)])
    with pytest.raises(ValueError, match="one entry per model"):
        train_classifiers_batched([model("lenet5", 0)], [(X, y), (X, y)], X, y, seeds=[0], epochs=1)
    with pytest.raises(ValueError, match="labels"):
        train_classifiers_batched([model("lenet5", 0)], [(X, y[:5])], X, y, seeds=[0], epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_classifiers_batched([model("lenet5", 0)], [(X, y)], X, y, seeds=[0], epochs=0)


# ---------------------------------------------------------------- Figure 6: synthetic students


def students(seed: int, n: int, prune_steps: int):
    from lthbook.networks import OneHiddenLayerStudent

    torch.manual_seed(seed)
    out = [attach_masks(OneHiddenLayerStudent(30, 4)) for _ in range(n)]
    for r, m in enumerate(out):
        for _ in range(prune_steps + r % 2):
            prune_layerwise(m, 0.3)
    return out


def regression_data(sizes, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        X, Xt = torch.randn(n, 30, generator=gen), torch.randn(200, 30, generator=gen)
        teacher = lambda Z: torch.relu(Z[:, :4] + Z[:, 4:8]).mean(dim=1)  # noqa: E731
        out.append((X, teacher(X), Xt, teacher(Xt)))
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_students_equal_separate_runs_with_own_masks_and_sizes(dtype):
    # In float64 the two computations agree to 1e-9 (the same arithmetic summed in another order);
    # in float32 (what Figure 6 uses) Adam's normalized steps let rounding move the weights of
    # nearly flat directions by ~1e-3, while the errors still agree to 1e-4.
    from lthbook.batched import train_regressions_batched
    from lthbook.training import train_regression

    data = [tuple(t.to(dtype) for t in d) for d in regression_data([120, 80, 120, 120])]  # two sizes: two groups
    separate, together = ([m.to(dtype) for m in students(3, 4, 1)] for _ in range(2))
    out_sep = [train_regression(m, *d, steps=150, lr=1e-2) for m, d in zip(separate, data)]
    out_bat = train_regressions_batched(together, data, steps=150, lr=1e-2)
    tight = dtype == torch.float64
    for r, (a, b, ma, mb) in enumerate(zip(out_sep, out_bat, separate, together)):
        assert b["test_error"] == pytest.approx(a["test_error"], rel=1e-9 if tight else 1e-4), r
        assert b["train_error"] == pytest.approx(a["train_error"], rel=1e-9 if tight else 1e-4), r
        assert b["test_error"] < 0.9 and b["seconds"] > 0
        ea, eb = effective_weights(ma), effective_weights(mb)
        torch.testing.assert_close(eb["hidden.weight"], ea["hidden.weight"], rtol=1e-9 if tight else 1e-2,
                                   atol=1e-9 if tight else 2e-3)
        pruned = mb.hidden.weight_mask == 0
        assert pruned.any() and torch.count_nonzero(eb["hidden.weight"][pruned]) == 0
        # the layer's weight is synced as after a forward pass, so the next pruning ranks the trained values
        assert torch.equal(mb.hidden.weight, mb.hidden.weight_orig * mb.hidden.weight_mask)
        assert not torch.equal(mb.hidden.weight_orig, students(3, 4, 1)[r].hidden.weight_orig.to(dtype))


def test_batched_students_bad_input_names_the_problem():
    from lthbook.batched import train_regressions_batched

    data = regression_data([50])
    with pytest.raises(ValueError, match="one \\(X, y, X_test, y_test\\) per model"):
        train_regressions_batched(students(0, 2, 0), data, steps=5)
    with pytest.raises(ValueError, match="OneHiddenLayerStudent"):
        train_regressions_batched([model("lenet5", 0)], data, steps=5)
    with pytest.raises(ValueError, match="steps"):
        train_regressions_batched(students(0, 1, 0), data, steps=0)
    X, y, Xt, yt = data[0]
    with pytest.raises(ValueError, match=r"data\[0\]: X must be"):
        train_regressions_batched(students(0, 1, 0), [(X[:, :10], y, Xt, yt)], steps=5)


def test_fig6_batched_levels_match_the_one_at_a_time_runs(tmp_path):
    # The same ci figure both ways: level 0 (same start, no pruning yet) agrees to float rounding;
    # later levels prune weights that differ at rounding level, so they are compared by verdict.
    from lthbook.runner import measure_figure, run_figure

    one, lockstep = (run_figure("fig6", scale="ci", seed=0, cache_dir=str(tmp_path / f"c{b}"), progress=False,
                                overrides={"batched": b}) for b in (False, True))
    assert lockstep["settings"]["batched"] is True and one["settings"]["batched"] is False
    for a, b in zip(one["raw"]["test_error"], lockstep["raw"]["test_error"]):
        for ta, tb in zip(a, b):
            assert tb[0] == pytest.approx(ta[0], rel=1e-4)
    assert [c["verdict"] for c in measure_figure(one)] == [c["verdict"] for c in measure_figure(lockstep)]
    assert lockstep["raw"]["invariants"]["pruned_nonzero"] == 0 and lockstep["raw"]["invariants"]["frozen"] == 0


def test_bench_batched_layers_runs_and_rejects_bad_input():
    """The layer benchmark quoted by the Reproducibility page runs end to end (tiny settings)
    and prints every formulation it compares; a non-positive count is refused by name."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "bench_batched_layers.py"
    proc = subprocess.run([sys.executable, str(script), "--runs", "2", "--rounds", "1", "--reps", "1", "--no-compile"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for label in ("grouped, channels-last", "grouped, NCHW", "unfold + matmul", "max_pool2d, channels-last",
                  "lockstep, eager", "would be at most"):
        assert label in proc.stdout
    bad = subprocess.run([sys.executable, str(script), "--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--rounds must be at least 1" in bad.stderr
