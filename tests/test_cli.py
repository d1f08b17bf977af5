"""Tests of the command line ``python -m lthbook reproduce ...`` on tiny settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from lthbook.__main__ import build_parser, main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_FIG4 = ["--set", "K=2", "--set", "d=10", "--set", "r_values=[2,4,6]", "--set", "N_values=[8,16,30,60]",
             "--set", "trials=2", "--set", "chunk=2", "--set", "max_iter=300"]
KEYS = {"figure", "title", "claim", "scale", "seed", "device", "threads", "settings", "eta", "axes", "raw", "cells",
        "cells_from_cache", "cell_time_s", "wall_time_s", "versions", "created", "check"}


def test_reproduce_writes_json_png_and_pdf(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "fig4", "--scale", "ci", "--seed", "3", "--out", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", *TINY_FIG4]
    status = main(argv)
    data = json.loads((out / "fig4.json").read_text())
    assert KEYS <= set(data)
    assert data["seed"] == 3 and data["scale"] == "ci" and data["settings"]["r_values"] == [2, 4, 6]
    assert isinstance(data["check"]["passed"], bool) and status == (0 if data["check"]["passed"] else 1)
    assert (out / "fig4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fig4.pdf").read_bytes()[:5] == b"%PDF-"
    assert "fig4 (ci, seed 3, cpu)" in capsys.readouterr().out
    # second run: every cell comes from the cache and the numbers are identical
    main(argv)
    again = json.loads((out / "fig4.json").read_text())
    assert again["cells_from_cache"] == again["cells"] and again["raw"] == data["raw"]


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lthbook", "reproduce", "fig4", "--scale", "ci", "--no-cache",
                           "--out", str(tmp_path), "--no-progress", *TINY_FIG4],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads((tmp_path / "fig4.json").read_text())["figure"] == "fig4"
    assert (tmp_path / "fig4.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "fig9"], "invalid choice"),
        (["reproduce", "fig2", "--scale", "huge"], "invalid choice"),
        (["reproduce", "fig2", "--device", "tpu"], "invalid choice"),
        (["reproduce", "fig2", "--seed", "-1"], "seed"),
        (["reproduce", "fig2", "--seed", "abc"], "seed"),
        (["reproduce", "fig2", "--threads", "0"], "threads"),
        (["reproduce", "fig2", "--set", "trials"], "KEY=VALUE"),
        (["reproduce", "fig2", "--set", "trials=ten"], "JSON"),
        (["reproduce", "fig2", "--scale", "ci", "--set", "trials=0"], "trials"),
        (["reproduce", "fig2", "--scale", "ci", "--set", "bogus=1"], "unknown setting"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_with_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cuda_request_without_cuda_is_a_usage_error(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "fig2", "--scale", "ci", "--device", "cuda", "--no-progress"])
    assert exc.value.code == 2 and "CUDA" in capsys.readouterr().err


def test_parser_defaults():
    args = build_parser().parse_args(["reproduce", "all"])
    assert args.figure == "all" and args.out == Path("results") and args.device == "cpu"
    assert args.scale is None and args.seed is None and args.threads is None and not args.no_progress


def test_grid_too_small_for_the_check_still_writes_the_results(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "fig4", "--scale", "ci", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress", *TINY_FIG4, "--set", "r_values=[4]"]
    assert main(argv) == 1
    data = json.loads((out / "fig4.json").read_text())
    assert data["check"]["passed"] is False and "cannot run on this grid" in data["check"]["message"]
    assert (out / "fig4.png").exists()


def test_recheck_reruns_the_check_and_redraws_without_computing(tmp_path, capsys):
    out = tmp_path / "out"
    main(["reproduce", "fig4", "--scale", "ci", "--out", str(out), "--no-cache", "--no-progress", *TINY_FIG4])
    path = out / "fig4.json"
    data = json.loads(path.read_text())
    expected = data["check"]
    data["check"] = {"passed": "stale", "message": "stale", "fitted": None}  # as if written by an older check
    path.write_text(json.dumps(data))
    (out / "fig4.png").unlink()
    status = main(["recheck", str(path)])
    again = json.loads(path.read_text())
    assert again["check"] == expected and status == (0 if expected["passed"] else 1)
    assert again["raw"] == data["raw"] and again["cells_from_cache"] == data["cells_from_cache"]  # nothing recomputed
    assert (out / "fig4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), ('{"figure": "fig9"}', "not a result file"),
                                              ("[1, 2]", "not a result file")])
def test_recheck_rejects_files_that_are_not_results(tmp_path, capsys, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["recheck", str(path)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["recheck", str(tmp_path / "missing.json")])
