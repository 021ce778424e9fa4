"""MNIST: read, validate and split it the notebook's way.

Where the data come from, in order:
1. a folder named by ``data_dir`` (the ``--data-dir`` flag) or the ``CNNLAB_MNIST_DIR``
   environment variable, holding the four original IDX files (gzip or raw) or a Keras-style
   ``mnist.npz``; ``SHA256SUMS`` in that folder is checked where present;
2. otherwise ``keras.datasets.mnist.load_data()``, which downloads it on a connected machine.

``load_mnist()`` gives the training and validation splits only: validation is the first 10,000
training images, training the other 50,000. The test images are read by ``load_test_split()``
alone, which is meant for the final evaluation of the best model and nothing else.

Arrays are read once per process and cached, so that the trials of a study share them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import DataError

DATA_DIR_ENV = "CNNLAB_MNIST_DIR"
VALIDATION_SIZE = 10_000
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
KERAS_SOURCE = "keras.datasets.mnist.load_data()"
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"

HOW_TO_GET_IT = (
    f"set {DATA_DIR_ENV} (or pass --data-dir) to a folder holding the four MNIST IDX files "
    f"({', '.join(TRAIN_FILES + TEST_FILES)}, each raw or .gz) or a Keras mnist.npz, or run "
    "once on a machine that can download it with keras.datasets.mnist.load_data()"
)


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1], shape (N, 28, 28, 1), and integer labels 0-9."""

    x: np.ndarray
    y: np.ndarray
    sha256: str
    """SHA-256 of the raw uint8 images followed by the labels: names exactly these examples."""

    def __len__(self) -> int:
        return len(self.y)

    @property
    def y_onehot(self) -> np.ndarray:
        """Labels one-hot (float32), as categorical cross-entropy needs them."""
        return np.eye(NUM_CLASSES, dtype=np.float32)[self.y]


@dataclass(frozen=True)
class MnistSplits:
    """The training and validation splits and where they came from (no test split)."""

    train: Split
    validation: Split
    source: str


def image_fingerprints(split: Split) -> set[bytes]:
    """One digest per image (of its 8-bit pixels): two splits share an image exactly when
    their fingerprint sets meet."""
    pixels = np.rint(np.asarray(split.x) * 255.0).astype(np.uint8).reshape(len(split), -1)
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in pixels}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder to read: ``data_dir`` if given, else ``$CNNLAB_MNIST_DIR``, else None (Keras)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return None if chosen is None else Path(chosen).expanduser().resolve()


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
) -> MnistSplits:
    """The notebook's split: validation = first 10,000 training images, training = the rest.

    ``train_size`` and ``val_size`` take the first N examples of each split, for quick runs;
    the same sizes always give the same examples.
    """
    return _splits(resolve_data_dir(data_dir), train_size, val_size)


def load_test_split(data_dir: str | os.PathLike | None = None) -> Split:
    """The 10,000 held-out test images: for the one final evaluation of the best model only."""
    folder = resolve_data_dir(data_dir)
    if folder is None:
        _, _, (x, y) = _load_keras()
    else:
        x, y = _read_folder(folder, "test")
    return _make_split(x, y)


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzip) of unsigned bytes into an array of its declared shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise DataError(f"{path} is not a complete gzip file ({err}).") from None
    return _parse_idx(raw, path, expected_magic)


def _parse_idx(raw: bytes, path: Path, expected_magic: int | None) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    magic = int.from_bytes(raw[:4], "big")
    if raw[:2] != b"\0\0" or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (magic number {magic}).")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path} has magic number {magic}, expected {expected_magic}.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)  # Python integers: no overflow for a hostile header.
    if len(raw) - header != expected:
        raise DataError(f"{path} holds {len(raw) - header} data bytes but its header "
                        f"{dims} needs {expected}: the file is truncated or corrupt.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_folder(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one part ("train" or "test") from IDX files or mnist.npz."""
    if folder.is_file() and folder.suffix == ".npz":
        return _read_npz(folder, part)
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist; {HOW_TO_GET_IT}.")
    names = TRAIN_FILES if part == "train" else TEST_FILES
    paths = [_find(folder, name) for name in names]
    if all(p is None for p in paths) and (folder / "mnist.npz").is_file():
        return _read_npz(folder / "mnist.npz", part)
    missing = [name for name, p in zip(names, paths, strict=True) if p is None]
    if missing:
        raise DataError(f"MNIST folder {folder} has no {missing[0]} (nor {missing[0]}.gz) "
                        "and no mnist.npz.")
    sums = _read_sums(folder)
    arrays = []
    for path, magic in zip(paths, (IMAGES_MAGIC, LABELS_MAGIC), strict=True):
        raw = path.read_bytes()
        if path.suffix == ".gz":
            _check_sum(sums, path, raw)
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, gzip.BadGzipFile) as err:
                raise DataError(f"{path} is not a complete gzip file ({err}).") from None
        _check_sum(sums, path.with_suffix("") if path.suffix == ".gz" else path, raw)
        arrays.append(_parse_idx(raw, path, magic))
    x, y = arrays
    _validate(x, y, part, f"{paths[0]} and {paths[1]}")
    return x, y


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_sums(folder: Path) -> dict[str, str]:
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _check_sum(sums: dict[str, str], path: Path, raw: bytes) -> None:
    expected = sums.get(path.name)
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        raise DataError(f"{path} does not match its SHA-256 in SHA256SUMS: the file is "
                        "corrupt or not the original MNIST.")


def _read_npz(path: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in (f"x_{part}", f"y_{part}") if k not in npz.files]
            if missing:
                raise DataError(f"{path} has no array '{missing[0]}' (a Keras mnist.npz has "
                                "x_train, y_train, x_test and y_test).")
            x, y = npz[f"x_{part}"], npz[f"y_{part}"]
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz file ({err}).") from None
    _validate(x, y, part, str(path))
    return x, y


def _validate(x: np.ndarray, y: np.ndarray, part: str, where: str) -> None:
    expected = EXPECTED_COUNTS[part]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{where}: {part} images must be uint8 of shape (N, 28, 28), "
                        f"not {x.dtype} {x.shape}.")
    if y.ndim != 1:
        raise DataError(f"{where}: {part} labels must be one-dimensional, not shape {y.shape}.")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: {part} labels must be integers 0-9, not {y.dtype}.")
    if len(x) != expected or len(y) != expected:
        raise DataError(f"{where}: expected {expected} {part} images and labels, "
                        f"found {len(x)} images and {len(y)} labels.")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{where}: {part} labels must be 0-9, found {y.min()}..{y.max()}.")


@functools.lru_cache(maxsize=4)
def _load_keras() -> tuple[tuple, tuple, tuple]:
    """(train, test) from Keras, cached; the error says what to do when it cannot be had."""
    try:
        from cnnlab.train.quiet import import_keras  # Sets TensorFlow's log level too.

        keras = import_keras()

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # Keras raises a bare Exception for download failures.
        raise DataError(f"MNIST is not available: no folder was given and Keras could not "
                        f"download it ({err}); {HOW_TO_GET_IT}.") from None
    _validate(x_train, y_train, "train", "keras.datasets.mnist")
    _validate(x_test, y_test, "test", "keras.datasets.mnist")
    return KERAS_SOURCE, (x_train, y_train), (x_test, y_test)


@functools.lru_cache(maxsize=2)
def _raw_train(folder: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    if folder is None:
        source, (x, y), _ = _load_keras()
        return x, y, source
    x, y = _read_folder(folder, "train")
    return x, y, str(folder)


@functools.lru_cache(maxsize=8)
def _splits(folder: Path | None, train_size: int | None, val_size: int | None) -> MnistSplits:
    x, y, source = _raw_train(folder)
    train_x, train_y = x[VALIDATION_SIZE:], y[VALIDATION_SIZE:]
    val_x, val_y = x[:VALIDATION_SIZE], y[:VALIDATION_SIZE]
    return MnistSplits(_make_split(*_head(train_x, train_y, train_size, "train_size")),
                       _make_split(*_head(val_x, val_y, val_size, "val_size")), source)


def _head(x: np.ndarray, y: np.ndarray, size: int | None, name: str):
    if size is None:
        return x, y
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= len(y):
        raise DataError(f"{name} must be an integer from 1 to {len(y)}, not {size!r}.")
    return x[:size], y[:size]


def _make_split(x: np.ndarray, y: np.ndarray) -> Split:
    x = np.ascontiguousarray(x, dtype=np.uint8)
    y = np.ascontiguousarray(y, dtype=np.uint8)
    digest = hashlib.sha256(x.tobytes())
    digest.update(y.tobytes())
    images = (x.astype(np.float32) / 255.0)[..., None]
    images.flags.writeable = False
    labels = y.astype(np.int64)
    labels.flags.writeable = False
    return Split(images, labels, digest.hexdigest())
