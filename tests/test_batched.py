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
