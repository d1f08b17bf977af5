"""Argument validation across the package (lthbook._validation, scales, and the public entry points).

Every bad value must fail early with a ``ValueError`` (or ``TypeError`` for a
wrong type) whose message names the offending parameter.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lthbook import scales
from lthbook._validation import (
    as_generator,
    check_finite,
    check_float,
    check_int,
    check_shape,
    resolve_device,
    resolve_dtype,
)
from lthbook.agd import initial_points, paper_step_size, run_agd
from lthbook.scales import get_scale, pick
from lthbook.teacher import make_problem

SETTINGS = settings(max_examples=30, deadline=None, database=None)


def names_parameter(message: str, name: str) -> bool:
    """``name`` occurs in ``message`` as a whole identifier (so ``r`` does not match ``r_star``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


@pytest.fixture(scope="module")
def small_problem():
    return make_problem(K=2, d=8, r_star=2, r=3, N=40, seed=0)


@pytest.fixture(scope="module")
def small_W0(small_problem):
    return initial_points(small_problem.W_star, 0.1, n=2, seed=0)


# --------------------------------------------------------------------------
# the helpers themselves
# --------------------------------------------------------------------------


def test_check_int():
    assert check_int("n", 3, 1) == 3
    assert check_int("n", np.int64(5), 1, 5) == 5 and type(check_int("n", np.int64(5), 1)) is int
    with pytest.raises(ValueError, match=r"n must satisfy 1 <= n <= 4, got n=5"):
        check_int("n", 5, 1, 4)
    with pytest.raises(ValueError, match=r"n must satisfy 1 <= n, got n=0"):
        check_int("n", 0, 1)
    for bad in (2.0, True, "3", None):
        with pytest.raises(TypeError, match="n must be an integer"):
            check_int("n", bad, 1)


def test_check_float():
    assert check_float("x", 2, 0.0) == 2.0
    assert check_float("x", 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="x must satisfy 0.0 < x"):
        check_float("x", 0.0, 0.0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"x must satisfy 0.0 <= x < 1.0, got x=1.0"):
        check_float("x", 1.0, 0.0, 1.0, high_inclusive=False)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="x must be finite"):
            check_float("x", bad)
    for bad in ("1", None, True, 1j):
        with pytest.raises(TypeError, match="x must be a real number"):
            check_float("x", bad)


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10),
    low=st.floats(min_value=-5, max_value=5),
    width=st.floats(min_value=0, max_value=5),
    low_inc=st.booleans(),
    high_inc=st.booleans(),
)
@SETTINGS
def test_check_float_interval_property(value, low, width, low_inc, high_inc):
    high = low + width
    inside = (value >= low if low_inc else value > low) and (value <= high if high_inc else value < high)
    if inside:
        assert check_float("x", value, low, high, low_inclusive=low_inc, high_inclusive=high_inc) == value
    else:
        with pytest.raises(ValueError, match="x must satisfy"):
            check_float("x", value, low, high, low_inclusive=low_inc, high_inclusive=high_inc)


def test_check_finite_and_shape():
    check_finite("a", np.ones(3))
    check_finite("t", torch.ones(3))
    with pytest.raises(ValueError, match="a must contain only finite"):
        check_finite("a", np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="t must contain only finite"):
        check_finite("t", torch.tensor([np.nan]))
    check_shape("a", np.zeros((2, 3)), (None, 3))
    with pytest.raises(ValueError, match=r"a must have shape \(\*, 4\), got \(2, 3\)"):
        check_shape("a", np.zeros((2, 3)), (None, 4))
    with pytest.raises(ValueError, match="a must have shape"):
        check_shape("a", np.zeros((2, 3, 1)), (2, 3))


def test_resolve_device_and_dtype():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("tpu", "gpu", "meta", "not a device"):
        with pytest.raises(ValueError, match="device"):
            resolve_device(bad)
    assert resolve_dtype("float64") is torch.float64
    assert resolve_dtype(torch.float32) is torch.float32
    for bad in ("float16", torch.float16, "double", None):
        with pytest.raises(ValueError, match="dtype"):
            resolve_dtype(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_resolve_device_cuda_without_cuda():
    for dev in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device(dev)


def test_as_generator():
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    assert as_generator(5).integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    assert isinstance(as_generator(None), np.random.Generator)
    with pytest.raises(ValueError, match="seed"):
        as_generator(-1)
    with pytest.raises(TypeError, match="seed"):
        as_generator(1.5)


# --------------------------------------------------------------------------
# make_problem
# --------------------------------------------------------------------------

VALID = dict(K=2, d=6, r_star=2, r=3, N=10)


@pytest.mark.parametrize(
    "override,name",
    [
        (dict(r=7), "r"),  # r > d
        (dict(r=0, r_star=0), "r"),
        (dict(K=0), "K"),
        (dict(K=-3), "K"),
        (dict(N=0), "N"),
        (dict(r_star=4), "r_star"),  # r* > r
        (dict(r_star=0), "r_star"),
        (dict(d=0), "d"),
    ],
)
def test_make_problem_rejects_bad_sizes(override, name):
    with pytest.raises(ValueError) as info:
        make_problem(**{**VALID, **override}, seed=0)
    assert names_parameter(str(info.value), name), str(info.value)


@pytest.mark.parametrize("noise_level", [-1e-9, -0.5, math.nan, math.inf])
def test_make_problem_rejects_bad_noise_level(noise_level):
    with pytest.raises(ValueError, match="noise_level"):
        make_problem(**VALID, noise_level=noise_level, seed=0)


def test_make_problem_rejects_bad_types_and_seed():
    with pytest.raises(TypeError, match="K"):
        make_problem(**{**VALID, "K": 2.0}, seed=0)
    with pytest.raises(TypeError, match="N"):
        make_problem(**{**VALID, "N": True}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        make_problem(**VALID, seed=-1)


small_ints = st.integers(min_value=-2, max_value=7)


@given(K=small_ints, d=small_ints, r_star=small_ints, r=small_ints, N=small_ints,
       noise=st.sampled_from([0.0, 0.1, -0.1]), seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_make_problem_property(K, d, r_star, r, N, noise, seed):
    offending = set()
    if K < 1:
        offending.add("K")
    if d < 1:
        offending.add("d")
    if r < 1 or r > d:
        offending.add("r")
    if r_star < 1 or r_star > r:
        offending.add("r_star")
    if N < 1:
        offending.add("N")
    if noise < 0:
        offending.add("noise_level")
    if offending:
        with pytest.raises(ValueError) as info:
            make_problem(K=K, d=d, r_star=r_star, r=r, N=N, noise_level=noise, seed=seed)
        message = str(info.value)
        assert any(names_parameter(message, name) for name in offending), (offending, message)
    else:
        p = make_problem(K=K, d=d, r_star=r_star, r=r, N=N, noise_level=noise, seed=seed)
        assert p.X.shape == (N, d) and p.y.shape == (N,)
        assert p.supports.shape == (K, r) and p.W_star.shape == (r, K)
        assert p.teacher.supports.shape == (K, r_star)
        for j in range(K):
            assert set(p.teacher.supports[j]) <= set(p.supports[j])
        assert np.all(np.isfinite(p.y))


# --------------------------------------------------------------------------
# initial_points and paper_step_size
# --------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [0.0, -0.1, math.nan, math.inf, [0.1, 0.0], [0.2, math.nan], [[0.1]]])
def test_initial_points_rejects_bad_distance(distance):
    with pytest.raises(ValueError, match="distance"):
        initial_points(np.ones((3, 2)), distance, seed=0)


def test_initial_points_rejects_bad_W_star_and_n():
    with pytest.raises(ValueError, match="W_star"):
        initial_points(np.ones(3), 0.1)
    with pytest.raises(ValueError, match="n"):
        initial_points(np.ones((3, 2)), 0.1, n=0)


@given(distance=st.floats(min_value=1e-6, max_value=1e3), n=st.integers(1, 4), seed=st.integers(0, 1000))
@SETTINGS
def test_initial_points_distance_property(distance, n, seed):
    W_star = np.arange(1.0, 7.0).reshape(3, 2)
    W0 = initial_points(W_star, distance, n=n, seed=seed)
    assert W0.shape == (n, 3, 2)
    got = np.linalg.norm(W0 - W_star, axis=(1, 2)) / np.linalg.norm(W_star)
    np.testing.assert_allclose(got, distance, rtol=1e-9)


@given(distance=st.one_of(st.floats(max_value=0.0), st.just(math.nan)))
@SETTINGS
def test_initial_points_nonpositive_property(distance):
    with pytest.raises(ValueError, match="distance"):
        initial_points(np.ones((3, 2)), distance)


def test_paper_step_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="K"):
        paper_step_size(0)
    with pytest.raises(ValueError, match="eta_unscaled"):
        paper_step_size(5, 0.0)


# --------------------------------------------------------------------------
# run_agd
# --------------------------------------------------------------------------


def test_run_agd_rejects_nan_in_W0(small_problem, small_W0):
    for bad in (np.nan, np.inf):
        W0 = small_W0.copy()
        W0[1, 0, 1] = bad
        with pytest.raises(ValueError, match="W0"):
            run_agd(small_problem, W0)


def test_run_agd_rejects_bad_W0_shape(small_problem, small_W0):
    with pytest.raises(ValueError, match="W0"):
        run_agd(small_problem, small_W0.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="W0"):
        run_agd(small_problem, small_W0[0])
    with pytest.raises(ValueError, match="W0"):
        run_agd([small_problem, small_problem], small_W0)  # P = 2 needs (P, B, r, K)


def test_run_agd_rejects_mismatched_problems(small_problem, small_W0):
    other = make_problem(K=2, d=8, r_star=2, r=3, N=41, seed=1)
    with pytest.raises(ValueError, match="share"):
        run_agd([small_problem, other], np.stack([small_W0, small_W0]))
    with pytest.raises(TypeError, match="problems"):
        run_agd([], small_W0)
    with pytest.raises(TypeError, match="problems"):
        run_agd("not a problem", small_W0)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan])
def test_run_agd_rejects_bad_beta(small_problem, small_W0, beta):
    with pytest.raises(ValueError, match="beta"):
        run_agd(small_problem, small_W0, beta=beta)


@pytest.mark.parametrize("eta", [0.0, -1.0, math.nan, math.inf, "fast", "AUTO", np.array([[1.0, -1.0]])])
def test_run_agd_rejects_bad_eta(small_problem, small_W0, eta):
    with pytest.raises(ValueError, match="eta"):
        run_agd(small_problem, small_W0, eta=eta)


@pytest.mark.parametrize("precision", ["float16", "double", "float32+polish+", ""])
def test_run_agd_rejects_unknown_precision(small_problem, small_W0, precision):
    with pytest.raises(ValueError, match="precision"):
        run_agd(small_problem, small_W0, precision=precision)


def test_run_agd_rejects_unknown_device(small_problem, small_W0):
    with pytest.raises(ValueError, match="device"):
        run_agd(small_problem, small_W0, device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_run_agd_rejects_cuda_without_cuda(small_problem, small_W0):
    with pytest.raises(ValueError, match="device"):
        run_agd(small_problem, small_W0, device="cuda")


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(max_iter=0), "max_iter"),
        (dict(tol=0.0), "tol"),
        (dict(tol=-1e-8), "tol"),
        (dict(success_tol=0.0), "success_tol"),
        (dict(record_every=0), "record_every"),
    ],
)
def test_run_agd_rejects_bad_settings(small_problem, small_W0, kwargs, name):
    with pytest.raises(ValueError) as info:
        run_agd(small_problem, small_W0, **kwargs)
    assert names_parameter(str(info.value), name), str(info.value)


def test_run_agd_accepts_valid_variants(small_problem, small_W0):
    res = run_agd(small_problem, small_W0, eta=np.array([2.0, 3.0]), beta=0.0, max_iter=3, device=None)
    np.testing.assert_array_equal(res.eta, [[2.0, 3.0]])
    assert res.settings["device"] == "cpu"
    res = run_agd(small_problem, small_W0, eta=np.float64(2.0), max_iter=3, device=torch.device("cpu"), progress=True)
    np.testing.assert_array_equal(res.eta, [[2.0, 2.0]])


# --------------------------------------------------------------------------
# scales
# --------------------------------------------------------------------------


def test_get_scale_explicit(monkeypatch):
    monkeypatch.setenv(scales.ENV_VAR, "paper")
    for s in ("ci", "book", "paper"):
        assert get_scale(s) == s  # an explicit argument wins over the environment
    with pytest.raises(ValueError, match="scale must be one of ci, book, paper; got 'huge'"):
        get_scale("huge")


def test_get_scale_environment(monkeypatch):
    monkeypatch.delenv(scales.ENV_VAR, raising=False)
    assert get_scale() == "book"
    monkeypatch.setenv("LTHBOOK_SCALE", "ci")
    assert get_scale() == "ci"
    monkeypatch.setenv("LTHBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match=r"\$LTHBOOK_SCALE must be one of") as info:
        get_scale()
    assert "huge" in str(info.value)
    with pytest.raises(ValueError, match="LTHBOOK_SCALE"):
        pick({"ci": 1, "book": 2, "paper": 3})


def test_pick(monkeypatch):
    options = {"ci": 1, "book": 2, "paper": 3}
    monkeypatch.delenv(scales.ENV_VAR, raising=False)
    assert pick(options) == 2
    assert pick(options, "paper") == 3
    monkeypatch.setenv(scales.ENV_VAR, "ci")
    assert pick(options) == 1
    assert pick(options, "book") == 2
    with pytest.raises(ValueError, match="scale"):
        pick(options, "huge")
    with pytest.raises(ValueError, match=r"missing \['paper'\]"):
        pick({"ci": 1, "book": 2})


@given(value=st.text(max_size=8))
@SETTINGS
def test_get_scale_property(value):
    if value in scales.SCALES:
        assert get_scale(value) == value
    else:
        with pytest.raises(ValueError, match="scale must be one of"):
            get_scale(value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_resolve_device_quotes_the_request_as_written():
    """`--device cuda` without a GPU printed "device='cuda' ... use device='cpu'", which read as
    if the flag had been cpu; the message now quotes the request under its name."""
    with pytest.raises(ValueError) as info:
        resolve_device("cuda")
    assert str(info.value).startswith("device 'cuda' was requested but CUDA is not available")
    assert "device='cpu'" not in str(info.value)
    with pytest.raises(ValueError) as info:
        resolve_device("cuda:1", name="--device")
    assert str(info.value).startswith("--device cuda:1 was requested") and str(info.value).endswith("use --device cpu")
    with pytest.raises(ValueError, match=r"device 'cuda:0' was requested"):
        resolve_device(torch.device("cuda:0"))
    with pytest.raises(ValueError, match=r"--device must be 'cpu' or 'cuda\[:index\]', got 'tpu'"):
        resolve_device("tpu", name="--device")


def test_available_memory_and_check_memory(monkeypatch):
    from lthbook import _validation

    free = _validation.available_memory()
    assert free is None or (free[0] >= 0 and isinstance(free[1], str))
    _validation.check_memory("tiny", 1000)  # below the floor: never refused
    monkeypatch.setattr(_validation, "available_memory", lambda: (2**30, "a test"))
    _validation.check_memory("fits", 2**29)
    with pytest.raises(ValueError, match=r"^big would need about 2.0 GiB of memory, but only 1.0 GiB is available "
                                         r"\(a test\); hint$"):
        _validation.check_memory("big", 2**31, "hint")
    monkeypatch.setattr(_validation, "available_memory", lambda: None)
    _validation.check_memory("unknown free memory", 2**60)  # nothing to compare with: no refusal
