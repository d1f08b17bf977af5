"""The IMP experiments of §5.2 (Figures 6 and 7): their runs, level by level, and the
assembly of the levels into each figure's arrays.

Each figure is a set of IMP *runs*, one per training-set size ``N`` (and, for Figure 6,
per trial); a run is a chain of *levels*. Level 0 trains the dense network; level
``k`` trains the network left after ``k`` pruning steps of
:func:`lthbook.imp.prune_layerwise`, rewound to the run's initialization
(:func:`lthbook.imp.rewind`). A level is a cell (:class:`lthbook.cells.Cell`) whose
chain is its run: the runner (:func:`lthbook.runner.run_figure`) stores every finished
level in the on-disk cache with the mask for the next level, so an interrupted run
resumes at the first missing level, and a longer level grid reuses the levels already
computed. Settings per scale are in :mod:`lthbook.presets`, the claim checks in
:mod:`lthbook.claims`; :data:`FIG6` and :data:`FIG7` are the registry's experiments.

* **Figure 6** (synthetic): teacher of Eq. (1) with ``K = 5``, ``d = 100``,
  ``r* = 20`` (``r*/d = 20 %``) and noise ``sigma/E_y = 1e-3``; the student starts
  dense (``r = d``). It is trained by full-batch Adam on the squared loss; the test error
  is ``||g(X_test; W) - g(X_test; W*)|| / ||g(X_test; W*)||`` on fresh noiseless inputs
  (:func:`lthbook.training.relative_error`). The paper does not say how its student was
  initialised; we start it at relative distance ``init_distance`` from the zero-padded
  ``tilde W*``, as in §5's protocol for Algorithm 1 (a default PyTorch initialisation
  leaves the dense student at a spurious point, with test error 0.3-0.5 even for
  ``N = 1000``). Within a trial, all ``N`` share the teacher, ``W(0)`` and the test
  set, and the training sets are nested (the first ``N`` of one sample). With ``batched:
  true`` the runs of one level with the same ``N`` train in lockstep
  (:func:`lthbook.batched.train_regressions_batched`): the same arithmetic as one at a time
  (equal to 1e-9 in float64), but in float32 the rounding differs, and since magnitude
  pruning ranks weights that differ at that level, later masks (and errors) can differ
  between the two; keyed apart from the one-at-a-time runs.
* **Figure 7** (MNIST): ``network`` is ``"lenet5"`` (the classic LeNet-5) or
  ``"lenet5-paper-code"`` (the network the paper's code calls LeNet5,
  :mod:`lthbook.networks`), trained with the paper code's settings (Adam, learning rate
  ``1.2e-3``, batch 60, weight decay ``1e-4``) for ``epochs`` epochs per level; the
  recorded number is the best test accuracy over the epochs, as in that code. Per
  trial (setting ``trials``), the training sets are the first ``N`` images of one seeded
  permutation of the 60 000 training images (nested) and all ``N`` share the
  initialization; trial 0 uses the base seed, later trials seeds of their own. With
  ``batched: true`` the runner hands the session one level of every run at a time and the
  runs train in lockstep (:mod:`lthbook.batched`; equal to separate runs to float rounding,
  and keyed apart from them). ``precision: "auto"`` is resolved per device before the cache
  keys are formed (:func:`lthbook.training.resolve_precision`).

Every level also records the IMP invariants (:func:`lthbook.imp.check_training_invariants`,
:func:`lthbook.imp.check_rewind`): pruned weights exactly zero after training, no
unpruned weight frozen, parameters bitwise equal to the initialization after the rewind;
and how the unpruned negative weights moved (``negative_moves``,
:func:`lthbook.imp.negative_weight_moves`). Figure 7's settings may carry ``quirks`` (not a
preset setting, so absent from every cache key): the paper code's behaviours
(:data:`lthbook.paper_code.QUIRKS`) that its runs switch on, used by
:func:`lthbook.investigations.paper_code_side_by_side`.

Result of :func:`lthbook.runner.run_figure`: ``figure``, ``title``, ``claim``, ``scale``, ``seed``, ``device``,
``threads``, ``settings``, ``axes`` (``N``, ``level``, ``remaining`` = nominal fraction
``(1 - p)^level``), ``raw`` (per ``N`` and level, see below), ``cells``
(number of levels over all runs), ``cells_from_cache``, ``cell_time_s``, ``wall_time_s``,
``versions``, ``created`` (and ``data_source`` for Figure 7) -- the same conventions as
:func:`lthbook.runner.run_figure` for Figures 2-5. ``raw`` holds, per ``N`` (outer
index) and level (inner index): Figure 6 -- ``test_error`` and ``train_error``
(``[N][trial][level]``), ``teacher_kept`` (fraction of the teacher's weights still
unpruned) and ``remaining`` (actual fraction of unpruned weights), ``mean_test_error``
and ``mean_teacher_kept`` (``[N][level]``, means over trials); Figure 7 --
``best_test_accuracy``, ``final_test_accuracy``, ``remaining`` (``[N][level]``) and
``test_accuracy`` (``[N][level][epoch]``), means over the trials, and
``best_test_accuracy_trials`` (``[N][trial][level]``). Both: ``invariants`` summed over all levels
(all zero / empty when IMP is correct) and ``seconds`` (training time per
``[N]...[level]``).
"""

from __future__ import annotations

import base64
import contextlib
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import __version__
from .agd import initial_points
from .cache import to_jsonable
from .cells import Cell, cell_rng
from .imp import (attach_masks, check_rewind, check_training_invariants, effective_weights, masks,
                  negative_weight_moves, prune_layerwise, remaining_after, rewind, set_masks, snapshot_parameters)
from .batched import train_classifiers_batched, train_regressions_batched
from .networks import OneHiddenLayerStudent, build_network
from .paper_code import check_quirks, sign_gradient_mask, write_biases_into_snapshot
from .teacher import dense_supports, make_problem_from_teacher, sample_teacher, with_supports
from .training import prepare_images, resolve_precision, train_classifier, train_regression


def pack_masks(mask: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Masks as JSON: the concatenated 0/1 entries bit-packed and base64-encoded, with the shapes."""
    flat = np.concatenate([m.detach().cpu().numpy().ravel() != 0 for m in mask.values()])
    return {"names": list(mask), "shapes": [list(m.shape) for m in mask.values()],
            "bits": base64.b64encode(np.packbits(flat).tobytes()).decode("ascii")}


def unpack_masks(packed: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`pack_masks` (float32 0/1 tensors)."""
    sizes = [int(np.prod(s)) for s in packed["shapes"]]
    flat = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8))[:sum(sizes)]
    out, start = {}, 0
    for name, shape, size in zip(packed["names"], packed["shapes"], sizes):
        out[name] = torch.from_numpy(flat[start:start + size].astype(np.float32).reshape(shape))
        start += size
    return out


#: Settings left out of a level's cache key while they have their default value, so that adding
#: an option keeps the keys (and cached levels) of the runs made before it existed.
_DEFAULT_OFF = {"init": "near", "batched": False}


def _level_config(name: str, settings: Mapping[str, Any], seed: int, device: str, run: Mapping[str, Any],
                  level: int) -> dict[str, Any]:
    """What a level's result depends on (the cache key): every setting but the N grid and the
    number of levels, the run (``N``, trial), the level, seed, device type and version."""
    params = {k: v for k, v in settings.items() if k not in ("N_values", "levels", "trials")
              and not (k in _DEFAULT_OFF and v == _DEFAULT_OFF[k])}
    return {"figure": name, "seed": int(seed), "device": device, "lthbook_version": __version__, **params,
            **run, "level": int(level)}


class _Run:
    """A model with its masks, initialization and training function, built on first use;
    ``extra(outcome)`` adds figure-specific numbers to a level's outcome. ``batch(level)``, when
    given, returns what batched training needs instead of ``train`` (:meth:`ImpFigure.train_round`):
    for Figure 7 the training images, labels and shuffling seed of that level, for Figure 6
    ``(X, y, X_test, y_test)`` (:mod:`lthbook.batched`). ``quirks`` switches on
    the paper code's behaviours (:data:`lthbook.paper_code.QUIRKS`; empty for the book's IMP):
    ``"sign_mask"`` trains under :func:`lthbook.paper_code.sign_gradient_mask`, ``"bias_rewind"``
    lets every round after a rewind write its trained biases into the snapshot, as that code's
    shared storage does (the rewind check then reports the biases). Runs with quirks are trained
    one at a time (:meth:`level`), never batched."""

    def __init__(self, build, train, extra=None, batch=None, quirks=()):
        self._build, self._train, self.batch = build, train, batch
        self.extra = extra if extra is not None else (lambda outcome: {})
        self.quirks = check_quirks(quirks)
        self.model = None

    def level(self, mask: Mapping[str, torch.Tensor] | None, fraction: float, level: int) -> dict[str, Any]:
        """One IMP level: set the mask, rewind and check the rewind (:meth:`start`), train under the
        mask, then check the invariants and prune (:meth:`finish`)."""
        state = self.start(mask)
        with sign_gradient_mask(self.model) if "sign_mask" in self.quirks else contextlib.nullcontext():
            metrics = self._train(self.model, level)
        if "bias_rewind" in self.quirks and level > 0:
            write_biases_into_snapshot(self.model, self.initial)
        return self.finish(state, metrics, fraction)

    def start(self, mask: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        """Set the mask ``M`` (none: the dense level 0), rewind to ``W(0)``, check the rewind; returns
        what :meth:`finish` compares against."""
        if self.model is None:
            self.model = attach_masks(self._build())
            self.initial = snapshot_parameters(self.model)
            self.reference = snapshot_parameters(self.model)
        if mask is not None:
            set_masks(self.model, mask)
        rewind(self.model, self.initial)
        bad_rewind = check_rewind(self.model, self.initial, self.reference)
        current = masks(self.model)
        return {"bad_rewind": bad_rewind, "current": current, "before": effective_weights(self.model)}

    def finish(self, state: Mapping[str, Any], metrics: Mapping[str, Any], fraction: float) -> dict[str, Any]:
        """After training: check that pruned weights stayed zero and unpruned ones moved, then prune
        ``fraction`` of the remaining weights of every tensor."""
        current = state["current"]
        after = effective_weights(self.model)
        inv = check_training_invariants(state["before"], after, current)
        kept = sum(int(m.sum()) for m in current.values())
        total = sum(m.numel() for m in current.values())
        prune_layerwise(self.model, fraction)
        return {**metrics, "remaining": kept / total, "kept_weights": kept,
                "invariants": {"pruned_nonzero": inv.pruned_nonzero, "frozen": inv.frozen,
                               "frozen_negative": inv.frozen_negative, "unpruned": inv.unpruned,
                               "rewind_mismatch": state["bad_rewind"]},
                "negative_moves": negative_weight_moves(state["before"], after, current),
                "current_masks": current, "next_masks": pack_masks(masks(self.model))}


def _fig6_trial_data(settings: Mapping[str, Any], seed: int, trial: int):
    """Teacher, the largest training set, test set and dense ``W(0)`` of one trial (shared by all N)."""
    rng = cell_rng({"figure": "fig6", "seed": seed, "seed_key": {"trial": trial}})
    K, d = settings["K"], settings["d"]
    teacher = sample_teacher(K, d, settings["r_star"], rng)
    problem = make_problem_from_teacher(teacher, d, max(settings["N_values"]), settings["noise_level"], rng)
    dense = with_supports(problem, dense_supports(K, d))
    W0 = initial_points(dense.W_star, settings["init_distance"], n=1, seed=rng)[0]  # (d, K)
    X_test = rng.standard_normal((settings["test_size"], d))
    if settings.get("init", "near") == "pytorch":  # a default initialization, seeded per trial (own stream)
        init_rng = cell_rng({"figure": "fig6", "seed": seed, "seed_key": {"trial": trial, "init": "pytorch"}})
        W0 = _pytorch_init(d, K, int(init_rng.integers(2**62)))
    return teacher, problem, W0, X_test, teacher(X_test)


def _pytorch_init(d: int, K: int, seed: int) -> np.ndarray:
    """``W(0)`` (shape ``(d, K)``) as PyTorch initializes the dense student's layer (uniform in
    ``[-1/sqrt(d), 1/sqrt(d)]``), from a fixed seed; it knows nothing of the teacher."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OneHiddenLayerStudent(d, K).hidden.weight.detach().double().numpy().T.copy()


def fig6_start_overlap(settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """How much of the teacher's support the start of Figure 6 already reveals: per trial, the
    fraction of the teacher's ``r* K`` weights among the ``r* K`` largest entries of ``|W(0)|``
    (what one-shot magnitude pruning to ``r*/d`` would keep), against ``r*/d`` for a mask
    that knows nothing (chance)."""
    K, d, r_star = settings["K"], settings["d"], settings["r_star"]
    fractions = []
    for trial in range(settings["trials"]):
        teacher, _, W0, _, _ = _fig6_trial_data(settings, seed, trial)
        support = teacher.mask().astype(bool)  # (d, K)
        top = np.argsort(-np.abs(W0), axis=None)[: r_star * K]
        fractions.append(float(support.ravel()[top].mean()))
    return {"per_trial": fractions, "mean": float(np.mean(fractions)), "chance": r_star / d}


def _fig6_run(settings, teacher, problem, W0, X_test, y_test, N, device):
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    X, y, Xt, yt = t(problem.X[:N]), t(problem.y[:N]), t(X_test), t(y_test)
    teacher_mask = t(teacher.mask().T)  # (K, d), the layout of hidden.weight

    def build():
        model = OneHiddenLayerStudent(settings["d"], settings["K"]).to(device)
        with torch.no_grad():
            model.hidden.weight.copy_(t(W0.T))
        return model

    def train(model, level):
        return train_regression(model, X, y, Xt, yt, steps=settings["steps"], lr=settings["lr"])

    def teacher_kept(outcome):  # fraction of the teacher's weights (Omega*_j) unpruned in this level's mask
        kept = (outcome["current_masks"]["hidden.weight"] * teacher_mask).sum() / teacher_mask.sum()
        return {"teacher_kept": float(kept)}

    return _Run(build, train, teacher_kept, batch=lambda level: (X, y, Xt, yt))


def _trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of Figure 7: the base seed for trial 0 (the runs made before
    trials existed), else one drawn from the trial's own stream (:func:`lthbook.cells.cell_rng`)."""
    if trial == 0:
        return int(seed)
    return int(cell_rng({"figure": "fig7", "seed": seed, "seed_key": {"trial": trial}}).integers(2**40))


def _fig7_run(settings, data, order, N, seed, device):
    idx = order[:N]
    X = prepare_images(data.train_images[idx], settings["precision"], device)
    y = data.train_labels[idx].to(device)
    Xt = prepare_images(data.test_images, settings["precision"], device)
    yt = data.test_labels.to(device)

    def build():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(settings["network"]).to(device)

    def train(model, level):
        return train_classifier(model, X, y, Xt, yt, epochs=settings["epochs"], batch_size=settings["batch_size"],
                                lr=settings["lr"], weight_decay=settings["weight_decay"],
                                seed=seed * 1000 + level, precision=settings["precision"])

    return _Run(build, train, batch=lambda level: (X, y, seed * 1000 + level), quirks=settings.get("quirks", ()))


def _invariant_totals(payloads) -> dict[str, Any]:
    flat = [p["invariants"] for run in payloads for p in run]
    return {"pruned_nonzero": sum(i["pruned_nonzero"] for i in flat), "frozen": sum(i["frozen"] for i in flat),
            "frozen_negative": sum(i["frozen_negative"] for i in flat),
            "rewind_mismatch": sorted({n for i in flat for n in i["rewind_mismatch"]}), "levels_checked": len(flat)}


def _assemble_fig6(s, payloads) -> dict[str, Any]:
    inv = _invariant_totals(payloads)
    T = s["trials"]
    by = lambda key: [[[p[key] for p in payloads[i * T + t]] for t in range(T)]  # noqa: E731
                      for i in range(len(s["N_values"]))]
    err = by("test_error")
    return {"test_error": err, "train_error": by("train_error"), "teacher_kept": by("teacher_kept"),
            "remaining": by("remaining"), "seconds": by("seconds"),
            "mean_test_error": np.mean(np.asarray(err, dtype=float), axis=1).tolist(),
            "mean_teacher_kept": np.mean(np.asarray(by("teacher_kept"), dtype=float), axis=1).tolist(),
            "invariants": inv,
            "layout": "test_error/train_error/teacher_kept/remaining/seconds: [N][trial][level]; "
                      "mean_test_error/mean_teacher_kept: [N][level] (means over trials)"}


def _assemble_fig7(settings, runs, payloads) -> dict[str, Any]:
    inv = _invariant_totals(payloads)
    n_values, trials = settings["N_values"], settings.get("trials", 1)
    where = {(run["N"], run.get("trial", 0)): i for i, run in enumerate(runs)}
    per_trial = lambda key: [[[p[key] for p in payloads[where[(N, t)]]] for t in range(trials)]  # noqa: E731
                             for N in n_values]
    mean = lambda key: np.mean(np.asarray(per_trial(key), dtype=float), axis=1).tolist()  # noqa: E731
    best = per_trial("best_test_accuracy")
    return {"best_test_accuracy": mean("best_test_accuracy"), "final_test_accuracy": mean("final_test_accuracy"),
            "test_accuracy": mean("test_accuracy"), "remaining": mean("remaining"), "seconds": mean("seconds"),
            "best_test_accuracy_trials": best, "invariants": inv,
            "layout": "best_test_accuracy/final_test_accuracy/remaining/seconds: [N][level] and test_accuracy: "
                      "[N][level][epoch], means over the trials (one trial: that trial's numbers); "
                      "best_test_accuracy_trials: [N][trial][level]"}


# --------------------------------------------------------------------------
# the experiment family of Figures 6-7
# --------------------------------------------------------------------------


class _ImpSession:
    """Computes IMP levels: keeps one model per run (chain) and the data its runs share;
    sets torch's CPU threads for the whole session and restores them on exit. With the
    setting ``batched`` (Figures 6 and 7) the runner hands it one level of many runs at a time
    (:meth:`compute_round`), which trains them in lockstep (:mod:`lthbook.batched`)."""

    def __init__(self, figure: "ImpFigure", name: str, settings: Mapping[str, Any], seed: int, device: str,
                 threads: int, data_dir: str | None) -> None:
        self._device, self._threads = torch.device(device), threads
        settings = figure.resolve(settings, self._device.type)
        self._figure, self._name, self._settings, self._seed = figure, name, settings, seed
        self.batched = bool(settings.get("batched", False))
        self._shared = figure.prepare(settings, seed, data_dir)
        self._runs: dict[Any, _Run] = {}

    def __enter__(self) -> "_ImpSession":
        self._previous_threads = torch.get_num_threads()
        torch.set_num_threads(self._threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self._previous_threads)

    def _run(self, cell: Cell) -> _Run:
        run = self._runs.get(cell.chain)
        if run is None:
            run = self._runs[cell.chain] = self._figure.build_run(self._settings, self._shared, cell.params,
                                                                  self._seed, self._device)
        return run

    def _payload(self, run: _Run, out: dict[str, Any], seconds: float) -> dict[str, Any]:
        extra = run.extra(out)
        out.pop("current_masks")
        return to_jsonable({**out, **extra, "wall_s": seconds})

    def compute(self, cell: Cell, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        start = time.perf_counter()
        run = self._run(cell)
        mask = None if previous is None else unpack_masks(previous["next_masks"])
        out = run.level(mask, self._settings["prune_fraction"], cell.params["level"])
        return self._payload(run, out, time.perf_counter() - start)

    def compute_round(self, cells: Sequence[Cell], previous: Sequence[Mapping[str, Any] | None]
                      ) -> list[dict[str, Any]]:
        """One level of each of several runs (``cells``, one per chain, ``previous`` their chains'
        previous payloads), trained together; the same payloads as :meth:`compute` up to float
        rounding. Each payload's ``wall_s`` is the round's time divided by the number of cells."""
        start = time.perf_counter()
        s = self._settings
        runs = [self._run(cell) for cell in cells]
        if any(run.quirks for run in runs):
            raise ValueError("runs with quirks (the paper code's behaviours) are trained one at a time, not batched")
        states = [run.start(None if prev is None else unpack_masks(prev["next_masks"]))
                  for run, prev in zip(runs, previous)]
        batches = [run.batch(cell.params["level"]) for run, cell in zip(runs, cells)]
        metrics = self._figure.train_round(s, self._shared, [run.model for run in runs], batches, self._device)
        outs = [run.finish(state, m, s["prune_fraction"]) for run, state, m in zip(runs, states, metrics)]
        seconds = (time.perf_counter() - start) / len(cells)
        return [self._payload(run, out, seconds) for run, out in zip(runs, outs)]

    def extra(self) -> dict[str, Any]:
        return self._figure.result_extra(self._settings, self._shared)


class ImpFigure:
    """One figure of §5.2 (an :class:`lthbook.cells.Experiment`): a set of IMP runs, one per
    ``N`` (and trial), each a chain of ``levels`` cells."""

    default_threads = 1

    def runs(self, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The runs of the figure, e.g. ``[{"N": 100, "trial": 0}, ...]``."""
        raise NotImplementedError

    def level_cost(self, settings: Mapping[str, Any], run: Mapping[str, Any]) -> float:
        """Relative cost of one level of ``run`` (for the progress bar)."""
        raise NotImplementedError

    def prepare(self, settings: Mapping[str, Any], seed: int, data_dir: str | None) -> dict[str, Any]:
        """Data shared by the runs (built when a session opens)."""
        return {}

    def build_run(self, settings: Mapping[str, Any], shared: dict[str, Any], run: Mapping[str, Any], seed: int,
                  device: torch.device) -> "_Run":
        raise NotImplementedError

    def result_extra(self, settings: Mapping[str, Any], shared: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def resolve(self, settings: Mapping[str, Any], device_type: str) -> Mapping[str, Any]:
        """The settings a level is computed with and keyed by, on a device of ``device_type``
        (Figure 7 resolves ``precision="auto"``)."""
        return settings

    def train_round(self, settings: Mapping[str, Any], shared: dict[str, Any], models: list[torch.nn.Module],
                    batches: list[tuple], device: torch.device) -> list[dict[str, Any]]:
        """Train one level of several runs together (setting ``batched``): ``models`` with their
        masks set and rewound, ``batches`` what each run's ``_Run.batch(level)`` returned; returns
        each run's training metrics, as its one-at-a-time ``train`` would (to float rounding)."""
        raise NotImplementedError

    def assemble_raw(self, settings: Mapping[str, Any], runs: list[dict[str, Any]],
                     payloads: list[list[Mapping[str, Any]]]) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self, name: str, settings: Mapping[str, Any], seed: int, device_type: str) -> list[Cell]:
        settings = self.resolve(settings, device_type)
        cells = []
        for i, run in enumerate(self.runs(settings)):
            cost = self.level_cost(settings, run)
            label = ", ".join(f"{k}={v}" for k, v in run.items())
            for level in range(settings["levels"]):
                cells.append(Cell(config=_level_config(name, settings, seed, device_type, run, level), cost=cost,
                                  label=f"{label}, level {level}", params={**run, "level": level}, chain=i))
        return cells

    def session(self, name: str, settings: Mapping[str, Any], seed: int, device: str, threads: int | None,
                data_dir: str | None = None) -> _ImpSession:
        return _ImpSession(self, name, settings, seed, device, self.default_threads if threads is None else threads,
                           data_dir)

    def assemble(self, settings: Mapping[str, Any], cells: Sequence[Cell],
                 payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        runs = self.runs(settings)
        per_run: list[list[Mapping[str, Any]]] = [[] for _ in runs]
        for cell, payload in zip(cells, payloads):
            per_run[cell.chain].append(payload)
        levels = list(range(settings["levels"]))
        axes = {"N": settings["N_values"], "level": levels,
                "remaining": [remaining_after(k, settings["prune_fraction"]) for k in levels]}
        return {"axes": axes, "raw": self.assemble_raw(settings, runs, per_run)}


class Fig6(ImpFigure):
    """Figure 6: IMP on the synthetic teacher, one run per ``N`` and trial."""

    def runs(self, settings):
        return [{"N": N, "trial": t} for N in settings["N_values"] for t in range(settings["trials"])]

    def level_cost(self, settings, run):
        return float((run["N"] + 300) * settings["steps"])  # a synthetic step also pays a fixed overhead

    def build_run(self, settings, shared, run, seed, device):
        trial = run["trial"]
        if trial not in shared:
            shared[trial] = _fig6_trial_data(settings, seed, trial)
        return _fig6_run(settings, *shared[trial], run["N"], device)

    def train_round(self, settings, shared, models, batches, device):
        return train_regressions_batched(models, batches, steps=settings["steps"], lr=settings["lr"])

    def assemble_raw(self, settings, runs, payloads):
        return _assemble_fig6(settings, payloads)


class Fig7(ImpFigure):
    """Figure 7: IMP on MNIST, one run per ``N`` and trial (per trial: nested training sets and one
    initialization). Trial 0 uses the base seed, so its levels keep the cache keys of the runs
    made before trials existed."""

    def runs(self, settings):
        return [{"N": N, **({"trial": t} if t else {})} for t in range(settings.get("trials", 1))
                for N in settings["N_values"]]

    def level_cost(self, settings, run):
        return float(run["N"] * settings["epochs"])

    def resolve(self, settings, device_type):
        if settings["precision"] != "auto":
            return settings
        network = settings["network"]
        chosen = resolve_precision("auto", torch.device(device_type), lambda: attach_masks(build_network(network)),
                                   network)
        return {**settings, "precision": chosen}

    def prepare(self, settings, seed, data_dir):
        from .mnist import load_mnist_cached

        return {"data": load_mnist_cached(data_dir), "orders": {}}

    def build_run(self, settings, shared, run, seed, device):
        trial_seed = _trial_seed(seed, run.get("trial", 0))
        if trial_seed not in shared["orders"]:
            gen = torch.Generator().manual_seed(trial_seed)
            shared["orders"][trial_seed] = torch.randperm(shared["data"].train_images.shape[0], generator=gen)
        return _fig7_run(settings, shared["data"], shared["orders"][trial_seed], run["N"], trial_seed, device)

    def train_round(self, settings, shared, models, batches, device):
        if "test" not in shared:
            shared["test"] = (prepare_images(shared["data"].test_images, settings["precision"], device),
                              shared["data"].test_labels.to(device))
        Xt, yt = shared["test"]
        return train_classifiers_batched(models, [(X, y) for X, y, _ in batches], Xt, yt,
                                         seeds=[seed for _, _, seed in batches], epochs=settings["epochs"],
                                         batch_size=settings["batch_size"], lr=settings["lr"],
                                         weight_decay=settings["weight_decay"], precision=settings["precision"])

    def result_extra(self, settings, shared):
        return {"data_source": shared["data"].source.replace(str(Path.home()), "~"),
                "precision_used": settings["precision"]}

    def assemble_raw(self, settings, runs, payloads):
        return _assemble_fig7(settings, runs, payloads)


#: Figure 6: IMP on the synthetic teacher.
FIG6 = Fig6()
#: Figure 7: IMP on MNIST.
FIG7 = Fig7()

__all__ = ["ImpFigure", "FIG6", "FIG7", "pack_masks", "unpack_masks", "fig6_start_overlap"]
