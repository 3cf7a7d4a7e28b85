"""``--dataset imagefolder``: a torchvision ImageFolder-style tree of image files, streamed.

Layout under ``--data-root``::

    train/<class>/<image>   the training set (the validation split is held out of it, seeded)
    val/<class>/<image>     the test set

Classes are the sorted folder names (torchvision's ``find_classes``, so the labels are
``ImageFolder``'s); ``train/`` and ``val/`` must have the same ones. Nothing is read into memory:
:class:`FolderImages` holds the file paths and indexes like a tensor, so
:func:`pathviz.data.info.split_validation` splits it as it splits uint8 images.

:class:`FolderLoader` decodes batches with a ``torch.utils.data.DataLoader`` (``workers``
processes) under the rule of :class:`pathviz.data.loader.BatchLoader`: the order of epoch ``e`` is
``randperm(n)`` of a generator seeded with ``seed * 1_000_003 + e``, and each image's random
crop and flip are drawn from a seed of its own, made from ``(seed, epoch, batch)`` in this
process. The batches are therefore the same bit for bit with any number of workers, and
``epoch(e, start=k)`` starts at batch k without decoding the batches before it.

The layout checks (:func:`check_folder`, used by the app's New run form) import neither torch nor
torchvision, so the app stays torch-free; they find classes and image files by the same rules as
torchvision's ``find_classes`` and ``IMG_EXTENSIONS`` (a test pins that).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pathviz.data.info import IMAGEFOLDER, DataBundle, DataError, DatasetInfo

if TYPE_CHECKING:
    import torch  # lazy: the app imports pathviz.data without torch
    from torch import Tensor

__all__ = ["FolderImages", "FolderLoader", "check_folder", "folder_classes", "load_folder"]

_LAYOUT = "an imagefolder root holds train/<class>/<image> and val/<class>/<image>"


class FolderImages:
    """The image files of one split, by path, loaded by nobody until a loader decodes them.

    Indexes like the uint8 image tensors of the other datasets: ``len()``, an int gives one
    file's path, and a slice, an int64 index tensor or a bool mask gives a new
    :class:`FolderImages` of those files. Paths are kept relative to ``root`` in one numpy byte
    array (not a list of str), so a DataLoader worker that forks does not copy a million Python
    objects' pages when it touches their reference counts.
    """

    def __init__(self, root: str, names: np.ndarray) -> None:
        self.root = root
        self.names = names

    @classmethod
    def from_paths(cls, root: str, paths: Sequence[str]) -> FolderImages:
        """The files ``paths``, each under ``root`` (absolute, or relative to ``root``)."""
        prefix = os.path.join(root, "")
        rel = [p[len(prefix):] if p.startswith(prefix) else p for p in paths]
        names = np.array([os.fsencode(p) for p in rel], dtype=np.bytes_) if rel else \
            np.zeros(0, dtype="S1")
        return cls(root, names)

    def __len__(self) -> int:
        return len(self.names)

    def path(self, i: int) -> str:
        """The full path of image ``i``."""
        return os.path.join(self.root, os.fsdecode(bytes(self.names[i])))

    def __getitem__(self, key: Any) -> str | FolderImages:
        if isinstance(key, (int, np.integer)):
            return self.path(int(key))
        if hasattr(key, "numpy"):  # a torch index tensor or mask
            key = key.cpu().numpy()
        return FolderImages(self.root, self.names[key])

    def __repr__(self) -> str:
        return f"FolderImages({self.root!r}, {len(self)} files)"


# ---- layout ---------------------------------------------------------------------------------


def _split_dirs(root: str) -> tuple[str, str]:
    """(train dir, val dir) of ``root``; DataError naming the one(s) missing."""
    train, val = os.path.join(root, "train"), os.path.join(root, "val")
    missing = [f"{s}/" for s, d in (("train", train), ("val", val)) if not os.path.isdir(d)]
    if missing:
        raise DataError(f"{root} has no {' and no '.join(missing)} folder; {_LAYOUT} (val/ is "
                        f"the test split)")
    return train, val


# torchvision.datasets.folder.IMG_EXTENSIONS, without importing torch
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _classes(split: str) -> list[str]:
    """The class folder names of one split: torchvision's ``find_classes`` (sorted folder
    names), without importing torch."""
    try:
        return sorted(e.name for e in os.scandir(split) if e.is_dir())
    except OSError as e:
        raise DataError(f"{split} could not be read ({e.strerror}); check its permissions") \
            from None


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def folder_classes(root: str) -> list[str]:
    """The class names of the image folder at ``root`` (sorted, as ImageFolder labels them).

    Checks the layout only: ``train/`` and ``val/`` exist and have the same, non-empty set of
    class folders; DataError in one sentence otherwise. Lists no images.
    """
    train, val = _split_dirs(root)
    classes = _classes(train)
    if not classes:
        raise DataError(f"{train} has no class folders; put each class's training images in "
                        f"train/<class>/ and its test images in val/<class>/")
    in_val = _classes(val)
    if in_val != classes:
        only_train = sorted(set(classes) - set(in_val))
        only_val = sorted(set(in_val) - set(classes))
        parts = ([f"only in train/: {_names(only_train)}"] if only_train else []) + \
                ([f"only in val/: {_names(only_val)}"] if only_val else [])
        raise DataError(f"the class folders of {train} and {val} differ ({'; '.join(parts)}); "
                        f"give both splits the same class folders")
    return classes


def _has_image(folder: str) -> bool:
    """Whether ``folder`` (or a folder below it) holds an image file.

    Stops at the first one, reading directories entry by entry, so a class folder of a
    thousand images costs a few entries, not a listing.
    """
    todo = [folder]
    while todo:
        here = todo.pop()
        try:
            with os.scandir(here) as entries:
                for e in entries:
                    if e.is_dir():
                        todo.append(e.path)
                    elif e.name.lower().endswith(_EXTENSIONS):
                        return True
        except OSError as e:
            raise DataError(f"{here} could not be read ({e.strerror}); check its "
                            f"permissions") from None
    return False


def _no_images(folder: str) -> DataError:
    return DataError(f"{folder} holds no images ({', '.join(_EXTENSIONS)}); add some, or "
                     f"remove that class folder from both train/ and val/")


def check_folder(root: str) -> None:
    """Raise DataError unless ``root`` is a usable image folder; reads no image.

    :func:`folder_classes`, and every training class and ``val/`` holds at least one image file
    (each scan stops at its first image, so this is quick on large trees).
    """
    classes = folder_classes(root)
    for c in classes:
        folder = os.path.join(root, "train", c)
        if not _has_image(folder):
            raise _no_images(folder)
    val = os.path.join(root, "val")
    if not _has_image(val):
        raise DataError(f"{val} holds no images; put each class's test images in "
                        f"val/<class>/")


def _listing(split: str, classes: list[str]) -> tuple[FolderImages, Tensor]:
    """(images, labels) of one split, in ImageFolder's order (torchvision's make_dataset)."""
    import torch  # lazy: the app imports pathviz.data without torch

    # lazy: torchvision (and torch) load only when a folder is listed for training
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    try:
        samples = make_dataset(split, {c: i for i, c in enumerate(classes)},
                               extensions=IMG_EXTENSIONS, allow_empty=True)
    except OSError as e:
        raise DataError(f"{split} could not be listed ({e.strerror}); check its permissions") \
            from None
    images = FolderImages.from_paths(split, [p for p, _ in samples])
    return images, torch.tensor([c for _, c in samples], dtype=torch.int64)


def load_folder(root: str) -> DataBundle:
    """The image folder at ``root`` as a bundle of :class:`FolderImages` (nothing decoded).

    ``train/`` is the training set and ``val/`` the test set; DataError in one sentence for a
    bad layout (see :func:`folder_classes`), a training class without images or an empty
    ``val/``.
    """
    import torch  # lazy: the app imports pathviz.data without torch

    classes = folder_classes(root)
    train_x, train_y = _listing(os.path.join(root, "train"), classes)
    counts = torch.bincount(train_y, minlength=len(classes))
    empty = [c for c, k in zip(classes, counts.tolist()) if k == 0]
    if empty:
        raise _no_images(os.path.join(root, "train", empty[0]))
    test_x, test_y = _listing(os.path.join(root, "val"), classes)
    if len(test_x) == 0:
        raise DataError(f"{os.path.join(root, 'val')} holds no images; put each class's test "
                        f"images in val/<class>/")
    info = dataclasses.replace(IMAGEFOLDER, num_classes=len(classes))
    return DataBundle(info, train_x, train_y, test_x, test_y)


# ---- decoding -------------------------------------------------------------------------------


class _Unreadable:
    """A batch (or sample) that could not be decoded: the sentence to raise in the main process.

    Returned instead of raised, because an exception from a DataLoader worker reaches the main
    process as a multi-line traceback of the worker.
    """

    def __init__(self, message: str) -> None:
        self.message = message


def _reason(e: BaseException) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "PIL does not recognise its format"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _transform(size: int, train: bool) -> Any:
    """ImageNet's transforms on a PIL image, ending in a uint8 tensor (3 x size x size).

    Training: RandomResizedCrop(size) + RandomHorizontalFlip; evaluation: Resize(size * 8/7,
    i.e. 256 for 224) + CenterCrop(size). The float conversion and normalisation are done on
    the whole batch, on the target device, so uint8 (a quarter of the bytes) is what moves.
    """
    from torchvision.transforms import v2  # lazy: torchvision loads only to train on a folder

    head = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()] if train \
        else [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*head, v2.PILToTensor()])


class _Decode:
    """The DataLoader's map-style dataset: decodes one image; the key is ``(index, seed of its
    random draw)``. Labels are a numpy array, like the paths, so forked workers share them."""

    def __init__(self, images: FolderImages, labels: Tensor, size: int, augment: bool) -> None:
        self.images, self.labels = images, labels.cpu().numpy()
        self.augment = augment
        self.transform = _transform(size, augment)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int] | _Unreadable:
        import torch  # lazy: the app imports pathviz.data without torch

        i, seed = key
        path = self.images.path(i)
        try:
            img = _open_rgb(path)
        except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
            return _Unreadable(f"{path} is not a readable image ({_reason(e)}); replace it or "
                               f"remove it from the folder")
        label = int(self.labels[i])
        if not self.augment:
            return self.transform(img), label
        # the draw depends on the seed alone, not on which process or how many draws came
        # before; fork_rng leaves the caller's CPU generator as it was (workers=0 runs here),
        # and only that one is seeded (torch.manual_seed would also reseed CUDA's, which the
        # trainer's dropout draws from)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.transform(img), label


def _open_rgb(path: str) -> Image.Image:
    """The image at ``path``, decoded and converted to RGB (grayscale, palette, RGBA...)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def _collate(items: list[tuple[Tensor, int] | _Unreadable]) -> tuple[Tensor, Tensor] | _Unreadable:
    """A batch (uint8 images, int64 labels), or the first sample's failure."""
    import torch  # lazy: the app imports pathviz.data without torch

    for it in items:
        if isinstance(it, _Unreadable):
            return it
    if not items:  # a rank's share of a batch smaller than the number of ranks
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    return (torch.stack([it[0] for it in items]),  # type: ignore[index]
            torch.tensor([it[1] for it in items], dtype=torch.int64))  # type: ignore[index]


class _EpochBatches:
    """The DataLoader's batch sampler: one epoch from batch ``start`` on, as lists of
    ``(index, seed)``.

    Set by :meth:`FolderLoader.epoch` before each pass; the skipped batches are never yielded,
    so never decoded. ``within = (r, w)`` keeps the images ``r::w`` of each batch (a training
    rank's share); ``among = (r, w)`` keeps the batches ``b % w == r`` (an evaluating rank's
    share). The seeds are drawn for the whole batch first, so a share's images get the seeds
    they get in the whole batch.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, shuffle: bool,
                 augment: bool, seed: int) -> None:
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.epoch, self.start = 0, 0
        self.within, self.among = (0, 1), (0, 1)

    def batches(self) -> int:
        """Batches in a whole epoch."""
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def _chosen(self, start: int) -> range:
        r, w = self.among
        first = start + (r - start) % w
        return range(first, self.batches(), w)

    def __len__(self) -> int:
        return len(self._chosen(self.start))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        # read the state now: the DataLoader may iterate this a little later
        return self._plan(self.epoch, self.start, self.within, self._chosen(self.start))

    def _plan(self, epoch: int, start: int, within: tuple[int, int], chosen: range
              ) -> Iterator[list[tuple[int, int]]]:
        import torch  # lazy: the app imports pathviz.data without torch

        base = self.seed * 1_000_003
        order = (torch.randperm(self.n, generator=torch.Generator().manual_seed(base + epoch))
                 if self.shuffle else torch.arange(self.n))
        bs = self.batch_size
        for b in chosen:
            idx = order[b * bs:(b + 1) * bs].tolist()
            if self.augment:  # BatchLoader's per-batch generator, one seed per image from it
                gen = torch.Generator().manual_seed(base + epoch * 100_003 + b)
                seeds = torch.randint(0, 2 ** 62, (len(idx),), generator=gen).tolist()
            else:
                seeds = [0] * len(idx)
            yield list(zip(idx, seeds))[within[0]::within[1]]


class FolderLoader:
    """Normalised float batches decoded from image files, in an order fixed by ``(seed, epoch)``.

    The interface of :class:`pathviz.data.loader.BatchLoader` (``len`` and ``epoch(e, start=k)``,
    yielding ``(x, y)`` on ``device``), with ``workers`` DataLoader processes decoding
    (0: this process). ``workers`` never changes a batch. The workers persist between epochs;
    :meth:`close` ends them (so does dropping the loader). One epoch at a time per loader: a
    new ``epoch()`` pass cancels an unfinished one.
    """

    def __init__(self, x: FolderImages, y: Tensor, info: DatasetInfo, batch_size: int, *,
                 shuffle: bool, augment: bool, seed: int = 0,
                 device: str | torch.device = "cpu", drop_last: bool = False,
                 workers: int = 0) -> None:
        import torch  # lazy: the app imports pathviz.data without torch

        if batch_size < 1:
            raise ValueError(f"Invalid batch_size value: {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y, self.info = x, y, info
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.device, self.drop_last = seed, torch.device(device), drop_last
        self.workers = workers
        self._batches = _EpochBatches(len(x), batch_size, drop_last, shuffle, augment, seed)
        c = info.in_channels
        self._mean = torch.tensor(info.mean, dtype=torch.float32).view(1, c, 1, 1).to(self.device)
        self._std = torch.tensor(info.std, dtype=torch.float32).view(1, c, 1, 1).to(self.device)
        self._data = torch.utils.data.DataLoader(
            _Decode(x, y, info.image_size, augment), batch_sampler=self._batches,
            num_workers=workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            # its own generator: the DataLoader draws a worker base seed on every pass, which
            # would otherwise move the global RNG (and so dropout) by an amount that depends on
            # the worker count
            generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return self._batches.batches()

    def batch_len(self, b: int) -> int:
        """Images in batch ``b`` of an epoch (the last one may be short)."""
        return max(0, min(self.batch_size, len(self.x) - b * self.batch_size))

    def epoch(self, epoch: int, start: int = 0, *, within: tuple[int, int] = (0, 1),
              among: tuple[int, int] = (0, 1)) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of one epoch, from the ``start``-th on (the earlier ones are not decoded).

        Several processes decode only their own share: ``within=(rank, world)`` yields the
        images ``rank::world`` of each batch (training), ``among=(rank, world)`` only the
        batches ``b % world == rank`` (evaluation). Either way a share is exactly the slice of
        the whole batches, crops and flips included.
        """
        if start >= len(self):
            return
        self._batches.epoch, self._batches.start = int(epoch), max(0, int(start))
        self._batches.within, self._batches.among = within, among
        c, size = self.info.in_channels, self.info.image_size
        for batch in self._data:
            if isinstance(batch, _Unreadable):
                raise DataError(batch.message)
            x, y = batch
            x = x.reshape(-1, c, size, size)  # an empty share keeps the image shape
            x = x.to(self.device, non_blocking=True).float().div_(255)
            x = (x - self._mean) / self._std
            yield x, y.to(self.device, non_blocking=True)

    def close(self) -> None:
        """End the worker processes now (they end with the loader otherwise)."""
        self._data._iterator = None  # its __del__ shuts the workers down
