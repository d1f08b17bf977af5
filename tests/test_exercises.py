"""The exercise checks (lthbook.exercises): each passes on the book's reference solution and
fails, with a helpful message, on plausible wrong answers.

The reference solutions are not repeated here: they are read from the chapters' code
cells tagged ``solution`` (the cells the student notebooks replace by stubs), so these
tests also cover the solutions the book shows.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import jupytext
import numpy as np
import pytest
import torch

from lthbook import exercises
from lthbook.assignments import SOLUTION_TAG, chapters_with_exercises
from lthbook.exercises import ExerciseCheckError

BOOK = Path(__file__).resolve().parents[1] / "book"


def _solutions() -> dict:
    """Run every chapter's ``solution`` cells (after that chapter's exercise imports)."""
    namespace: dict = {}
    for path in chapters_with_exercises(BOOK):
        nb = jupytext.read(path, fmt="md:myst")
        cells = [c for c in nb.cells if c.cell_type == "code"]
        for cell in cells:
            tags = cell.metadata.get("tags", [])
            first = cell.source.lstrip().split("\n", 1)[0]
            # the import cell that opens each exercise section, and the solutions
            if SOLUTION_TAG in tags or ("lthbook.exercises" in cell.source and first.startswith(("import", "from"))):
                exec(compile(cell.source, f"{path.name}:solution", "exec"), namespace)
    return namespace


SOL = _solutions()


def _ref(name):
    assert name in SOL, f"no chapter defines {name} in a cell tagged {SOLUTION_TAG!r}"
    return SOL[name]


# The wrong answers below are built from the chapters' solutions, not from lthbook.risk: a
# check rejects any function that calls the package's own implementation of its answer.
def risk_gradient(W, X, y, supports):
    return _ref("my_gradient")(W, X, y, supports)


def risk_hessian(W, X, y, supports):
    return _ref("my_hessian")(W, X, y, supports)


# ---- plausible wrong answers -------------------------------------------------------------


def _pre(W, X, supports):
    return np.einsum("nkr,rk->nk", X[:, supports], W)


def risk_no_half(W, X, y, supports):
    return 2 * _ref("my_risk")(W, X, y, supports)


def risk_sum_not_mean_over_neurons(W, X, y, supports):
    return 0.5 * np.mean((np.maximum(_pre(W, X, supports), 0).sum(1) - y) ** 2)


def risk_without_relu(W, X, y, supports):
    return 0.5 * np.mean((_pre(W, X, supports).mean(1) - y) ** 2)


def gradient_sum_over_samples(W, X, y, supports):
    return X.shape[0] * risk_gradient(W, X, y, supports)


def gradient_wrong_sign(W, X, y, supports):
    return -risk_gradient(W, X, y, supports)


def gradient_no_relu_derivative(W, X, y, supports):
    Xs, K = X[:, supports], supports.shape[0]
    e = np.maximum(_pre(W, X, supports), 0).mean(1) - y
    return np.einsum("n,nkr->rk", e, Xs) / (X.shape[0] * K)


def gradient_missing_output_factor(W, X, y, supports):
    return supports.shape[0] * risk_gradient(W, X, y, supports)


def hessian_one_over_K(W, X, y, supports):
    return supports.shape[0] * risk_hessian(W, X, y, supports)


def hessian_block_diagonal(W, X, y, supports):
    H = risk_hessian(W, X, y, supports)
    K, r = supports.shape
    blocks = np.kron(np.eye(K), np.ones((r, r)))
    return H * blocks


def hessian_row_major_vec(W, X, y, supports):
    K, r = supports.shape
    order = np.arange(r * K).reshape(K, r).T.ravel()  # vec of W row by row
    H = risk_hessian(W, X, y, supports)
    return H[np.ix_(order, order)]


def hessian_without_activation(W, X, y, supports):
    N, (K, r) = X.shape[0], supports.shape
    A = X[:, supports].reshape(N, K * r)
    return A.T @ A / (N * K**2)


def step_ignores_momentum(W, X, y, supports, beta):
    return _ref("my_step_size")(W, X, y, supports, 0.0)


def step_at_stability_edge(W, X, y, supports, beta):
    return 2 * _ref("my_step_size")(W, X, y, supports, beta)


def step_from_smallest_eigenvalue(W, X, y, supports, beta):
    H = risk_hessian(W, X, y, supports)
    return (1 + beta) / max(np.linalg.eigvalsh(H)[0], 1e-12)


def agd_no_momentum(W, W_prev, X, y, supports, eta, beta):
    return W - eta * risk_gradient(W, X, y, supports)


def agd_momentum_sign(W, W_prev, X, y, supports, eta, beta):
    return W - eta * risk_gradient(W, X, y, supports) - beta * (W - W_prev)


def agd_ascent(W, W_prev, X, y, supports, eta, beta):
    return W + eta * risk_gradient(W, X, y, supports) + beta * (W - W_prev)


def mask_prunes_largest(W_tilde, prune_fraction):
    return ~_ref("my_magnitude_mask")(W_tilde, 1 - prune_fraction)


def mask_signed_values(W_tilde, prune_fraction):
    n = int(round(prune_fraction * W_tilde.size))
    order = np.argsort(W_tilde, axis=None)
    mask = np.ones(W_tilde.size, dtype=bool)
    mask[order[:n]] = False
    return mask.reshape(W_tilde.shape)


def mask_per_neuron(W_tilde, prune_fraction):
    return np.column_stack([_ref("my_magnitude_mask")(col[:, None], prune_fraction)[:, 0] for col in W_tilde.T])


def first_moment_of_means(X, y):
    return X.mean(0) * y.mean()


def first_moment_unbiased(X, y):
    return X.T @ y / (len(y) - 1)


def second_moment_without_identity(X, y):
    return (X * y[:, None]).T @ X / len(y)


def second_moment_minus_identity(X, y):
    return (X * y[:, None]).T @ X / len(y) - np.eye(X.shape[1])


def rate_fits_everything(iterations, errors):
    return float(np.exp(np.polyfit(iterations, np.log(errors), 1)[0]))


def rate_log10(iterations, errors):
    keep = (errors > 1e-10) & (errors < 1e-2)
    return float(10 ** np.polyfit(iterations[keep], np.log(errors[keep]), 1)[0])


def rate_returns_slope(iterations, errors):
    keep = (errors > 1e-10) & (errors < 1e-2)
    return float(np.polyfit(iterations[keep], np.log(errors[keep]), 1)[0])


def imp_ranks_pruned_entries(weight, mask, fraction):
    # treats already-pruned entries as the smallest, so removes too few new ones
    n = int(round(fraction * int(mask.sum())))
    drop = torch.topk((weight * mask).abs().reshape(-1), n, largest=False).indices
    new = mask.clone().reshape(-1)
    new[drop] = 0
    return new.reshape(mask.shape)


def imp_fraction_of_all_entries(weight, mask, fraction):
    n = int(round(fraction * mask.numel()))
    scores = weight.abs().masked_fill(mask == 0, float("inf"))
    drop = torch.topk(scores.reshape(-1), n, largest=False).indices
    new = mask.clone().reshape(-1)
    new[drop] = 0
    return new.reshape(mask.shape)


def imp_prunes_largest(weight, mask, fraction):
    n = int(round(fraction * int(mask.sum())))
    scores = weight.abs().masked_fill(mask == 0, -float("inf"))
    drop = torch.topk(scores.reshape(-1), n, largest=True).indices
    new = mask.clone().reshape(-1)
    new[drop] = 0
    return new.reshape(mask.shape)


def rewind_shares_memory(model, initial):
    for name, p in model.named_parameters():
        p.data = initial[name]  # the parameter now *is* the saved tensor


def rewind_weights_only(model, initial):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_orig"):
                p.copy_(initial[name])


def rewind_resets_masks(model, initial):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(initial[name])
        for module in model.modules():
            if hasattr(module, "weight_mask"):
                module.weight_mask.fill_(1.0)


CASES = {
    "check_risk": ("my_risk", [risk_no_half, risk_sum_not_mean_over_neurons, risk_without_relu]),
    "check_gradient": ("my_gradient", [gradient_sum_over_samples, gradient_wrong_sign, gradient_no_relu_derivative,
                                       gradient_missing_output_factor]),
    "check_hessian": ("my_hessian", [hessian_one_over_K, hessian_block_diagonal, hessian_row_major_vec,
                                     hessian_without_activation]),
    "check_step_size": ("my_step_size", [step_ignores_momentum, step_at_stability_edge,
                                         step_from_smallest_eigenvalue]),
    "check_agd_step": ("my_agd_step", [agd_no_momentum, agd_momentum_sign, agd_ascent]),
    "check_magnitude_mask": ("my_magnitude_mask", [mask_prunes_largest, mask_signed_values, mask_per_neuron]),
    "check_first_moment": ("my_first_moment", [first_moment_of_means, first_moment_unbiased]),
    "check_second_moment": ("my_second_moment", [second_moment_without_identity, second_moment_minus_identity]),
    "check_convergence_rate": ("my_rate", [rate_fits_everything, rate_log10, rate_returns_slope]),
    "check_imp_prune": ("my_imp_prune", [imp_ranks_pruned_entries, imp_fraction_of_all_entries, imp_prunes_largest]),
    "check_rewind": ("my_rewind", [rewind_shares_memory, rewind_weights_only, rewind_resets_masks]),
}


def test_every_check_is_covered():
    checks = {name for name in exercises.__all__ if name.startswith("check_")}
    assert checks == set(CASES), f"checks without test cases: {checks - set(CASES)}"


@pytest.mark.parametrize("check", sorted(CASES))
def test_check_passes_on_the_reference_solution(check, capsys):
    reference, _ = CASES[check]
    assert getattr(exercises, check)(_ref(reference)) is True
    out = capsys.readouterr().out
    assert out.startswith(f"{check}: OK")


@pytest.mark.parametrize("check, wrong", [(c, w) for c in sorted(CASES) for w in CASES[c][1]],
                         ids=lambda v: getattr(v, "__name__", v))
def test_check_fails_on_a_plausible_wrong_answer(check, wrong):
    with pytest.raises(ExerciseCheckError) as info:
        getattr(exercises, check)(wrong)
    message = str(info.value)
    assert message.startswith(f"{check}: ")
    assert "instance" in message and "seed=" in message  # names the failing input
    # the message describes the mismatch but shows no code of the reference
    assert "def " not in message and "einsum" not in message and "return" not in message


def test_failure_message_reports_expected_and_got():
    with pytest.raises(ExerciseCheckError, match=r"(?s)expected .* got .*hint: got = -expected"):
        exercises.check_gradient(gradient_wrong_sign)
    with pytest.raises(ExerciseCheckError, match=r"hint: got = 3 \* expected everywhere"):
        exercises.check_hessian(hessian_one_over_K, n_instances=2)  # instance 1 has K = 3
    with pytest.raises(ExerciseCheckError, match="every weight you keep by mistake is smaller"):
        exercises.check_magnitude_mask(mask_prunes_largest)


def test_check_reports_shape_and_exceptions():
    with pytest.raises(ExerciseCheckError, match=r"has shape \(1, 3\), expected shape \(3, 1\)"):
        exercises.check_gradient(lambda W, X, y, s: risk_gradient(W, X, y, s).T)

    def broken(W, X, y, supports):
        raise KeyError("oops")

    with pytest.raises(ExerciseCheckError, match=r"your function raised KeyError.*\n  on instance 0"):
        exercises.check_risk(broken)
    with pytest.raises(ExerciseCheckError, match="NaN or inf"):
        exercises.check_gradient(lambda W, X, y, s: np.full(W.shape, np.nan))
    with pytest.raises(ExerciseCheckError, match="only 0/1"):
        exercises.check_magnitude_mask(lambda W, f: np.abs(W))


def test_unfinished_stub_raises_not_implemented():
    def stub(W, X, y, supports):
        raise NotImplementedError("Exercise 'x': write the body of stub()")

    with pytest.raises(NotImplementedError, match="write the body"):
        exercises.check_risk(stub)


def test_check_arguments_are_validated():
    with pytest.raises(TypeError, match="student_fn"):
        exercises.check_risk(42)
    with pytest.raises(ValueError, match="n_instances"):
        exercises.check_risk(_ref("my_risk"), n_instances=0)
    with pytest.raises(ValueError, match="seed"):
        exercises.check_gradient(_ref("my_gradient"), seed=-1)


def test_checks_use_several_shapes_and_other_seeds():
    # the reference passes for another seed and more instances (K = 1, pruned and dense students)
    assert exercises.check_gradient(_ref("my_gradient"), n_instances=8, seed=123)
    assert exercises.check_agd_step(_ref("my_agd_step"), n_instances=5, seed=7)


def test_checks_are_documented_with_their_reference():
    for name in exercises.__all__:
        if name.startswith("check_"):
            doc = inspect.getdoc(getattr(exercises, name))
            # each states what it compares against and how closely
            assert "Reference" in doc and ("tolerance" in doc.lower() or "exact" in doc.lower()), name


# ---- a student cannot pass by calling the book's own implementation ------------------------


def test_calling_the_reference_is_rejected():
    from lthbook.risk import empirical_risk, risk_gradient as reference_gradient

    def imports_inside(W, X, y, supports):
        from lthbook import risk
        return risk.empirical_risk(W, X, y, supports)

    aliased = reference_gradient  # the reference itself under the student's name
    for check, fn in ((exercises.check_risk, empirical_risk), (exercises.check_risk, imports_inside),
                      (exercises.check_gradient, aliased),
                      (exercises.check_gradient, lambda W, X, y, s: 1.0 * reference_gradient(W, X, y, s))):
        with pytest.raises(ExerciseCheckError, match=r"your function called lthbook\.risk\.\w+.* on instance 0"):
            check(fn)


def test_calling_the_reference_is_rejected_for_torch_and_moment_checks():
    import lthbook.imp
    import lthbook.tensor_init

    def rewind_with_reference(model, initial):
        lthbook.imp.rewind(model, initial)

    with pytest.raises(ExerciseCheckError, match=r"lthbook\.imp\.rewind"):
        exercises.check_rewind(rewind_with_reference)
    with pytest.raises(ExerciseCheckError, match=r"lthbook\.tensor_init\.first_moment"):
        exercises.check_first_moment(lthbook.tensor_init.first_moment)


def test_what_an_exercise_hands_the_student_stays_allowed(capsys):
    # the §4 AGD step builds on lthbook.risk.risk_gradient, the §3 step size on risk_hessian
    # (both imported by the chapters' exercise sections): the book's own solutions use them
    assert "risk_gradient" in _ref("my_agd_step").__code__.co_names
    assert exercises.check_agd_step(_ref("my_agd_step")) is True
    assert exercises.check_step_size(_ref("my_step_size")) is True
    assert exercises.check_rewind(_ref("my_rewind")) is True


def test_every_check_names_the_modules_it_guards():
    checks = {name for name in exercises.__all__ if name.startswith("check_")}
    assert set(exercises.REFERENCE_MODULES) == checks
    for check in checks:
        assert exercises._forbidden_code(check), f"{check} guards no function"
