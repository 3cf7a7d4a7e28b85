"""Datasets: scikit-learn's bundled digits (default), and MNIST, Fashion-MNIST and CIFAR-10 from a
local folder through torchvision, with download off.

Every dataset is held in memory as uint8 images plus labels, and served by :class:`BatchLoader`,
whose batch order and augmentation depend only on ``(seed, epoch)``. That makes a training run
reproducible and resumable mid-epoch without saving any loader state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made, so the app can read DATASETS
    import torch
    from torch import Tensor

__all__ = ["DATASETS", "DataError", "DatasetInfo", "DataBundle", "BatchLoader", "load_dataset",
           "split_validation"]


class DataError(ValueError):
    """A dataset that cannot be loaded: the message names the folder, the files and the fix."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset's images."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # random crop (pad 4) + horizontal flip on training batches


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 10, 1, 28, (0.3054,), (0.3247,), False),
    "mnist": DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,), False),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), False),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), True),
}


@dataclass
class DataBundle:
    """Train, test and (after :func:`split_validation`) validation images (uint8, N x C x H x W)
    and labels (int64), with the dataset's info."""

    info: DatasetInfo
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    val_x: Tensor | None = None
    val_y: Tensor | None = None


def split_validation(bundle: DataBundle, fraction: float, seed: int) -> DataBundle:
    """Hold out a seeded, class-stratified ``fraction`` of the training set for validation.

    The stop rule chooses on validation data and only reports test accuracy, so its test figure
    is not optimistic. The split depends only on (labels, fraction, seed): the same on every
    machine. Returns a bundle whose train set is the rest and whose ``val_x``/``val_y`` hold the
    held-out part (empty when ``fraction`` is 0).
    """
    import torch

    y = bundle.train_y
    n = len(y)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction {fraction} is not in [0, 1)")
    n_val = int(round(n * fraction))
    if n_val == 0:
        empty = bundle.train_x[:0]
        return DataBundle(bundle.info, bundle.train_x, y, bundle.test_x, bundle.test_y,
                          empty, y[:0])
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    # stratify: order the shuffled indices by class, then deal every k-th to validation, so each
    # class gives its share (to within one image)
    order = perm[torch.argsort(y[perm], stable=True)]
    step = n / n_val
    pick = torch.zeros(n, dtype=torch.bool)
    pick[(torch.arange(n_val, dtype=torch.float64) * step).long()] = True
    val_idx, train_idx = order[pick].sort().values, order[~pick].sort().values
    return DataBundle(bundle.info, bundle.train_x[train_idx], y[train_idx], bundle.test_x,
                      bundle.test_y, bundle.train_x[val_idx], y[val_idx])


def load_dataset(name: str, root: str | os.PathLike | None = None) -> DataBundle:
    """Load a dataset by name; ``root`` is the local folder for the torchvision datasets."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return _digits()
    if root is None:
        raise DataError(f"dataset {name!r} needs --data-root: the folder that holds its files "
                        f"(no download happens here)")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"data root {root!r} does not exist; create it and put the {name} files "
                        f"there, or pass the right --data-root")
    if name == "cifar10":
        return _cifar10(root)
    return _mnist_like(name, root)


def check_dataset(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise DataError if ``name`` is unknown or its files are not under ``root``; loads nothing."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return
    if not root:
        raise DataError(f"dataset {name!r} needs a data root: the folder that holds its files")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"data root {root!r} does not exist")
    folder, files, missing = _dataset_files(name, root)
    if missing:
        raise DataError(f"{name} files missing in {folder}: expected {', '.join(files)}")


def _dataset_files(name: str, root: str) -> tuple[str, list[str], list[str]]:
    """(folder, expected files, the ones missing) of a local dataset."""
    folder, files = ((os.path.join(root, "cifar-10-batches-py"), _CIFAR_FILES) if name == "cifar10"
                     else (os.path.join(root, _MNIST_FOLDERS[name], "raw"), _IDX_FILES))
    return folder, files, [f for f in files if not os.path.isfile(os.path.join(folder, f))]


# ---- digits --------------------------------------------------------------------------------


def _digits() -> DataBundle:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

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
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    raw, _, missing = _dataset_files(name, root)
    if missing:
        gz = [f for f in missing if os.path.isfile(os.path.join(raw, f + ".gz"))]
        hint = (f" ({len(gz)} are there as .gz: gunzip them in place)" if gz else
                f"; get them from the {cls.__name__} site or with torchvision.datasets."
                f"{cls.__name__}(root, download=True) on a machine with internet")
        raise DataError(f"{name} files missing in {raw}: expected {', '.join(_IDX_FILES)} "
                        f"(uncompressed IDX){hint}")
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except (RuntimeError, ValueError, OSError) as e:
        raise DataError(f"{name} files in {raw} could not be read ({e}); replace them with the "
                        f"original IDX files") from None
    return DataBundle(DATASETS[name], train.data.unsqueeze(1).contiguous(), train.targets.long(),
                      test.data.unsqueeze(1).contiguous(), test.targets.long())


# ---- CIFAR-10 ------------------------------------------------------------------------------

_CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                "test_batch", "batches.meta"]


def _cifar10(root: str) -> DataBundle:
    import pickle

    import torch
    import torchvision

    class LocalCIFAR10(torchvision.datasets.CIFAR10):
        # torchvision checks md5 sums; we check presence (above) and let a bad pickle fail loudly,
        # so that small files in the real format load too (tests, subsets)
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    folder, _, missing = _dataset_files("cifar10", root)
    if missing:
        raise DataError(f"cifar10 files missing in {folder}: expected {', '.join(_CIFAR_FILES)} "
                        f"(the python version); download cifar-10-python.tar.gz from the CIFAR "
                        f"site and unpack it into {root}")
    try:
        train = LocalCIFAR10(root, train=True, download=False)
        test = LocalCIFAR10(root, train=False, download=False)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, OSError) as e:
        raise DataError(f"cifar10 files in {folder} could not be read ({e!r}); replace them with "
                        f"the original batches") from None

    def nchw(a) -> Tensor:
        return torch.as_tensor(a).permute(0, 3, 1, 2).contiguous()

    return DataBundle(DATASETS["cifar10"], nchw(train.data), torch.as_tensor(train.targets),
                      nchw(test.data), torch.as_tensor(test.targets))


# ---- batches -------------------------------------------------------------------------------


class BatchLoader:
    """Normalised float batches from uint8 images, in an order fixed by ``(seed, epoch)``.

    ``epoch(e, start=k)`` yields the batches of epoch ``e`` from the k-th on, exactly as an
    uninterrupted run would have seen them, augmentation included.
    """

    def __init__(self, x: Tensor, y: Tensor, info: DatasetInfo, batch_size: int, *,
                 shuffle: bool, augment: bool, seed: int = 0, device: str | torch.device = "cpu",
                 drop_last: bool = False) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"Invalid batch_size value: {batch_size}")
        self.x, self.y, self.info = x, y, info
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.device, self.drop_last = seed, torch.device(device), drop_last
        c = info.in_channels
        self._mean = torch.tensor(info.mean, dtype=torch.float32).view(1, c, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32).view(1, c, 1, 1)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of one epoch, skipping the first ``start`` ones."""
        import torch

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            # one augmentation draw per batch, from a generator of its own: skippable on resume
            bgen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 100_003 + b)
            if b < start:
                continue
            x = self.x[idx].float().div_(255)
            if self.augment:
                x = _crop_flip(x, bgen)
            x = (x - self._mean) / self._std
            yield x.to(self.device, non_blocking=True), self.y[idx].to(self.device)


def _crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop after zero padding, and random horizontal flip, per image (N x C x H x W)."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    bi = torch.arange(n).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[bi, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()
