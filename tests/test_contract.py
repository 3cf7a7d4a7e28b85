"""The input contract: its record per dataset, and its code against pathviz.data's own steps."""

from __future__ import annotations

import runpy

import numpy as np
import pytest

from pathviz.contract import input_contract, preprocess_source


def _code(tmp_path, dataset, shape=None):
    f = tmp_path / "pre.py"
    f.write_text(preprocess_source(input_contract(dataset, shape)))
    return runpy.run_path(str(f))


def test_the_digits_code_gives_the_batches_training_saw(tmp_path):
    """from_sklearn_digits + preprocess against pathviz.data's test images and BatchLoader:
    the resize within one grey level at a few ties, the normalisation exact on equal pixels."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from pathviz.data import BatchLoader, load_dataset

    ns = _code(tmp_path, "digits", [1, 28, 28])
    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    bundle = load_dataset("digits")
    assert np.array_equal(y_test, bundle.test_y.numpy())  # the split the contract names
    pixels = ns["from_sklearn_digits"](x_test)
    theirs = bundle.test_x.numpy()
    assert pixels.dtype == np.uint8 and pixels.shape == theirs.shape == (360, 1, 28, 28)
    diff = np.abs(pixels.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and (diff > 0).sum() <= 20, (diff > 0).sum()
    loader = BatchLoader(torch.from_numpy(pixels), bundle.test_y, bundle.info, 360,
                         shuffle=False, augment=False)
    assert np.array_equal(ns["preprocess"](pixels), next(loader.epoch(0))[0].numpy())
    assert ns["CLASS_NAMES"] == [str(i) for i in range(10)]


def test_preprocess_takes_channels_last_and_refuses_wrong_input(tmp_path):
    ns = _code(tmp_path, "cifar10")
    img = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    first = ns["preprocess"](img.transpose(0, 3, 1, 2))
    assert np.array_equal(ns["preprocess"](img), first)
    assert first.dtype == np.float32 and first.shape == (2, 3, 32, 32)
    # channel 0 of pixel 0: (x / 255 - 0.4914) / 0.2470
    want = (np.float32(img[0, 0, 0, 0]) / 255 - np.float32(0.4914)) / np.float32(0.2470)
    assert first[0, 0, 0, 0] == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        ns["preprocess"](img.astype(np.float32))
    with pytest.raises(ValueError, match="resize them first"):
        ns["preprocess"](img[:, :28, :28])


def test_every_dataset_records_its_contract():
    for name, channels, classes in (("digits", "grayscale", "0"), ("mnist", "grayscale", "0"),
                                    ("fashion_mnist", "grayscale", "T-shirt/top"),
                                    ("cifar10", "RGB", "airplane")):
        c = input_contract(name)
        assert c["channel_order"] == channels and c["class_names"][0] == classes
        assert c["dtype"] == "float32" and c["layout"] == "NCHW" and c["mean"] and c["std"]
        assert c["resize"] and c["source"]["from"]
    folder = input_contract("imagefolder", [3, 224, 224], ["cat", "dog"])
    assert folder["class_names"] == ["cat", "dog"] and "256" in folder["resize"]
    unknown = input_contract("nosuch", [3, 8, 8])
    assert unknown["mean"] is None and preprocess_source(unknown) is None
