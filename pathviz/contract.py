"""The input contract of an exported model: what an image must go through before the model sees
it, as data (recorded in every export's metadata) and as code (a dependency-free Python file
written beside the export).

An exported subnetwork is meant to run without pathviz, but the model alone does not say that
digits were scaled from 8x8 to 28x28 and normalised with mean 0.3054 / std 0.3247: fed raw
pixels it scores far below the accuracy the app shows. So
each export carries :func:`input_contract` in its ``.json`` report and inside the file itself
(pt2 and TorchScript extra files, ONNX metadata properties, a ``state_dict`` export's
``"input"`` key), and :func:`preprocess_source` is written beside it as
``<out>.preprocess.py``: plain Python and numpy, with the same steps as
:mod:`pathviz.data` (checked against it by ``tests/test_contract.py``: the normalisation to the
last bit; digits' 8x8 -> 28x28 resize to within one grey level at a few rounding ties, 12 of the
test set's 282,240 pixels, because torch's kernel fuses its multiply-adds).

Torch-free: the app and ``inspect`` may import it.
"""

from __future__ import annotations

import json
from typing import Any

from pathviz.data import DATASETS, IMAGEFOLDER

__all__ = ["CONTRACT_FILE", "ONNX_KEY", "CLASS_NAMES", "input_contract", "contract_json",
           "preprocess_source"]

CONTRACT_FILE = "pathviz_input.json"  # the name of the contract inside a pt2/TorchScript file
ONNX_KEY = "pathviz_input"  # the ONNX metadata property that holds the contract as JSON

CLASS_NAMES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}

# how each dataset's images reach the uint8 (N, C, H, W) arrays that training normalised;
# the steps mirror pathviz.data (_digits, _mnist_like, _cifar10) and pathviz.data.folder
SOURCES: dict[str, dict[str, Any]] = {
    "digits": {
        "from": "scikit-learn's load_digits(): 8x8 images with values 0..16, as (N, 64) floats",
        "steps": ["divide by 16 (values 0..1)",
                  "resize 8x8 -> 28x28, bilinear, align_corners=False, no antialiasing "
                  "(torch.nn.functional.interpolate)",
                  "clamp to 0..1, multiply by 255, round half to even, cast to uint8"],
        "held_out": "sklearn.model_selection.train_test_split(x, y, test_size=0.2, "
                    "random_state=0, stratify=y): the last two values returned (360 images) "
                    "are the test set",
    },
    "mnist": {"from": "the IDX files: 28x28 uint8 images", "steps": []},
    "fashion_mnist": {"from": "the IDX files: 28x28 uint8 images", "steps": []},
    "cifar10": {"from": "the python pickle batches: 32x32 RGB uint8 images, channels first",
                "steps": []},
    "imagefolder": {"from": "image files decoded to RGB uint8",
                    "steps": ["resize the shorter side to round(size * 256 / 224) pixels, "
                              "bilinear with antialiasing (torchvision v2.Resize)",
                              "center-crop to size x size"]},
}


def input_contract(dataset: str | None, input_shape: list[int] | tuple[int, ...] | None = None,
                   class_names: list[str] | None = None) -> dict[str, Any]:
    """What an input must look like for a model trained on ``dataset``, as a JSON-ready dict.

    Keys: ``dataset``, ``input_shape`` [C, H, W] (a batch dimension of any size goes first),
    ``dtype`` ("float32"), ``layout`` ("NCHW"), ``channel_order`` ("grayscale" or "RGB"),
    ``scale`` (uint8 pixels divided by 255), ``mean``/``std`` per channel (applied after the
    scale: ``(x / 255 - mean) / std``), ``resize`` and ``source`` (how the dataset's own files
    become those uint8 pixels), ``class_names`` (output index -> name; None where unknown),
    ``output`` (what the model returns) and ``code`` (the file of :func:`preprocess_source`).
    A dataset pathviz does not know gives the shape alone, with ``mean``/``std`` None.
    """
    info = DATASETS.get(dataset or "") or (IMAGEFOLDER if dataset == "imagefolder" else None)
    shape = list(input_shape) if input_shape else (
        [info.in_channels, info.image_size, info.image_size] if info else None)
    contract: dict[str, Any] = {
        "dataset": dataset, "input_shape": shape, "dtype": "float32", "layout": "NCHW",
        "channel_order": None, "scale": None, "mean": None, "std": None, "resize": None,
        "source": SOURCES.get(dataset or ""), "class_names": class_names,
        "output": "logits, one per class (argmax is the prediction; no softmax applied)",
        "code": "preprocess(images) in the .preprocess.py file beside the export",
    }
    if info is None:
        return contract
    size = shape[-1] if shape else info.image_size
    contract.update({
        "channel_order": "grayscale" if info.in_channels == 1 else "RGB",
        "scale": "uint8 pixels (0..255) divided by 255",
        "mean": list(info.mean), "std": list(info.std),
        "resize": (f"images are {size}x{size} as the model expects" if dataset != "digits" and
                   dataset != "imagefolder" else
                   "8x8 -> 28x28 bilinear (see source)" if dataset == "digits" else
                   f"shorter side {round(size * 256 / 224)}, center crop {size} (see source)"),
    })
    if class_names is None:
        contract["class_names"] = CLASS_NAMES.get(dataset or "")
    return contract


def contract_json(contract: dict[str, Any]) -> str:
    """The contract as the compact JSON stored inside model files."""
    return json.dumps(contract, sort_keys=True)


_CODE = '''"""Input preprocessing for {what}, written by pathviz.export.

Plain Python and numpy: no pathviz and no torch needed. The same steps as the training run:

    x = preprocess(images)      # float32 (N, {c}, {h}, {w}), ready for the model
    logits = model(x)           # torch: model(torch.from_numpy(x)); onnxruntime: the same array
    labels = logits.argmax(1)   # CLASS_NAMES[label] names it

CONTRACT is the same record as the "input" key of the export's .json report.
"""

import json

import numpy as np

CONTRACT = json.loads({contract!r})
MEAN = np.array(CONTRACT["mean"], np.float32).reshape(1, -1, 1, 1)
STD = np.array(CONTRACT["std"], np.float32).reshape(1, -1, 1, 1)
CLASS_NAMES = CONTRACT["class_names"]


def preprocess(images):
    """uint8 images (N, H, W) for one channel, or (N, C, H, W) / (N, H, W, C) with pixels
    0..255 at the model's size {h}x{w} -> float32 (N, {c}, {h}, {w}): (x / 255 - mean) / std."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels 0..255, got {{x.dtype}}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] != {c} and x.shape[3] == {c}:
        x = x.transpose(0, 3, 1, 2)  # channels last -> channels first
    if x.ndim != 4 or x.shape[1:] != ({c}, {h}, {w}):
        raise ValueError(f"expected images of shape (N, {c}, {h}, {w}), got {{x.shape}}; "
                         f"resize them first (CONTRACT['resize'])")
    x = x.astype(np.float32) / np.float32(255)
    return ((x - MEAN) / STD).astype(np.float32)
'''

_DIGITS = '''

def _bilinear_weights(size_in, size_out):
    """Source indices and weights of torch's bilinear resize, align_corners=False."""
    scale = float(np.float32(size_in / size_out))
    # rounded once, as torch's fused multiply-add does
    src = np.maximum((scale * (np.arange(size_out) + 0.5) - 0.5).astype(np.float32), 0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, size_in - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, (np.float32(1) - w1).astype(np.float32), w1


def from_sklearn_digits(x):
    """scikit-learn's digits (N, 64) or (N, 8, 8), values 0..16 -> uint8 (N, 1, 28, 28): the
    pixels the model was trained on (divide by 16, bilinear 8x8 -> 28x28, round to uint8).
    Then call preprocess() on the result."""
    a = np.asarray(x, np.float32).reshape(-1, 8, 8) / np.float32(16)
    r0, r1, rw0, rw1 = _bilinear_weights(8, 28)
    # torch's order: along the width within each source row, then between the two rows
    cols = a[:, :, r0] * rw0 + a[:, :, r1] * rw1
    out = rw0[:, None] * cols[:, r0, :] + rw1[:, None] * cols[:, r1, :]
    out = np.clip(out, 0, 1) * np.float32(255)
    return np.round(out).astype(np.uint8)[:, None]
'''


def preprocess_source(contract: dict[str, Any]) -> str | None:
    """The ``.preprocess.py`` file for ``contract``: ``preprocess(images)`` (uint8 pixels at the
    model's size -> the normalised float32 batch), ``CONTRACT`` and ``CLASS_NAMES``, and for
    digits ``from_sklearn_digits(x)`` (scikit-learn's 8x8 values -> the 28x28 uint8 pixels).
    None when the contract has no normalisation to write (a dataset pathviz does not know)."""
    if contract.get("mean") is None or not contract.get("input_shape"):
        return None
    c, h, w = contract["input_shape"]
    what = f"a model trained on {contract['dataset']}"
    code = _CODE.format(what=what, c=c, h=h, w=w, contract=contract_json(contract))
    if contract["dataset"] == "digits":
        code += _DIGITS
    return code
