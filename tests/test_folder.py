"""``--dataset imagefolder``: a tiny folder of PNGs written here, listed, split and streamed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pathviz.config import ConfigError, RunConfig
from pathviz.data import (
    BatchLoader,
    DataError,
    check_dataset,
    dataset_info,
    load_dataset,
    make_loader,
    split_validation,
)
from pathviz.data.folder import FolderImages, FolderLoader

CLASSES = ("cat", "dog", "owl")
SIZES = ((40, 30), (64, 64), (30, 50))  # (width, height)


def make_folder(root: Path, classes=CLASSES, n_train: int = 6, n_val: int = 2) -> Path:
    """``root/{train,val}/<class>/<i>.png``: random pixels, three sizes, RGB, grayscale, RGBA."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = SIZES[i % 3]
                im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                im = (im, im.convert("L"), im.convert("RGBA"))[i % 3]
                im.save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("imgs"))


def loader(images, labels, info, *, workers=0, shuffle=True, augment=True, seed=1,
           batch_size=4) -> FolderLoader:
    return make_loader(images, labels, info, batch_size, shuffle=shuffle, augment=augment,
                       seed=seed, workers=workers)


def batches(ld, epoch: int, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(ld.epoch(epoch, start=start))


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_the_folder_is_listed_not_loaded(folder):
    check_dataset("imagefolder", folder)
    b = load_dataset("imagefolder", folder)
    assert b.info.name == "imagefolder" and b.info.num_classes == 3
    assert (b.info.in_channels, b.info.image_size, b.info.augment) == (3, 224, True)
    assert isinstance(b.train_x, FolderImages) and len(b.train_x) == 18 and len(b.test_x) == 6
    assert b.train_y.tolist() == [0] * 6 + [1] * 6 + [2] * 6 and b.test_y.tolist() == [0, 0, 1,
                                                                                       1, 2, 2]
    assert b.train_x[7] == os.path.join(folder, "train", "dog", "1.png")
    assert len(b.train_x[:0]) == 0 and len(b.train_x[torch.tensor([0, 5])]) == 2
    assert dataset_info("imagefolder", folder) == b.info
    assert dataset_info("imagefolder").num_classes == 0  # shape only, without a root
    assert dataset_info("imagenet") is None and dataset_info("digits").num_classes == 10


def test_the_layout_check_is_torchvisions_and_torch_free(folder):
    import subprocess
    import sys

    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

    import pathviz.data.folder as pf

    assert pf._EXTENSIONS == IMG_EXTENSIONS
    assert pf.folder_classes(str(folder)) == find_classes(folder / "train")[0] == list(CLASSES)
    code = (f"import sys; from pathviz.data import check_dataset; "
            f"check_dataset('imagefolder', {str(folder)!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]  # the app's New run form checks a folder without loading torch


def test_validation_split_is_stratified_and_seeded(folder):
    b = load_dataset("imagefolder", folder)
    s1, s2 = split_validation(b, 1 / 3, 0), split_validation(b, 1 / 3, 0)
    assert torch.bincount(s1.val_y).tolist() == [2, 2, 2]
    assert torch.bincount(s1.train_y).tolist() == [4, 4, 4]
    val = [s1.val_x[i] for i in range(len(s1.val_x))]
    train = [s1.train_x[i] for i in range(len(s1.train_x))]
    assert val == [s2.val_x[i] for i in range(len(s2.val_x))]
    assert sorted(val + train) == sorted(b.train_x[i] for i in range(18))
    # each held-out file keeps its label
    assert all(os.path.basename(os.path.dirname(p)) == CLASSES[c]
               for p, c in zip(val, s1.val_y.tolist()))
    other = split_validation(b, 1 / 3, 5)
    assert [other.val_x[i] for i in range(6)] != val
    assert len(split_validation(b, 0.0, 0).val_x) == 0


def test_eval_batches_are_imagenet_normalised_224_crops(folder):
    from torchvision.transforms import v2

    b = load_dataset("imagefolder", folder)
    out = batches(loader(b.test_x, b.test_y, b.info, shuffle=False, augment=False), 0)
    assert [x.shape for x, _ in out] == [(4, 3, 224, 224), (2, 3, 224, 224)]
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in out)
    assert torch.cat([y for _, y in out]).tolist() == b.test_y.tolist()
    # the standard pipeline by hand: RGB, Resize(256), CenterCrop(224), /255, ImageNet mean/std
    for i in (0, 1, 5):  # RGB 40x30, grayscale 64x64, RGBA 30x50
        img = Image.open(b.test_x[i]).convert("RGB")
        ref = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.PILToTensor()])(img)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        assert torch.equal(out[i // 4][0][i % 4], (ref.float() / 255 - mean) / std)
    gray = out[0][0][1] * torch.tensor(b.info.std).view(3, 1, 1)
    assert torch.allclose(gray[0] + 0.485, gray[1] + 0.456, atol=1e-5)  # L -> RGB: equal planes


def test_augmented_batches_are_the_same_with_any_worker_count(folder):
    b = load_dataset("imagefolder", folder)
    rng = torch.get_rng_state()
    one = loader(b.train_x, b.train_y, b.info, workers=0)
    two = loader(b.train_x, b.train_y, b.info, workers=2)
    try:
        e3 = batches(one, 3)
        assert len(one) == 5 and [x.shape[0] for x, _ in e3] == [4, 4, 4, 4, 2]
        assert same(e3, batches(two, 3))
        assert same(batches(two, 4), batches(one, 4))  # the persistent workers, a second epoch
        assert same(e3, batches(loader(b.train_x, b.train_y, b.info), 3))  # a fresh loader
        assert not torch.equal(e3[0][0], batches(one, 4)[0][0])  # another epoch, another order
        assert not same(e3, batches(loader(b.train_x, b.train_y, b.info, seed=2), 3))
        # same order without augmentation, but the crops and flips were random
        plain = batches(loader(b.train_x, b.train_y, b.info, augment=False), 3)
        assert all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(e3, plain))
        assert not torch.equal(e3[0][0], plain[0][0])
        # the order is BatchLoader's rule: randperm of a generator seeded (seed, epoch)
        order = torch.randperm(18, generator=torch.Generator().manual_seed(1 * 1_000_003 + 3))
        assert torch.cat([y for _, y in e3]).tolist() == b.train_y[order].tolist()
    finally:
        two.close()
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG (dropout) is untouched


def test_a_resumed_epoch_is_the_tail_and_skips_decoding(folder, monkeypatch):
    import pathviz.data.folder as pf

    b = load_dataset("imagefolder", folder)
    full = batches(loader(b.train_x, b.train_y, b.info), 2)
    opened = []
    real = pf._open_rgb
    monkeypatch.setattr(pf, "_open_rgb", lambda p: opened.append(p) or real(p))
    tail = batches(loader(b.train_x, b.train_y, b.info), 2, start=3)
    assert same(tail, full[3:]) and len(opened) == 6  # batches 3 and 4 only: 4 + 2 images
    assert batches(loader(b.train_x, b.train_y, b.info), 2, start=5) == []
    two = loader(b.train_x, b.train_y, b.info, workers=2)
    try:
        assert same(batches(two, 2, start=4), full[4:])
    finally:
        two.close()


def test_each_rank_decodes_only_its_share_and_gets_the_slice_of_the_whole(folder,
                                                                         monkeypatch):
    """Under DDP a rank decodes its images of each training batch (``within``) and its batches
    of an evaluation pass (``among``): the shares are the slices of the whole batches, crops
    and flips included, and the images of the other ranks are never opened."""
    import pathviz.data.folder as pf
    from pathviz.distributed import Dist, ShardedBatches

    b = load_dataset("imagefolder", folder)
    full = batches(loader(b.train_x, b.train_y, b.info, batch_size=5), 1)  # 5, 5, 5, 3
    opened = []
    real = pf._open_rgb
    monkeypatch.setattr(pf, "_open_rgb", lambda p: opened.append(p) or real(p))
    for rank in range(3):
        opened.clear()
        d = Dist(rank=rank, world=3, local_rank=rank)
        shard = list(ShardedBatches(loader(b.train_x, b.train_y, b.info, batch_size=5), d)
                     .epoch(1, start=1))
        assert [n for _, _, n in shard] == [5, 5, 3]  # the global batch sizes
        assert all(torch.equal(x, fx[rank::3]) and torch.equal(y, fy[rank::3])
                   for (x, y, _), (fx, fy) in zip(shard, full[1:]))
        assert len(opened) == sum(len(fy[rank::3]) for _, fy in full[1:])
        ev = list(loader(b.train_x, b.train_y, b.info, batch_size=5).epoch(
            1, among=(rank, 3)))
        assert same(ev, full[rank::3])
    # a share can be empty (a last batch smaller than the number of ranks): shaped, not lost
    d = Dist(rank=3, world=4, local_rank=3)
    last = list(ShardedBatches(loader(b.train_x, b.train_y, b.info, batch_size=5), d)
                .epoch(1, start=3))
    assert [(tuple(x.shape), n) for x, _, n in last] == [((0, 3, 224, 224), 3)]


def test_make_loader_keeps_tensors_in_memory():
    x, y = torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.arange(5)
    ld = make_loader(x, y, dataset_info("digits"), 2, shuffle=False, augment=False, workers=3)
    assert isinstance(ld, BatchLoader) and len(ld) == 3


def test_tv_resnet18_runs_on_a_folder_batch(folder):
    from pathviz.models import build_model

    b = load_dataset("imagefolder", folder)
    x, _ = next(loader(b.test_x, b.test_y, b.info, shuffle=False, augment=False,
                       batch_size=2).epoch(0))
    model = build_model("tv_resnet18", num_classes=b.info.num_classes).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_workers_is_a_config_field():
    assert RunConfig(dataset="imagefolder", data_root="x", workers=2).validate().workers == 2
    assert RunConfig().workers == 0
    with pytest.raises(ConfigError, match="--workers"):
        RunConfig(workers=-1).validate()
    import argparse

    from pathviz.config import add_config_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_config_arguments(p)
    cfg = config_from_args(p.parse_args(["--dataset", "imagefolder", "--workers", "3"]))
    assert (cfg.dataset, cfg.workers) == ("imagefolder", 3)


# ---- bad folders: one sentence each ----------------------------------------------------------


def one_sentence(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize("breakage,message", [
    ("no_train", r"has no train/ folder; an imagefolder root holds train/<class>/<image> and "
                 r"val/<class>/<image>"),
    ("no_val", r"has no val/ folder"),
    ("empty_root", r"has no train/ and no val/ folder"),
    ("no_classes", r"train has no class folders; put each class's training images in "
                   r"train/<class>/"),
    ("mismatch", r"the class folders of .*train and .*val differ \(only in train/: owl; only in "
                 r"val/: emu\); give both splits the same class folders"),
    ("empty_class", r"train/dog holds no images \(.jpg, .*\); add some, or remove that class "
                    r"folder from both train/ and val/"),
    ("empty_val", r"val holds no images; put each class's test images in val/<class>/"),
])
def test_a_bad_layout_is_one_sentence(tmp_path, breakage, message):
    import shutil

    root = tmp_path / "data"
    root.mkdir()
    if breakage != "empty_root":
        make_folder(root, n_train=2, n_val=1)
    if breakage == "no_train":
        shutil.rmtree(root / "train")
    elif breakage == "no_val":
        shutil.rmtree(root / "val")
    elif breakage == "no_classes":
        for c in CLASSES:
            shutil.rmtree(root / "train" / c)
    elif breakage == "mismatch":
        (root / "val" / "owl").rename(root / "val" / "emu")
    elif breakage == "empty_class":
        for f in (root / "train" / "dog").iterdir():
            f.unlink()
        (root / "train" / "dog" / "notes.txt").write_text("not an image")
    elif breakage == "empty_val":
        for c in CLASSES:
            for f in (root / "val" / c).iterdir():
                f.unlink()
    with pytest.raises(DataError, match=message) as e:
        load_dataset("imagefolder", root)
    one_sentence(e)
    with pytest.raises(DataError, match=message) as e:
        check_dataset("imagefolder", root)
    one_sentence(e)


def test_a_missing_root_is_one_sentence(tmp_path):
    for call in (load_dataset, check_dataset):
        with pytest.raises(DataError, match="does not exist") as e:
            call("imagefolder", tmp_path / "nope")
        one_sentence(e)
        with pytest.raises(DataError, match="needs"):
            call("imagefolder", None)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_names_the_file(tmp_path, workers):
    root = make_folder(tmp_path / "data", n_train=2, n_val=1)
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a truncated PNG
    (root / "train" / "owl" / "0.png").write_bytes(b"not an image at all")
    b = load_dataset("imagefolder", root)  # listing reads no image: found when decoded
    ld = loader(b.train_x, b.train_y, b.info, workers=workers, shuffle=False, batch_size=2)
    try:
        with pytest.raises(DataError) as e:
            batches(ld, 0)
        msg = one_sentence(e)
        assert msg.startswith(f"{bad} is not a readable image (") and \
            msg.endswith("); replace it or remove it from the folder")
        with pytest.raises(DataError, match=r"owl/0.png is not a readable image \(PIL does not "
                                            r"recognise its format\)"):
            batches(ld, 0, start=2)
    finally:
        if isinstance(ld, FolderLoader):
            ld.close()
