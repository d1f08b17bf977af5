"""The command line never loses a result and never shows a traceback for a user's mistake.

Each test reproduces one of the failures found by probing the CLI (issue 14) in a
subprocess with a private cache; the property test at the end drives the argument
parser and ``recheck`` with random arguments and random file contents.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from lthbook import __main__ as cli  # noqa: E402
from lthbook.scales import MAX_SEED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "K=2", "--set", "d=10", "--set", "r_values=[2,4,6]", "--set", "N_values=[8,16,30,60]",
        "--set", "trials=2", "--set", "chunk=2", "--set", "max_iter=300"]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lthbook", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd or ROOT, timeout=600)


def assert_usage_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def reproduce_tiny(tmp_path: Path, out: str, seed: int, cache: str = "cache") -> subprocess.CompletedProcess:
    done = run_cli("reproduce", "fig4", "--scale", "ci", "--seed", str(seed), "--out", str(tmp_path / out),
                   "--cache-dir", str(tmp_path / cache), "--no-progress", *TINY)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done


# 1 ---------------------------------------------------------------- recheck writes the file it was given


def test_recheck_updates_the_named_file_and_no_other(tmp_path):
    reproduce_tiny(tmp_path, "a", 0)
    reproduce_tiny(tmp_path, "b", 3)
    named = tmp_path / "a" / "fig4_seed3.json"
    stored = json.loads((tmp_path / "b" / "fig4.json").read_text())
    stored["check"] = {"passed": None, "message": "stale", "fitted": None}
    named.write_text(json.dumps(stored))
    before = (tmp_path / "a" / "fig4.json").read_bytes()
    done = run_cli("recheck", str(named))
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr
    assert (tmp_path / "a" / "fig4.json").read_bytes() == before  # the seed-0 result is untouched
    updated = json.loads(named.read_text())
    assert updated["seed"] == 3 and updated["check"]["message"] != "stale"
    assert (tmp_path / "a" / "fig4_seed3.png").is_file() and (tmp_path / "a" / "fig4_seed3.pdf").is_file()
    assert not list((tmp_path / "a").glob(".*.part"))


# 2 ---------------------------------------------------------------- unreadable cache entries


def test_a_cache_file_with_non_utf8_bytes_is_recomputed_not_fatal(tmp_path):
    reproduce_tiny(tmp_path, "a", 0)
    victim = sorted((tmp_path / "cache" / "fig4").glob("*.json"))[0]
    victim.write_bytes(b"\xff\xfe\x00 not text")
    done = reproduce_tiny(tmp_path, "b", 0)
    assert str(victim.name) in done.stderr  # the warning names the file
    assert json.loads(victim.read_text(encoding="utf-8"))  # replaced by a good entry
    a, b = (json.loads((tmp_path / d / "fig4.json").read_text()) for d in ("a", "b"))
    assert a["raw"] == b["raw"]


# 3 ---------------------------------------------------------------- output and cache folders checked first


def test_out_or_cache_dir_that_is_a_file_is_refused_before_any_cell(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_usage_error(run_cli("reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path / "file"),
                               "--cache-dir", str(tmp_path / "cache"), *TINY), "--out", "not a folder")
    assert not (tmp_path / "cache" / "fig4").exists()  # nothing was computed
    assert_usage_error(run_cli("reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path / "out"),
                               "--cache-dir", str(tmp_path / "file"), *TINY), "--cache-dir", "not a folder")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_out_is_refused_before_any_cell(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_usage_error(run_cli("reproduce", "fig4", "--scale", "ci", "--out", str(ro), "--cache-dir",
                                   str(tmp_path / "cache"), *TINY), "--out", "not writable")
    finally:
        ro.chmod(0o700)


# 4 ---------------------------------------------------------------- recheck on bad content


def test_recheck_refuses_bad_content_in_one_line(tmp_path):
    reproduce_tiny(tmp_path, "a", 0)
    good = json.loads((tmp_path / "a" / "fig4.json").read_text())
    relabelled = {**good, "figure": "fig2"}
    nan = json.dumps(good).replace('"wall_time_s": ', '"wall_time_s": NaN, "x": ', 1)
    cases = {"binary.json": b"\x89PNG\xff\x00\xfe", "fig2-only.json": b'{"figure": "fig2"}',
             "relabelled.json": json.dumps(relabelled).encode(), "nan.json": nan.encode(),
             "list.json": b"[1, 2]", "missing.json": None}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        assert_usage_error(run_cli("recheck", str(path)), name)
        if content is not None:
            assert path.read_bytes() == content  # a refused file is left as it was


# 5 ---------------------------------------------------------------- seeds and MNIST checked up front


def test_seed_is_bounded_on_the_command_line_and_in_the_environment(tmp_path):
    big = str(MAX_SEED + 1)
    done = run_cli("reproduce", "fig7", "--scale", "ci", "--seed", big, "--out", str(tmp_path))
    assert done.returncode == 2 and "seed must be an integer in [0, " in done.stderr and "Traceback" not in done.stderr
    assert_usage_error(run_cli("reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path), *TINY,
                               env={"LTHBOOK_SEED": big}), "$LTHBOOK_SEED")


def test_missing_mnist_is_found_before_the_first_figure(tmp_path):
    done = run_cli("reproduce", "all", "--scale", "ci", "--out", str(tmp_path / "out"), "--cache-dir",
                   str(tmp_path / "cache"), env={"LTHBOOK_DATA_DIR": str(tmp_path / "no-such-folder")})
    assert_usage_error(done, "MNIST", "LTHBOOK_DATA_DIR")
    assert not any((tmp_path / "cache").glob("fig*")), "figures 2-6 must not run before MNIST is checked"
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("reproduce", "fig7", "--scale", "ci", "--out", str(tmp_path / "out"), "--cache-dir",
                   str(tmp_path / "cache"), "--data-dir", str(empty), env={"LTHBOOK_DATA_DIR": str(empty),
                                                                          "HOME": str(tmp_path)})
    assert_usage_error(done, "MNIST")


# 6 ---------------------------------------------------------------- interrupts, threads, device


def test_ctrl_c_exits_130_with_a_resume_line_and_keeps_finished_cells(tmp_path):
    args = [sys.executable, "-m", "lthbook", "reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--set", "trials=12", "--set", "chunk=1"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cells = tmp_path / "cache" / "fig4"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cells.glob("*.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "rerun the same command to resume" in err
    kept = len(list(cells.glob("*.json")))
    assert kept >= 2 and not list(cells.glob(".tmp-*"))
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1)
    assert f"({kept}/" in done.stdout  # the rerun resumed from the finished cells


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...); [] once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``): children, grandchildren, ..."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else []
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a container's init may never reap it)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through Linux /proc")
@pytest.mark.parametrize("stop, code", [("SIGTERM", 143), ("SIGKILL", -9)])
def test_a_stopped_run_leaves_no_worker_process_and_keeps_finished_cells(stop, code, tmp_path):
    """SIGTERM goes through the clean-up of Ctrl-C (``stop_signals_interrupt``); after SIGKILL
    no clean-up runs, and the workers end themselves (``executors.exit_with_parent``)."""
    args = [sys.executable, "-m", "lthbook", "reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--workers", "2", "--set", "trials=12",
            "--set", "chunk=1"]
    # files, not pipes: orphaned workers (the bug this test guards against) would hold a pipe open
    with open(tmp_path / "err", "w") as err_file:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err_file)
    cells = tmp_path / "cache" / "fig4"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cells.glob("*.json"))) < 2:
        time.sleep(0.2)
    workers = _descendants(proc.pid)
    assert len(workers) >= 3  # the forkserver and its two workers (and the resource tracker)
    proc.send_signal(getattr(signal, stop))
    try:
        returned = proc.wait(timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline and any(map(_running, workers)):
            time.sleep(0.2)
        left = [pid for pid in workers if _running(pid)]
        assert not left, f"worker processes left running after {stop}: {left}"
        assert returned == code
    finally:
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    err = (tmp_path / "err").read_text()
    if stop == "SIGTERM":
        assert "Traceback" not in err and "stopped by SIGTERM" in err and "rerun the same command to resume" in err
    assert len(list(cells.glob("*.json"))) >= 2 and not list(cells.glob(".tmp-*"))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_stop_signals_raise_once_and_leave_ignored_signals_alone():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(cli.Stopped) as stopped:
        with cli.stop_signals_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert stopped.value.signum == signal.SIGTERM and stopped.value.name == "SIGTERM"
    assert isinstance(stopped.value, KeyboardInterrupt)  # so every Ctrl-C clean-up runs
    assert signal.getsignal(signal.SIGTERM) is before
    # a signal ignored before (nohup's SIGHUP) stays ignored inside
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with cli.stop_signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_more_threads_than_cores_warns_and_cuda_without_gpu_names_the_flag(tmp_path):
    done = run_cli("reproduce", "fig4", "--scale", "ci", "--out", str(tmp_path / "o"), "--cache-dir",
                   str(tmp_path / "c"), "--no-progress", "--threads", str((os.cpu_count() or 1) + 1), *TINY)
    assert done.returncode in (0, 1) and "more than the" in done.stderr and "CPU cores" in done.stderr
    import torch

    if not torch.cuda.is_available():
        assert_usage_error(run_cli("reproduce", "fig4", "--scale", "ci", "--device", "cuda", "--out",
                                   str(tmp_path / "o"), *TINY), "--device cuda", "--device cpu")


# 7 ---------------------------------------------------------------- help


def test_help_names_every_figure_its_times_and_the_exit_codes():
    text = cli.build_parser().format_help()
    sub = run_cli("reproduce", "--help").stdout
    for name in cli.ALL_FIGURES:
        assert name in text and name in sub
    for code in cli.EXIT_CODES:
        assert f"  {code}  " in text and f"  {code}  " in sub
    assert "Figures 2-5" not in text.replace("Figures 2-5: Algorithm 1", "")
    assert "measured time per figure" in sub and "min" in sub and "days" in sub


# ---------------------------------------------------------------- property: exit 0, 1 or 2, never a traceback

TOKENS = st.sampled_from(["reproduce", "recheck", "fig2", "fig4", "fig7", "all", "fig9", "--scale", "ci", "book",
                          "huge", "--seed", "-1", "7", str(MAX_SEED + 1), "x", "--threads", "0", "2", "--device",
                          "cpu", "cuda", "gpu", "--set", "K=2", "K=abc", "=", "trials=0", "r_values=[5,2]",
                          "eta=NaN", "bogus=1", "--no-cache", "--out", "--cache-dir", "--data-dir", "--help", "-h",
                          "", "--no-progress"])


class _Reached(Exception):
    pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(TOKENS, st.text(max_size=8)), max_size=9))
def test_random_arguments_end_in_0_1_or_2(argv, monkeypatch, tmp_path, capsys):
    """Arguments that pass every check reach the runner (stubbed here); everything else must
    end with exit status 2 and a message, never with an exception."""
    monkeypatch.setenv("LTHBOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def stub(*args, **kwargs):
        raise _Reached

    monkeypatch.setattr(cli, "reproduce", stub)
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 2
    except _Reached:
        status = 0
    assert status in (0, 1, 2)
    assert "Traceback" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def stored_result(tmp_path_factory):
    base = tmp_path_factory.mktemp("stored")
    reproduce_tiny(base, "a", 0)
    return json.loads((base / "a" / "fig4.json").read_text())


def _mutations(result: dict):
    """A strategy of result-like documents: the real one with parts removed, replaced or relabelled."""
    def mutate(draw_args):
        key, action, value = draw_args
        doc = json.loads(json.dumps(result))
        target = doc["raw"] if key.startswith("raw.") else doc
        k = key.split(".", 1)[-1]
        if action == "drop":
            target.pop(k, None)
        elif action == "set":
            target[k] = value
        else:
            doc["figure"] = value if isinstance(value, str) else "fig2"
        return json.dumps(doc).encode()

    keys = st.sampled_from(["figure", "settings", "axes", "raw", "seed", "cells", "scale", "raw.success",
                            "raw.trials", "raw.rel_error", "raw.n_iter", "wall_time_s"])
    values = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.lists(st.integers(0, 3), max_size=3),
                       st.just({}), st.sampled_from(["fig2", "fig3", "fig5", "fig6", "fig7"]))
    return st.tuples(keys, st.sampled_from(["drop", "set", "relabel"]), values).map(mutate)


def test_recheck_random_contents_end_in_0_1_or_2(stored_result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recheck")

    @settings(max_examples=60, deadline=None)
    @given(content=st.one_of(st.binary(max_size=64), _mutations(stored_result),
                             st.text(max_size=40).map(str.encode)))
    def check(content):
        path = folder / "result.json"
        path.write_bytes(content)
        try:
            status = cli.main(["recheck", str(path)])
        except SystemExit as exc:
            status = exc.code
        assert status in (0, 1, 2)

    check()
