"""Data sets and folders: what ``--dataset`` names, loaded, split and served in batches.

- :mod:`pathviz.data.info`: the shared types (:class:`DatasetInfo`, :class:`DataBundle`,
  :class:`DataError`) and the seeded validation split;
- :mod:`pathviz.data.sets`: digits (bundled), MNIST, Fashion-MNIST and CIFAR-10 from a local root
  (download off), and their checks;
- :mod:`pathviz.data.folder`: ``imagefolder``, a torchvision ImageFolder-style tree, streamed;
- :mod:`pathviz.data.loader`: the batch loaders, whose order and augmentation come from
  ``(seed, epoch)`` only.

The names below are the package's public interface (``from pathviz.data import load_dataset,
BatchLoader``); none of these modules imports torch at import time.
"""

from pathviz.data.folder import FolderImages, FolderLoader
from pathviz.data.info import (
    DATASET_NAMES,
    DATASETS,
    IMAGEFOLDER,
    DataBundle,
    DataError,
    DatasetInfo,
    split_validation,
)
from pathviz.data.loader import BatchLoader, Loader, _crop_flip, make_loader
from pathviz.data.sets import (
    check_classes,
    check_dataset,
    check_root_wanted,
    dataset_info,
    load_dataset,
)

__all__ = ["DATASETS", "DATASET_NAMES", "IMAGEFOLDER", "DataError", "DatasetInfo", "DataBundle",
           "BatchLoader", "FolderImages", "FolderLoader", "Loader", "load_dataset",
           "check_dataset", "check_root_wanted", "check_classes", "dataset_info", "make_loader",
           "split_validation", "_crop_flip"]
