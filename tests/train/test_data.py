"""The MNIST loader against the real files and against corrupted copies of them."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import DataError
from cnnlab.train import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def raw_train(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return data._read_folder(mnist_dir, "train")


def test_real_training_files(raw_train: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = raw_train
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    scaled = x / 255.0
    assert round(float(scaled.mean()), 4) == 0.1307
    assert round(float(scaled.std()), 4) == 0.3081


def test_notebook_split(mnist_dir: Path, raw_train: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = raw_train
    splits = data.load_mnist(mnist_dir)
    assert splits.source == str(mnist_dir.resolve())
    assert splits.train.x.shape == (50_000, 28, 28, 1) and splits.train.x.dtype == np.float32
    assert splits.validation.x.shape == (10_000, 28, 28, 1)
    assert 0.0 == splits.train.x.min() and splits.train.x.max() == 1.0
    # Validation is the first 10,000 training images, training the other 50,000.
    np.testing.assert_array_equal(splits.validation.y, y[:10_000])
    np.testing.assert_array_equal(splits.train.y, y[10_000:])
    np.testing.assert_array_equal(splits.validation.x[..., 0], x[:10_000] / np.float32(255))
    onehot = splits.train.y_onehot
    assert onehot.shape == (50_000, 10) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.argmax(axis=1), splits.train.y)
    # Read once per process: a second call is the same object.
    assert data.load_mnist(mnist_dir) is splits


def test_subsets_are_deterministic_heads(mnist_dir: Path) -> None:
    full = data.load_mnist(mnist_dir)
    small = data.load_mnist(mnist_dir, train_size=300, val_size=50)
    assert len(small.train) == 300 and len(small.validation) == 50
    np.testing.assert_array_equal(small.train.x, full.train.x[:300])
    np.testing.assert_array_equal(small.validation.y, full.validation.y[:50])
    again = data.load_mnist(mnist_dir, train_size=300, val_size=50)
    assert again.train.sha256 == small.train.sha256 != full.train.sha256
    assert len({small.train.sha256, small.validation.sha256}) == 2
    with pytest.raises(DataError, match="train_size must be an integer from 1 to 50000"):
        data.load_mnist(mnist_dir, train_size=50_001)


def test_test_split_only_through_its_own_function(mnist_dir: Path) -> None:
    test = data.load_test_split(mnist_dir)
    assert test.x.shape == (10_000, 28, 28, 1)
    assert test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert not hasattr(data.load_mnist(mnist_dir), "test")


def test_environment_variable_names_the_folder(mnist_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(mnist_dir))
    assert data.resolve_data_dir() == mnist_dir.resolve()
    assert data.resolve_data_dir("/elsewhere") == Path("/elsewhere")
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.resolve_data_dir() is None


# --- Corrupted copies ------------------------------------------------------------------------

def _copy(mnist_dir: Path, dest: Path, raw: bool = False, sums: bool = True) -> Path:
    dest.mkdir()
    for name in data.TRAIN_FILES + data.TEST_FILES:
        src = mnist_dir / f"{name}.gz"
        if raw:
            (dest / name).write_bytes(gzip.decompress(src.read_bytes()))
        else:
            shutil.copy(src, dest / f"{name}.gz")
    if sums:
        shutil.copy(mnist_dir / "SHA256SUMS", dest / "SHA256SUMS")
    return dest


def test_raw_idx_files_read_the_same(mnist_dir: Path, tmp_path: Path,
                                     raw_train: tuple[np.ndarray, np.ndarray]) -> None:
    folder = _copy(mnist_dir, tmp_path / "raw", raw=True)
    x, y = data._read_folder(folder, "train")
    np.testing.assert_array_equal(y, raw_train[1])
    np.testing.assert_array_equal(x, raw_train[0])


def test_keras_style_npz(mnist_dir: Path, tmp_path: Path,
                         raw_train: tuple[np.ndarray, np.ndarray]) -> None:
    xt, yt = data._read_folder(mnist_dir, "test")
    np.savez(tmp_path / "mnist.npz", x_train=raw_train[0], y_train=raw_train[1],
             x_test=xt, y_test=yt)
    splits = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(splits.validation.y, raw_train[1][:10_000])
    assert data.load_test_split(tmp_path / "mnist.npz").y[:3].tolist() == [7, 2, 1]
    np.savez(tmp_path / "bad.npz", x_train=raw_train[0])
    with pytest.raises(DataError, match="bad.npz has no array 'y_train'"):
        data._read_npz(tmp_path / "bad.npz", "train")


def test_missing_folder_and_file(mnist_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST folder .*nowhere does not exist; set "
                                        r"CNNLAB_MNIST_DIR"):
        data._read_folder(tmp_path / "nowhere", "train")
    folder = _copy(mnist_dir, tmp_path / "m")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="has no train-labels-idx1-ubyte"):
        data._read_folder(folder, "train")


def test_truncated_gzip_is_named(mnist_dir: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_dir, tmp_path / "m", sums=False)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a complete gzip"):
        data._read_folder(folder, "train")


def test_truncated_raw_file_is_named(mnist_dir: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_dir, tmp_path / "m", raw=True, sums=False)
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte holds 59993 data bytes.*"
                                        r"truncated"):
        data._read_folder(folder, "train")


def test_checksum_mismatch_is_named(mnist_dir: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_dir, tmp_path / "m", raw=True)
    path = folder / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0xFF  # One changed pixel: structurally fine, caught by SHA256SUMS only.
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-images-idx3-ubyte does not match its SHA-256"):
        data._read_folder(folder, "train")


def test_wrong_magic_and_bad_labels(mnist_dir: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_dir, tmp_path / "m", raw=True, sums=False)
    images = folder / "train-images-idx3-ubyte"
    labels = folder / "train-labels-idx1-ubyte"
    # Swapped files: each has the other's magic number.
    saved_images, saved_labels = images.read_bytes(), labels.read_bytes()
    images.write_bytes(saved_labels)
    with pytest.raises(DataError, match="train-images-idx3-ubyte has magic number 2049, "
                                        "expected 2051"):
        data._read_folder(folder, "train")
    images.write_bytes(saved_images)
    bad = bytearray(saved_labels)
    bad[8 + 3] = 12
    labels.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="train labels must be 0-9, found 0..12"):
        data._read_folder(folder, "train")
    labels.write_bytes(b"garbage!" * 3)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is not an IDX file"):
        data._read_folder(folder, "train")


def test_wrong_count_is_named(mnist_dir: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_dir, tmp_path / "m", raw=True, sums=False)
    # The test files under the training names: valid IDX, but 10,000 examples, not 60,000.
    for train_name, test_name in zip(data.TRAIN_FILES, data.TEST_FILES, strict=True):
        shutil.copy(folder / test_name, folder / train_name)
    with pytest.raises(DataError, match="expected 60000 train images and labels, found 10000"):
        data._read_folder(folder, "train")


def test_without_folder_falls_back_to_keras_and_says_what_to_do(tmp_path: Path) -> None:
    """The real Keras path, in a fresh process with an empty Keras cache and no folder named.

    Offline (as here) the download fails and the error must say how to get the data; on a
    connected machine Keras downloads MNIST and the loader gives the notebook's split.
    """
    code = (
        "import cnnlab.train.data as d\n"
        "try:\n"
        "    s = d.load_mnist()\n"
        "    print('LOADED', len(s.train), len(s.validation), s.source)\n"
        "except d.DataError as e:\n"
        "    print('ERROR', e)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KERAS_HOME": str(tmp_path / "k"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300).stdout
    # Keras prints "Downloading data from ..." before it tries; the loader's line is the last.
    out = out.splitlines()[-1] + "\n"
    if out.startswith("LOADED"):
        assert out.split()[1:4] == ["50000", "10000", data.KERAS_SOURCE]
    else:
        assert out.startswith("ERROR MNIST is not available: no folder was given and Keras "
                              "could not download it")
        assert "set CNNLAB_MNIST_DIR (or pass --data-dir) to a folder" in out
        assert out.count("\n") == 1  # One sentence, one line.
