"""Tests for lthbook.problem_plots and lthbook.style: each function returns a Figure with the expected
axes and lines, draws what it says (edge counts, images, curves), and rejects
bad input with a ValueError (or TypeError for a wrong type)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lthbook import problem_plots as plotting  # noqa: E402
from lthbook import style  # noqa: E402
from lthbook.agd import initial_points, run_agd  # noqa: E402
from lthbook.teacher import make_problem, sample_student_supports, sample_teacher  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def teacher():
    return sample_teacher(K=3, d=12, r_star=3, seed=0)


@pytest.fixture
def student_supports(teacher):
    return sample_student_supports(teacher, r=6, seed=1)


def _solid_and_dashed_edges(ax):
    """Input->neuron edges: lines ending at the hidden layer (y = 1) from the inputs (y = 0)."""
    solid = dashed = 0
    for line in ax.get_lines():
        ys = line.get_ydata()
        if len(ys) == 2 and ys[0] == 0.0 and ys[1] == 1.0:
            if line.get_linestyle() == "-":
                solid += 1
            else:
                dashed += 1
    return solid, dashed


# ---------------------------------------------------------------- style


def test_use_book_style_sets_rcparams():
    with matplotlib.rc_context():
        style.use_book_style()
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.grid"] is True


def test_functions_do_not_leak_style():
    before = matplotlib.rcParams["axes.spines.top"]
    t = sample_teacher(K=2, d=6, r_star=2, seed=0)
    plotting.plot_teacher_student(t)
    assert matplotlib.rcParams["axes.spines.top"] == before


def test_style_context_keeps_interactive_mode():
    """Regression: restoring all rcParams switched Jupyter's inline display off after one figure."""
    with matplotlib.rc_context():
        matplotlib.interactive(False)
        with style.book_style():
            matplotlib.interactive(True)  # what resolving the inline backend does
        assert matplotlib.is_interactive()


def test_every_plot_function_draws_in_the_book_style():
    """Every public plot function of every *_plots module applies the book's style (the §3 and
    §4 figures once did not), either through @styled or a ``with book_style()`` block."""
    import importlib
    import inspect
    import pkgutil

    import lthbook

    modules = [m.name for m in pkgutil.iter_modules(lthbook.__path__) if m.name.endswith("_plots")]
    assert {"problem_plots", "geometry_plots", "convergence_plots", "synthetic_plots", "imp_plots"} <= set(modules)
    for name in modules:
        module = importlib.import_module(f"lthbook.{name}")
        for fname, fn in inspect.getmembers(module, inspect.isfunction):
            if not fname.startswith("plot_") or fn.__module__ != module.__name__:
                continue
            styled = hasattr(fn, "__wrapped__") or "_style()" in inspect.getsource(fn)
            assert styled, f"lthbook.{name}.{fname} does not draw in the book style"


# ---------------------------------------------------------------- Fig. 1


def test_teacher_only_has_one_axes_and_r_star_edges_per_neuron(teacher):
    fig = plotting.plot_teacher_student(teacher)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    solid, dashed = _solid_and_dashed_edges(fig.axes[0])
    assert (solid, dashed) == (teacher.K * teacher.r_star, 0)


def test_teacher_and_student_edges(teacher, student_supports):
    fig = plotting.plot_teacher_student(teacher, student_supports)
    assert len(fig.axes) == 2
    r = student_supports.shape[1]
    assert _solid_and_dashed_edges(fig.axes[0]) == (teacher.K * teacher.r_star, 0)
    # the student keeps the teacher's edges (solid) and adds r - r* per neuron (dashed)
    assert _solid_and_dashed_edges(fig.axes[1]) == (teacher.K * teacher.r_star, teacher.K * (r - teacher.r_star))
    # hidden -> output edges: K per panel
    for ax in fig.axes:
        to_output = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [1.0, 1.8]]
        assert len(to_output) == teacher.K
    # a legend names the two kinds of edges
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("teacher" in t for t in texts) and any("extra" in t for t in texts)


def test_student_missing_a_teacher_input_is_rejected(teacher, student_supports):
    bad = student_supports.copy()
    j = 0
    teacher_input = teacher.supports[j][0]
    replacement = np.setdiff1d(np.arange(teacher.d), bad[j])[0]
    bad[j][bad[j] == teacher_input] = replacement
    bad[j].sort()
    with pytest.raises(ValueError, match="must contain the teacher"):
        plotting.plot_teacher_student(teacher, bad)


@pytest.mark.parametrize(
    "supports",
    [
        np.zeros((2, 3), dtype=int),  # wrong K
        np.array([[0, 1, 99]] * 3),  # index out of range
        np.array([[0.0, 1.0, 2.0]] * 3),  # not integers
    ],
)
def test_bad_supports_rejected(teacher, supports):
    with pytest.raises(ValueError):
        plotting.plot_teacher_student(teacher, supports)


def test_too_many_inputs_rejected():
    big = sample_teacher(K=2, d=plotting.MAX_DRAWN_INPUTS + 1, r_star=2, seed=0)
    with pytest.raises(ValueError, match="too many"):
        plotting.plot_teacher_student(big)


def test_teacher_must_be_a_sparse_teacher():
    with pytest.raises(TypeError):
        plotting.plot_teacher_student(np.zeros((3, 3)))


# ---------------------------------------------------------------- Eq. (4) heat maps


def test_masked_weights_three_images(teacher, student_supports):
    fig = plotting.plot_masked_weights(teacher, student_supports)
    assert isinstance(fig, Figure)
    image_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 3
    shapes = [ax.get_images()[0].get_array().shape for ax in image_axes]
    r = student_supports.shape[1]
    assert shapes == [(r, teacher.K), (teacher.d, teacher.K), (teacher.d, teacher.K)]
    # the mask image: 2 on the teacher's support, 1 on extra student entries, 0 elsewhere
    mask_img = np.asarray(image_axes[2].get_images()[0].get_array())
    assert (mask_img == 2).sum() == teacher.K * teacher.r_star
    assert (mask_img == 1).sum() == teacher.K * (r - teacher.r_star)
    # the middle image is the zero-padded teacher: non-zero only on Supp(M*)
    W_tilde = np.asarray(image_axes[1].get_images()[0].get_array())
    np.testing.assert_allclose(W_tilde, teacher.dense_weights())


def test_masked_weights_rejects_bad_student(teacher):
    with pytest.raises(ValueError):
        plotting.plot_masked_weights(teacher, np.array([[0, 1, 2, 3]] * teacher.K))


# ---------------------------------------------------------------- error curves


def test_error_curves_from_arrays():
    t = np.arange(0, 50, 5)
    fig = plotting.plot_error_curves(
        {"a": (t, 0.3 * 0.5 ** (t / 5)), "b": (t, np.tile(0.3 * 0.9 ** (t / 5), (4, 1)).T)}, success_tol=1e-4
    )
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) == 3  # two medians + the threshold
    assert len(ax.collections) == 1  # min-max band only for the multi-run curve
    assert "iteration" in ax.get_xlabel() and "relative error" in ax.get_ylabel()


def test_error_curves_from_agd_results():
    p = make_problem(K=2, d=8, r_star=2, r=2, N=200, seed=0)
    W0 = initial_points(p.W_star, 0.2, n=3, seed=0)
    res = run_agd(p, W0, max_iter=40, record_every=5)
    fig = plotting.plot_error_curves({"pruned": res})
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 1
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), res.history_iters)
    np.testing.assert_allclose(line.get_ydata(), np.median(res.history.reshape(len(res.history_iters), -1), axis=1))


def test_error_curves_without_history_rejected():
    p = make_problem(K=2, d=8, r_star=2, r=2, N=200, seed=0)
    res = run_agd(p, initial_points(p.W_star, 0.2, n=1, seed=0), max_iter=5)
    with pytest.raises(ValueError, match="no history"):
        plotting.plot_error_curves({"x": res})


@pytest.mark.parametrize(
    "curves",
    [
        {},
        {"a": (np.arange(3), np.ones(4))},  # length mismatch
        {"a": (np.arange(3), np.array([1.0, 0.0, 1.0]))},  # zero on a log axis
        {"a": (np.arange(3), np.array([1.0, np.nan, 1.0]))},
        {"a": (np.array([]), np.array([]))},
    ],
)
def test_error_curves_bad_input(curves):
    with pytest.raises(ValueError):
        plotting.plot_error_curves(curves)


def test_error_curves_bad_tolerance_and_type():
    t = np.arange(3)
    with pytest.raises(ValueError):
        plotting.plot_error_curves({"a": (t, np.ones(3))}, success_tol=0.0)
    with pytest.raises(TypeError):
        plotting.plot_error_curves({"a": np.ones(3)})
