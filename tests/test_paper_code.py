"""The paper code's two behaviours as switches of the book's IMP (lthbook.paper_code.QUIRKS):
each is checked against the plain re-implementation of that code's step and rewind, under the
code's own optimizer settings (Adam, lr 1.2e-3, weight decay 1e-4)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lthbook.imp import (attach_masks, effective_weights, masks, negative_weight_moves, prune_layerwise, rewind,
                         snapshot_parameters)
from lthbook.imp_experiments import _Run
from lthbook.paper_code import (QUIRKS, check_quirks, reference_rewind, reference_train_step, sign_gradient_mask,
                                write_biases_into_snapshot)
from lthbook.training import train_classifier

#: The paper code's optimizer settings.
LR, WEIGHT_DECAY = 1.2e-3, 1e-4


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def tiny_data(n: int = 90, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 12, generator=gen)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    return X, y


def _masked_and_plain():
    """The same pruned network twice: with torch.nn.utils.prune masks (the book) and as a plain
    network whose pruned weights are stored as zeros (the paper's code)."""
    masked = attach_masks(tiny_classifier())
    prune_layerwise(masked, 0.3)
    plain = tiny_classifier()
    with torch.no_grad():
        for layer, m in ((plain[0], masked[0]), (plain[2], masked[2])):
            layer.weight.mul_(m.weight_mask)
    return masked, plain


def test_sign_gradient_mask_reproduces_the_reference_step_under_the_papers_optimizer():
    X, y = tiny_data()
    masked, plain = _masked_and_plain()
    opt_masked = torch.optim.Adam(masked.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(10):
        xb, yb = X[i * 9:(i + 1) * 9], y[i * 9:(i + 1) * 9]
        reference_train_step(plain, opt_plain, loss_fn, xb, yb)
        with sign_gradient_mask(masked):
            opt_masked.zero_grad()
            loss_fn(masked(xb), yb).backward()
            opt_masked.step()
    eff = effective_weights(masked)
    for name, layer in (("0.weight", plain[0]), ("2.weight", plain[2])):
        torch.testing.assert_close(eff[name], layer.weight.detach(), rtol=0, atol=1e-7)
    torch.testing.assert_close(masked[0].bias.detach(), plain[0].bias.detach(), rtol=0, atol=1e-7)
    # on exit the hooks are gone: the next backward pass gives every unpruned weight its gradient
    masked.zero_grad()
    loss_fn(masked(X), y).backward()
    negative = (masked[0].weight_mask == 1) & (masked[0].weight_orig < 0)
    assert bool((masked[0].weight_orig.grad[negative] != 0).all())


def _train_reference(labels_seed: int, steps: int = 120):
    """The reference step with the paper's optimizer on the dense network; labels drawn from ``labels_seed``."""
    X, _ = tiny_data(n=9 * steps)
    y = torch.randint(0, 3, (X.shape[0],), generator=torch.Generator().manual_seed(labels_seed))
    model = tiny_classifier()
    weights = {n: p for n, p in model.named_parameters() if "weight" in n}
    before = {n: p.detach().clone() for n, p in weights.items()}
    ever_nonnegative = {n: p.detach() >= 0 for n, p in weights.items()}
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    for i in range(steps):
        reference_train_step(model, opt, nn.CrossEntropyLoss(), X[i * 9:(i + 1) * 9], y[i * 9:(i + 1) * 9])
        for n, p in weights.items():
            ever_nonnegative[n] |= p.detach() >= 0
    after = {n: p.detach().clone() for n, p in weights.items()}
    return before, after, ever_nonnegative


def test_the_reference_step_drops_the_loss_gradient_of_negative_weights_which_decay_not_freeze():
    """With the paper's Adam (weight decay 1e-4) a negative weight is not frozen: it gets no loss
    gradient, so it moves towards zero whatever the labels, and some weights cross zero."""
    before, after_a, touched_a = _train_reference(labels_seed=5)
    _, after_b, touched_b = _train_reference(labels_seed=6)
    mask = {n: (w != 0).float() for n, w in before.items()}
    moves = negative_weight_moves(before, after_a, mask)
    negative = sum(m[0] for m in moves.values())
    crossed = sum(m[1] for m in moves.values())
    assert negative > 50
    # (almost) no negative weight went further from zero: only one that crossed and came back can
    assert sum(m[2] for m in moves.values()) <= 0.05 * negative
    assert 0.02 * negative < crossed < negative  # some crossed zero within 120 steps, not all
    for n in before:
        stayed = ~touched_a[n] & ~touched_b[n]  # negative at every step of both runs
        assert int(stayed.sum()) > 10
        # not frozen: weight decay moved every one of them towards zero ...
        assert bool((after_a[n][stayed] > before[n][stayed]).all())
        # ... and the labels did not matter: the same path under two different label sets
        assert torch.equal(after_a[n][stayed], after_b[n][stayed])
        # while the positive weights, which do get the loss gradient, follow the labels
        positive = before[n] > 0
        assert not torch.equal(after_a[n][positive], after_b[n][positive])


def test_the_books_training_moves_negative_weights_both_ways_under_the_same_optimizer():
    X, y = tiny_data()
    model = attach_masks(tiny_classifier())
    prune_layerwise(model, 0.3)
    before, mask = effective_weights(model), masks(model)
    train_classifier(model, X, y, X, y, epochs=10, batch_size=30, lr=LR, weight_decay=WEIGHT_DECAY)
    moves = negative_weight_moves(before, effective_weights(model), mask)
    negative = sum(m[0] for m in moves.values())
    deeper = sum(m[2] for m in moves.values())
    assert 0.2 * negative < deeper < 0.8 * negative


def test_bias_quirk_reproduces_the_reference_rewind():
    """Three IMP rounds of the reference rewind (biases by reference) against the book's rewind
    plus write_biases_into_snapshot: the biases each round starts from are the same."""
    X, y = tiny_data()
    ref = tiny_classifier()
    initial_state = copy.deepcopy(ref.state_dict())
    ones = {n: np.ones(tuple(p.shape), dtype=np.float32) for n, p in ref.named_parameters() if "weight" in n}
    ours = attach_masks(tiny_classifier())
    snapshot = snapshot_parameters(ours)
    starts_ref, starts_ours = [], []
    for level in range(4):
        if level:
            reference_rewind(ref, ones, initial_state)
            rewind(ours, snapshot)
        starts_ref.append([ref[0].bias.detach().clone(), ref[2].bias.detach().clone()])
        starts_ours.append([ours[0].bias.detach().clone(), ours[2].bias.detach().clone()])
        opt_ref = torch.optim.Adam(ref.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        opt_ours = torch.optim.Adam(ours.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        for model, opt in ((ref, opt_ref), (ours, opt_ours)):
            for i in range(5):
                opt.zero_grad()
                nn.CrossEntropyLoss()(model(X[i * 18:(i + 1) * 18]), y[i * 18:(i + 1) * 18]).backward()
                opt.step()
        if level:
            write_biases_into_snapshot(ours, snapshot)
    for level, (a, b) in enumerate(zip(starts_ref, starts_ours)):
        for ta, tb in zip(a, b):
            torch.testing.assert_close(ta, tb, rtol=0, atol=1e-6, msg=f"level {level}")
    assert torch.equal(starts_ours[1][0], starts_ours[0][0])  # round 1 starts from the true initial bias
    assert not torch.equal(starts_ours[2][0], starts_ours[0][0])  # round 2 from where round 1 ended


def _run(quirks):
    X, y = tiny_data()

    def build():
        return tiny_classifier()

    def train(model, level):
        return train_classifier(model, X, y, X, y, epochs=3, batch_size=30, lr=LR, weight_decay=WEIGHT_DECAY,
                                seed=level)

    run = _Run(build, train, quirks=quirks)
    return [run.level(None, 0.2, level) for level in range(3)]


def test_imp_with_quirks_reports_them_and_without_them_is_unchanged():
    plain, both, bias_only = _run(()), _run(QUIRKS), _run(("bias_rewind",))
    assert all(row["invariants"]["rewind_mismatch"] == [] for row in plain)
    # biases by reference: the rewind of level 2 is no longer exact, and only for the biases
    for rows in (both, bias_only):
        assert rows[0]["invariants"]["rewind_mismatch"] == rows[1]["invariants"]["rewind_mismatch"] == []
        assert rows[2]["invariants"]["rewind_mismatch"] == ["0.bias", "2.bias"]
    # the sign mask: no negative weight moves away from zero; the book's IMP moves many
    def share(rows, i):  # fraction of the negative weights (all levels) that crossed (i=1) / went deeper (i=2)
        moves = [m for row in rows for m in row["negative_moves"].values()]
        return sum(m[i] for m in moves) / sum(m[0] for m in moves)

    assert share(both, 2) < 0.05 and share(plain, 2) > 0.2
    # up to level 1 the bias quirk changes nothing (the first rewind restores the true initialization)
    assert [r["train_loss"] for r in bias_only[:2]] == [r["train_loss"] for r in plain[:2]]
    assert bias_only[2]["train_loss"] != plain[2]["train_loss"]


@pytest.mark.parametrize("bad, error", [("sign_mask", TypeError), (["sign"], ValueError),
                                        (["sign_mask", "sign_mask"], ValueError), (None, TypeError)])
def test_quirks_are_validated(bad, error):
    with pytest.raises(error, match="quirks"):
        check_quirks(bad)
    with pytest.raises(error, match="quirks"):
        _Run(tiny_classifier, lambda model, level: {}, quirks=bad)


def test_quirks_come_back_in_a_fixed_order():
    assert check_quirks(["bias_rewind", "sign_mask"]) == QUIRKS
    assert check_quirks([]) == ()


def test_sign_gradient_mask_needs_masks():
    with pytest.raises(ValueError, match="attach_masks"):
        with sign_gradient_mask(tiny_classifier()):
            pass
