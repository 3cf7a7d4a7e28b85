"""Datasets: scikit-learn's bundled digits (default), MNIST, Fashion-MNIST and CIFAR-10 from a
local folder, with download off, and ``imagefolder``: a torchvision ImageFolder-style tree of
image files (:mod:`pathviz.data.folder`). Loading, checking a root, and a name's
:class:`~pathviz.data.info.DatasetInfo`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
from typing import TYPE_CHECKING, Any

import numpy as np

from pathviz.data.folder import check_folder, folder_classes, load_folder
from pathviz.data.info import (
    DATASET_NAMES,
    DATASETS,
    IMAGEFOLDER,
    DataBundle,
    DataError,
    DatasetInfo,
)

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["load_dataset", "check_dataset", "check_root_wanted", "check_classes", "dataset_info"]


def check_classes(bundle: DataBundle, model: Any, root: str | os.PathLike | None) -> None:
    """DataError when the data under ``root`` has another class count than the model (a
    zoo model records its ``num_classes``): an image folder other than the one it was trained
    on."""
    classes = (getattr(model, "pathviz_arch", None) or {}).get("num_classes")
    if classes is not None and bundle.info.num_classes != classes:
        raise DataError(f"the run's model has {classes} classes but {root} holds "
                        f"{bundle.info.num_classes}; pass the --data-root it was trained on")


def dataset_info(name: str | None, root: str | os.PathLike | None = None) -> DatasetInfo | None:
    """The :class:`DatasetInfo` of a dataset name; None for a name pathviz does not know.

    A replacement for ``DATASETS.get(name)`` that also knows ``imagefolder``, whose class count
    lives in its folder: with ``root`` the class folders of ``root/train`` are counted (after the
    layout checks of :func:`pathviz.data.folder.folder_classes`, which raise DataError; no image is
    listed). Without ``root`` its ``num_classes`` is 0, unknown, while the input shape,
    normalisation and augmentation are right: enough for an example input (export, the
    recorder).
    """
    if name in DATASETS:
        return DATASETS[name]
    if name != "imagefolder":
        return None
    if root is None:
        return IMAGEFOLDER
    _check_root_folder(name, os.fspath(root))  # a file is a file, not a folder without train/
    return dataclasses.replace(IMAGEFOLDER, num_classes=len(folder_classes(os.fspath(root))))


def load_dataset(name: str, root: str | os.PathLike | None = None) -> DataBundle:
    """Load a dataset by name; ``root`` is the local folder for all but digits.

    An image folder is listed, not read: its images are decoded batch by batch when served.
    """
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if name == "digits":
        return _digits()
    if root is None:
        raise DataError(f"dataset {name!r} needs --data-root: the folder that holds its files "
                        f"(no download happens here)")
    root = os.fspath(root)
    _check_root_folder(name, root)
    if name == "cifar10":
        return _cifar10(root)
    if name == "imagefolder":
        return load_folder(root)
    return _mnist_like(name, root)


def check_dataset(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise DataError if ``name`` is unknown or its files are not under ``root``; loads nothing.

    For an image folder: ``train/`` and ``val/`` exist, with the same class folders, every
    training class holds an image and ``val/`` holds one (found by a scan that stops at the
    first image of each folder, so this stays quick on ImageNet-sized trees).
    """
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if name == "digits":
        check_root_wanted(name, root)
        return
    if not root:
        raise DataError(f"dataset {name!r} needs a data root: the folder that holds its files")
    root = os.fspath(root)
    _check_root_folder(name, root)
    if name == "imagefolder":
        check_folder(root)
        return
    folder, files, missing = _dataset_files(name, root)
    if missing:
        raise DataError(f"{name} files missing in {folder}: expected {', '.join(files)}")


def check_root_wanted(name: str, root: str | os.PathLike | None) -> None:
    """DataError for a data root given to a dataset that reads none: digits is bundled, and a
    root passed with it would be accepted silently while nothing is read from it (the user
    most likely meant another --dataset)."""
    if name == "digits" and root is not None:
        raise DataError(f"the digits dataset is bundled with pathviz and takes no --data-root "
                        f"(got {os.fspath(root)!r}); drop --data-root, or pass --dataset with "
                        f"the dataset whose files are there")


def _check_root_folder(name: str, root: str) -> None:
    """DataError unless ``root`` is a folder, with the true reason: missing, or a file."""
    if os.path.isdir(root):
        return
    if os.path.lexists(root):
        what = "a file, not a folder" if os.path.isfile(root) else "not a folder"
        raise DataError(f"data root {root!r} is {what}; pass the folder that holds the {name} "
                        f"files as --data-root")
    raise DataError(f"data root {root!r} does not exist; create it and put the {name} files "
                    f"there, or pass the right --data-root")


def _dataset_files(name: str, root: str) -> tuple[str, list[str], list[str]]:
    """(folder, expected files, the ones missing) of a local dataset."""
    folder, files = ((os.path.join(root, "cifar-10-batches-py"), _CIFAR_FILES) if name == "cifar10"
                     else (os.path.join(root, _MNIST_FOLDERS[name], "raw"), _IDX_FILES))
    return folder, files, [f for f in files if not os.path.isfile(os.path.join(folder, f))]


# ---- digits --------------------------------------------------------------------------------


def _digits() -> DataBundle:
    import torch  # lazy: the app imports pathviz.data without torch
    from sklearn.datasets import load_digits  # lazy: sklearn takes seconds; only digits needs it
    from sklearn.model_selection import train_test_split  # lazy: as above

    x, y = load_digits(return_X_y=True)
    # fixed, seeded, stratified split: 1437 train / 360 test
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)

    def up(a) -> Tensor:
        t = torch.as_tensor(a, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
        t = torch.nn.functional.interpolate(t, size=(28, 28), mode="bilinear", align_corners=False)
        return (t.clamp(0, 1) * 255).round().to(torch.uint8)

    return DataBundle(DATASETS["digits"], up(xtr), torch.as_tensor(ytr, dtype=torch.int64),
                      up(xte), torch.as_tensor(yte, dtype=torch.int64))


# ---- MNIST / Fashion-MNIST -----------------------------------------------------------------

_MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"]


def _mnist_like(name: str, root: str) -> DataBundle:
    import torch  # lazy: the app imports pathviz.data without torch

    raw, _, missing = _dataset_files(name, root)
    if missing:
        gz = [f for f in missing if os.path.isfile(os.path.join(raw, f + ".gz"))]
        site = "MNIST" if name == "mnist" else "FashionMNIST"
        hint = (f" ({len(gz)} are there as .gz: gunzip them in place)" if gz else
                f"; get them from the {site} site or with torchvision.datasets."
                f"{site}(root, download=True) on a machine with internet")
        raise DataError(f"{name} files missing in {raw}: expected {', '.join(_IDX_FILES)} "
                        f"(uncompressed IDX){hint}")
    arrays = {f: _read_idx(os.path.join(raw, f)) for f in _IDX_FILES}
    for split in ("train", "t10k"):
        x, y = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y) or \
                (y.size and y.max() > 9):
            raise DataError(f"{name} files in {raw} do not match: {split} images are "
                            f"{x.shape} and labels {y.shape} (labels 0-9 expected); replace "
                            f"them with the original IDX files")

    def t(a) -> Tensor:
        return torch.from_numpy(a.copy())

    return DataBundle(DATASETS[name], t(arrays["train-images-idx3-ubyte"]).unsqueeze(1),
                      t(arrays["train-labels-idx1-ubyte"]).long(),
                      t(arrays["t10k-images-idx3-ubyte"]).unsqueeze(1),
                      t(arrays["t10k-labels-idx1-ubyte"]).long())


def _read_idx(path: str):
    """An IDX file of unsigned bytes (the MNIST format) as a numpy array; DataError otherwise.

    Parsed here rather than by torchvision so that garbage (a wrong magic, a header that claims
    more data than the file holds) is one clear sentence, and nothing is allocated beyond the
    file's own size.
    """
    fix = "replace it with the original (uncompressed) IDX file"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] != 0x08 or \
                    not 1 <= head[3] <= 4:
                raise DataError(f"{path} is not an IDX file of unsigned bytes (magic "
                                f"{head.hex() or 'missing'}, expected 0000080N); {fix}")
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path} ends inside its IDX header; {fix}")
            dims = tuple(int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(ndim))
            size = int(np.prod(dims, dtype=object))
            held = os.fstat(f.fileno()).st_size - 4 - 4 * ndim
            if held != size:  # checked before reading: a header may claim terabytes
                raise DataError(f"{path} holds {held} bytes of data but its header says "
                                f"{dims} = {size}; {fix}")
            data = f.read(size)
    except OSError as e:
        raise DataError(f"{path} could not be read ({e.strerror}); check its permissions") \
            from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


# ---- CIFAR-10 ------------------------------------------------------------------------------

_CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                "test_batch", "batches.meta"]


class _CifarUnpickler:
    """Unpickles the CIFAR-10 python batches and nothing else.

    The batches are pickles, and a data folder may come with someone else's run, so a plain
    ``pickle.load`` would run whatever the file asks. This unpickler resolves only the globals
    that numpy arrays need (array and dtype reconstruction, and ``_codecs.encode`` that
    protocol-2 pickles use for bytes); any other global is refused before it is called.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    @classmethod
    def load(cls, path: str) -> Any:
        allowed = cls.ALLOWED

        class Restricted(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if (module, name) not in allowed:
                    raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR "
                                                 f"batch never holds")
                return getattr(importlib.import_module(module), name)

        with open(path, "rb") as f:
            return Restricted(f, encoding="latin1").load()


def _cifar_batch(path: str) -> tuple[Any, list[int]]:
    """(images [n, 3072] uint8, labels) of one CIFAR-10 batch file; DataError if not one."""
    fix = "replace it with the original file from cifar-10-python.tar.gz"
    try:
        d = _CifarUnpickler.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, RecursionError, UnicodeDecodeError,
            ModuleNotFoundError) as e:
        raise DataError(f"{path} is not a CIFAR-10 batch ({_one_line(e)}); {fix}") from None
    except OSError as e:
        raise DataError(f"{path} could not be read ({e.strerror}); check its permissions") \
            from None
    x = d.get("data") if isinstance(d, dict) else None
    y = d.get("labels") if isinstance(d, dict) else None
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and
            x.shape[1] == 3072 and isinstance(y, list) and len(y) == len(x) and
            all(isinstance(v, int) and 0 <= v <= 9 for v in y)):
        raise DataError(f"{path} does not hold a CIFAR-10 batch (a 'data' uint8 array of rows of "
                        f"3072 and as many 'labels' 0-9); {fix}")
    return x, y


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _cifar10(root: str) -> DataBundle:
    import torch  # lazy: the app imports pathviz.data without torch

    folder, _, missing = _dataset_files("cifar10", root)
    if missing:
        raise DataError(f"cifar10 files missing in {folder}: expected {', '.join(_CIFAR_FILES)} "
                        f"(the python version); download cifar-10-python.tar.gz from the CIFAR "
                        f"site and unpack it into {root}")
    parts = [_cifar_batch(os.path.join(folder, f)) for f in _CIFAR_FILES[:6]]

    def nchw(a) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a).reshape(-1, 3, 32, 32).copy())

    train_x = np.concatenate([p[0] for p in parts[:5]])
    train_y = [v for p in parts[:5] for v in p[1]]
    return DataBundle(DATASETS["cifar10"], nchw(train_x), torch.as_tensor(train_y),
                      nchw(parts[5][0]), torch.as_tensor(parts[5][1]))
