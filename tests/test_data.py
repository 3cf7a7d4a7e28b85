"""Datasets: bundled digits, and the real torchvision loaders on tiny files written here."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from pathviz.data import (
    DATASETS,
    BatchLoader,
    DataError,
    check_dataset,
    check_root_wanted,
    dataset_info,
    load_dataset,
)


def write_idx(path: str, arr: np.ndarray) -> None:
    """Write an IDX file (the MNIST format): magic with dtype code 0x08 (ubyte) and ndim."""
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, arr.ndim))
        f.write(struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def make_mnist(root: str, folder: str = "MNIST", n_train: int = 12, n_test: int = 5) -> None:
    raw = os.path.join(root, folder, "raw")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(os.path.join(raw, f"{split}-images-idx3-ubyte"),
                  rng.integers(0, 256, (n, 28, 28)))
        write_idx(os.path.join(raw, f"{split}-labels-idx1-ubyte"), np.arange(n) % 10)


def make_cifar10(root: str, per_batch: int = 4) -> None:
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_digits_is_bundled_and_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train_x.shape == (1437, 1, 28, 28) and a.test_x.shape == (360, 1, 28, 28)
    assert a.train_x.dtype == torch.uint8
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.train_x, b.train_x)
    assert sorted(a.test_y.unique().tolist()) == list(range(10))


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_through_torchvision(tmp_path, name, folder):
    make_mnist(str(tmp_path), folder)
    b = load_dataset(name, tmp_path)
    assert b.train_x.shape == (12, 1, 28, 28) and b.test_x.shape == (5, 1, 28, 28)
    assert b.train_y.tolist() == [i % 10 for i in range(12)]
    raw = np.fromfile(tmp_path / folder / "raw" / "train-images-idx3-ubyte", dtype=np.uint8)[16:]
    assert b.train_x.flatten().tolist() == raw.tolist()


def test_cifar10_through_torchvision(tmp_path):
    make_cifar10(str(tmp_path))
    b = load_dataset("cifar10", tmp_path)
    assert b.train_x.shape == (20, 3, 32, 32) and b.test_x.shape == (4, 3, 32, 32)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    # CIFAR rows are channel-major 3x32x32
    assert b.train_x[0].flatten().tolist() == first["data"][0].tolist()
    assert b.train_y[:4].tolist() == first["labels"]


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imagefolder"])
def test_a_file_as_data_root_is_a_file_not_a_folder(tmp_path, name):
    """Issue 36, defect 4: a file given as the data root "did not exist"."""
    root = tmp_path / "data.zip"
    root.write_bytes(b"PK")
    want = (f"data root {str(root)!r} is a file, not a folder; pass the folder that holds the "
            f"{name} files as --data-root")
    for call in (load_dataset, check_dataset, dataset_info):
        if call is dataset_info and name != "imagefolder":
            continue  # (only an image folder's info reads its root)
        with pytest.raises(DataError) as e:
            call(name, root)
        assert str(e.value) == want


def test_digits_takes_no_data_root():
    """Issue 30, item 7: a root given with the bundled digits is refused, not ignored."""
    with pytest.raises(DataError, match=r"^the digits dataset is bundled with pathviz and takes "
                       r"no --data-root \(got '/nope'\); drop --data-root"):
        check_dataset("digits", "/nope")
    check_dataset("digits", None)
    check_root_wanted("digits", None)
    check_root_wanted("mnist", "/data")


def test_missing_folder_and_files_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="needs --data-root"):
        load_dataset("mnist")
    with pytest.raises(DataError, match=r"does not exist.*--data-root"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(DataError, match=r"MNIST/raw: expected train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"]:
        with gzip.open(raw / (f + ".gz"), "wb") as g:
            g.write(b"")
    with pytest.raises(DataError, match="as .gz: gunzip"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match=r"cifar-10-batches-py: expected data_batch_1"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_corrupt_cifar_file_is_a_clear_error(tmp_path):
    make_cifar10(str(tmp_path))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"data_batch_3 is not a CIFAR-10 batch \(invalid load "
                                        r"key, 'n'\.\); replace it with the original file"):
        load_dataset("cifar10", tmp_path)


def test_batch_loader_order_is_a_function_of_seed_and_epoch():
    b = load_dataset("digits")
    mk = lambda seed: BatchLoader(b.train_x, b.train_y, b.info, 100, shuffle=True,  # noqa: E731
                                  augment=True, seed=seed)
    full = list(mk(0).epoch(3))
    assert len(full) == 15 and full[-1][0].shape == (37, 1, 28, 28)
    resumed = list(mk(0).epoch(3, start=4))
    assert all(torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
               for a, c in zip(full[4:], resumed))
    assert not torch.equal(full[0][1], list(mk(0).epoch(4))[0][1])
    assert not torch.equal(full[0][1], list(mk(1).epoch(3))[0][1])
    x = torch.cat([f[0] for f in list(BatchLoader(b.train_x, b.train_y, b.info, 500, shuffle=False,
                                                  augment=False).epoch(0))])
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01


def test_crop_flip_keeps_content_and_shape():
    from pathviz.data import _crop_flip

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    out = _crop_flip(x, gen, pad=0)  # no padding: only flips remain
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = _crop_flip(x, torch.Generator().manual_seed(1), pad=4)
    assert out.shape == x.shape


# ---- data files are not trusted (issue 12, defects 1 and 6) ----------------------------------


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING), as the real CIFAR-10 batches were
    written by cPickle, so the loader is tested on that format and not only on Python 3's."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _py2_str
    dispatch[str] = _py2_str


def test_cifar10_in_the_python2_pickle_format_loads(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": "training batch 1 of 5",
                 "data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
                 "labels": [1, 9, 0], "filenames": ["a.png", "b.png", "c.png"]}
        rows[name] = batch["data"]
        with open(folder / name, "wb") as f:
            _Py2Pickler(f, protocol=2).dump(batch)
    with open(folder / "batches.meta", "wb") as f:
        _Py2Pickler(f, protocol=2).dump({"label_names": ["airplane"], "num_vis": 3072})
    b = load_dataset("cifar10", tmp_path)
    assert b.train_x.shape == (15, 3, 32, 32) and b.train_y.tolist() == [1, 9, 0] * 5
    assert b.test_x[2].flatten().tolist() == rows["test_batch"][2].tolist()


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("victim", ["data_batch_2", "test_batch", "batches.meta"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, victim):
    make_cifar10(str(tmp_path))
    marker = tmp_path / "PWNED"
    with open(tmp_path / "cifar-10-batches-py" / victim, "wb") as f:
        pickle.dump({"data": _Boom(marker), "labels": []}, f)
    if victim == "batches.meta":  # never read at all: the class names are not needed
        load_dataset("cifar10", tmp_path)
    else:
        with pytest.raises(DataError, match=r"is not a CIFAR-10 batch \(it asks for "
                                            r"posix\.system, which a CIFAR batch never holds\); "
                                            r"replace it with the original file"):
            load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_a_pickle_of_the_wrong_shape_is_refused(tmp_path):
    make_cifar10(str(tmp_path))
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(DataError, match="does not hold a CIFAR-10 batch"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("content,message", [
    (b"", "is not an IDX file of unsigned bytes \\(magic missing"),
    (b"garbage garbage garbage", "is not an IDX file of unsigned bytes \\(magic 67617262"),
    (struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">I", 12), "ends inside its IDX header"),
    (struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 4_000_000_000, 28, 28),
     "holds 0 bytes of data but its header says \\(4000000000, 28, 28\\)"),
    (struct.pack(">HBB", 0, 0x0D, 3) + struct.pack(">3I", 1, 28, 28),
     "is not an IDX file of unsigned bytes"),
])
def test_garbage_idx_files_are_one_sentence(tmp_path, content, message):
    make_mnist(str(tmp_path))
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        load_dataset("mnist", tmp_path)
    assert "\n" not in str(e.value) and str(e.value).endswith("(uncompressed) IDX file")


def test_idx_images_and_labels_must_agree(tmp_path):
    make_mnist(str(tmp_path))
    write_idx(str(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"), np.arange(4))
    with pytest.raises(DataError, match=r"t10k images are \(5, 28, 28\) and labels \(4,\)"):
        load_dataset("mnist", tmp_path)


def test_imagefolder_is_a_dataset_name_with_a_root():
    from pathviz.data import DATASET_NAMES, check_dataset, dataset_info

    assert DATASET_NAMES[-1] == "imagefolder" and "imagefolder" not in DATASETS
    with pytest.raises(DataError, match=r"choose one of digits, .*, imagefolder"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="'imagefolder' needs --data-root"):
        load_dataset("imagefolder")
    with pytest.raises(DataError, match="'imagefolder' needs a data root"):
        check_dataset("imagefolder", None)
    assert dataset_info("cifar10") is DATASETS["cifar10"]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_a_gpu_loader_serves_the_cpu_batches_from_device_memory():
    """On CUDA the images live on the device and are cropped, flipped and normalised there;
    the batches are the CPU loader's (the draws are the CPU's)."""
    import torch

    from pathviz.data import DATASETS, BatchLoader

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (50,), generator=g)
    info = DATASETS["cifar10"]
    cpu = BatchLoader(x, y, info, 16, shuffle=True, augment=True, seed=3)
    gpu = BatchLoader(x, y, info, 16, shuffle=True, augment=True, seed=3, device="cuda")
    assert gpu._x.is_cuda
    for (a, ya), (b, yb) in zip(cpu.epoch(2, start=1), gpu.epoch(2, start=1)):
        assert b.is_cuda and torch.equal(ya, yb.cpu())
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-6)
