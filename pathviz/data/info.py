"""The data types every data module shares: the dataset records (:class:`DatasetInfo`,
:data:`DATASETS`), a loaded :class:`DataBundle`, its seeded validation split, and
:class:`DataError`, the one-sentence refusal of bad data input.

numpy and torch stay out of import: the app reads :data:`DATASETS` without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made, so the app can read DATASETS
    from torch import Tensor

    from pathviz.data.folder import FolderImages

__all__ = ["DATASETS", "DATASET_NAMES", "IMAGEFOLDER", "DataBundle", "DataError", "DatasetInfo",
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
    augment: bool  # training batches: random crop (pad 4) + flip; imagefolder: resized crop + flip


# the datasets whose info is fixed; imagefolder's class count comes from its folder
# (dataset_info), so it is in DATASET_NAMES but not here
DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 10, 1, 28, (0.3054,), (0.3247,), False),
    "mnist": DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,), False),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), False),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), True),
}

# ImageNet's statistics, as torchvision's pretrained models expect them; num_classes 0 stands for
# "read from the folder" (dataset_info / load_dataset fill it in)
IMAGEFOLDER = DatasetInfo("imagefolder", 0, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                          True)

DATASET_NAMES: tuple[str, ...] = (*DATASETS, "imagefolder")
"""Every name ``--dataset`` accepts."""



@dataclass
class DataBundle:
    """Train, test and (after :func:`split_validation`) validation images and labels (int64),
    with the dataset's info.

    Images are uint8 tensors (N x C x H x W) for the in-memory datasets, and
    :class:`pathviz.data.folder.FolderImages` (file paths, indexed like a tensor) for an image
    folder.
    """

    info: DatasetInfo
    train_x: Tensor | FolderImages
    train_y: Tensor
    test_x: Tensor | FolderImages
    test_y: Tensor
    val_x: Tensor | FolderImages | None = None
    val_y: Tensor | None = None


def split_validation(bundle: DataBundle, fraction: float, seed: int) -> DataBundle:
    """Hold out a seeded, class-stratified ``fraction`` of the training set for validation.

    The stop rule chooses on validation data and only reports test accuracy, so its test figure
    is not optimistic. The split depends only on (labels, fraction, seed): the same on every
    machine. Returns a bundle whose train set is the rest and whose ``val_x``/``val_y`` hold the
    held-out part (empty when ``fraction`` is 0). Image folders split the same way: their images
    index like tensors.
    """
    import torch  # lazy: the app imports pathviz.data without torch

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
