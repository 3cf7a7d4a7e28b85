"""Batches: :class:`BatchLoader` serves the in-memory datasets (uint8 images plus labels),
:class:`pathviz.data.folder.FolderLoader` decodes an image folder batch by batch. Both take their
batch order and augmentation from ``(seed, epoch)`` only, which makes a training run reproducible
and resumable mid-epoch without saving any loader state. :func:`make_loader` picks the right one,
so callers never ask which dataset they hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pathviz.data.folder import FolderImages, FolderLoader
from pathviz.data.info import DatasetInfo

if TYPE_CHECKING:  # torch is imported where tensors are made, so the app can import pathviz.data
    import torch  # lazy: the app imports pathviz.data without torch
    from torch import Tensor

__all__ = ["BatchLoader", "Loader", "make_loader"]


class Loader(Protocol):
    """What the trainer, evaluation and DDP use of a loader: :class:`BatchLoader` and
    :class:`pathviz.data.folder.FolderLoader` both are one."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...


def make_loader(x: Tensor | FolderImages, y: Tensor, info: DatasetInfo, batch_size: int, *,
                shuffle: bool, augment: bool, seed: int = 0,
                device: str | torch.device = "cpu", drop_last: bool = False,
                workers: int = 0) -> BatchLoader | FolderLoader:
    """The loader for a bundle's images, whichever dataset they come from.

    Tensors (the in-memory datasets) get a :class:`BatchLoader`, which ignores ``workers``:
    its batches are slices of memory. :class:`pathviz.data.folder.FolderImages` get a
    :class:`pathviz.data.folder.FolderLoader` that decodes in ``workers`` processes (0: in this
    one).
    Both give the same batches for the same ``(seed, epoch)`` whatever ``workers`` is, so
    callers need no ``if dataset == ...`` and ``workers`` never changes the numbers.
    """
    import torch  # lazy: the app imports pathviz.data without torch

    if isinstance(x, torch.Tensor):
        return BatchLoader(x, y, info, batch_size, shuffle=shuffle, augment=augment, seed=seed,
                           device=device, drop_last=drop_last)
    return FolderLoader(x, y, info, batch_size, shuffle=shuffle, augment=augment, seed=seed,
                        device=device, drop_last=drop_last, workers=workers)


class BatchLoader:
    """Normalised float batches from uint8 images, in an order fixed by ``(seed, epoch)``.

    ``epoch(e, start=k)`` yields the batches of epoch ``e`` from the k-th on, exactly as an
    uninterrupted run would have seen them, augmentation included.

    On a GPU the uint8 images are copied there once (CIFAR-10 is 150 MB): each batch is then
    gathered, cropped, flipped and normalised on the device from indices drawn on the CPU, so
    no batch crosses the bus and nothing waits for the host. The random draws are the CPU's,
    so the batch order and augmentation do not depend on the device.
    """

    def __init__(self, x: Tensor, y: Tensor, info: DatasetInfo, batch_size: int, *,
                 shuffle: bool, augment: bool, seed: int = 0, device: str | torch.device = "cpu",
                 drop_last: bool = False) -> None:
        import torch  # lazy: the app imports pathviz.data without torch

        if batch_size < 1:
            raise ValueError(f"Invalid batch_size value: {batch_size}")
        self.x, self.y, self.info = x, y, info
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.device, self.drop_last = seed, torch.device(device), drop_last
        on_gpu = self.device.type == "cuda"
        self._x = x.to(self.device) if on_gpu else x
        self._y = y.to(self.device) if on_gpu else y
        c, where = info.in_channels, self._x.device
        self._mean = torch.tensor(info.mean, dtype=torch.float32, device=where).view(1, c, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32, device=where).view(1, c, 1, 1)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of one epoch, skipping the first ``start`` ones."""
        import torch  # lazy: the app imports pathviz.data without torch

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            # one augmentation draw per batch, from a generator of its own: skippable on resume
            bgen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 100_003 + b)
            if b < start:
                continue
            idx = idx.to(self._x.device, non_blocking=True)
            x = self._x[idx].float().div_(255)
            if self.augment:
                x = _crop_flip(x, bgen)
            x = (x - self._mean) / self._std
            yield x.to(self.device, non_blocking=True), self._y[idx].to(self.device)


def _crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop after zero padding, and random horizontal flip, per image (N x C x H x W)."""
    import torch  # lazy: the app imports pathviz.data without torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    # drawn on the CPU (the same on every device), applied where the images are
    rows, cols = rows.to(x.device, non_blocking=True), cols.to(x.device, non_blocking=True)
    bi = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[bi, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()
