"""Model zoo: LeNet-5, CIFAR VGG/ResNet, and torchvision classifiers by name.

Every native model takes ``num_classes``, ``in_channels`` and ``widths``: the output width of each
prunable layer in model order (the classifier excluded). A compact subnetwork is the same family
with narrower widths, so it rebuilds from ``(name, widths, state_dict)``; every model built here
carries that recipe in ``model.pathviz_arch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import Tensor, nn

from pathviz.groups import gamma_layers

__all__ = ["build_model", "registry", "default_widths", "widths_of", "count_params",
           "ModelEntry", "UnknownModelError"]


class UnknownModelError(ValueError):
    """A model name that is neither in the zoo nor a torchvision classifier."""


def count_params(model: nn.Module) -> int:
    """Number of parameters (not buffers)."""
    return sum(p.numel() for p in model.parameters())


def _check_widths(widths: Sequence[int], n: int, name: str) -> list[int]:
    widths = [int(w) for w in widths]
    if len(widths) != n:
        raise ValueError(f"{name} takes {n} widths, got {len(widths)}: {widths}")
    if any(w < 1 for w in widths):
        raise ValueError(f"{name} widths must all be >= 1, got {widths}")
    return widths


# ---- LeNet-5 -------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 as in the DessiLBI MNIST experiments: conv 6-16-120 (5x5), fc 84, classifier.

    ``conv1`` pads by 2, so 28x28 inputs keep the classic 32x32 geometry (conv3 output 1x1).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 widths: Sequence[int] | None = None, input_size: int = 28) -> None:
        super().__init__()
        c1, c2, c3, f1 = _check_widths(widths or (6, 16, 120, 84), 4, "lenet5")
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.conv3 = nn.Conv2d(c2, c3, 5)
        side = ((input_size // 2 - 4) // 2) - 4
        if side < 1:
            raise ValueError(f"lenet5 needs inputs of at least 28x28, got {input_size}")
        self.fc1 = nn.Linear(c3 * side * side, f1)
        self.fc2 = nn.Linear(f1, num_classes)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        x = self.act(self.conv3(x)).flatten(1)
        return self.fc2(self.act(self.fc1(x)))


# ---- CIFAR VGG -----------------------------------------------------------------------------

_VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


class CifarVGG(nn.Module):
    """VGG with BatchNorm for 32x32 inputs; a single linear classifier on the pooled features."""

    def __init__(self, depth: int = 16, num_classes: int = 10, in_channels: int = 3,
                 widths: Sequence[int] | None = None) -> None:
        super().__init__()
        cfg = _VGG_CFG[depth]
        n = sum(1 for c in cfg if c != "M")
        widths = _check_widths(widths if widths is not None else [c for c in cfg if c != "M"], n,
                               f"cifar_vgg_{depth}")
        layers: list[nn.Module] = []
        it = iter(widths)
        prev = in_channels
        for c in cfg:
            if c == "M":
                # ceil_mode keeps 28x28 inputs alive through five pools (28->14->7->4->2->1)
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            w = next(it)
            layers += [nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True)]
            prev = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


# ---- CIFAR ResNet --------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a 1x1 conv + BN shortcut where the block downsamples."""

    def __init__(self, in_ch: int, mid: int, out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out))
        elif in_ch != out:
            raise ValueError(f"identity shortcut needs equal widths, got {in_ch} -> {out}")
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016, section 4.2), projection shortcuts (option B).

    ``widths`` = [stem, block1.conv1, block1.conv2, block2.conv1, ...]: within a stage every
    block's conv2 width is tied to the stage's residual stream, so those must be equal.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3,
                 widths: Sequence[int] | None = None) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"cifar_resnet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        if widths is None:
            widths = [16] + [w for stage in (16, 32, 64) for _ in range(n) for w in (stage, stage)]
        widths = _check_widths(widths, 1 + 6 * n, f"cifar_resnet_{depth}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        prev, k = widths[0], 1
        stages = []
        for s in range(3):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(prev, widths[k], widths[k + 1], stride))
                prev, k = widths[k + 1], k + 2
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


# ---- ViT -----------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention with per-head widths that can shrink: ``qkv`` maps the stream
    to ``3 * num_heads * head_dim`` (rows [q; k; v], head-major within each), ``proj`` maps the
    heads back to the stream. Unlike ``nn.MultiheadAttention`` the stream width need not be
    ``num_heads * head_dim``, so a head can be removed (its qkv rows and proj columns) and the
    module still runs with ``num_heads - 1``."""

    def __init__(self, dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape  # (batch, tokens, dim)
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, tokens, head_dim)
        attn = (q @ k.transpose(-2, -1) * self.head_dim ** -0.5).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 (stream -> hidden), GELU, fc2 (hidden -> stream): one neuron per hidden unit."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small Vision Transformer: patch embedding (a conv with stride = patch), a class token,
    learned position embeddings, pre-norm blocks, a final LayerNorm and a linear classifier on
    the class token.

    ``widths`` = [heads of block 1, ..., heads of block D, MLP neurons of block 1, ..., of block
    D]: what SLBI's head and neuron groups can remove, so a compact subnetwork rebuilds from
    ``(name, widths, state_dict)``. The stream width ``dim`` and ``head_dim`` stay fixed.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 widths: Sequence[int] | None = None, input_size: int = 28, patch: int = 7,
                 dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128) -> None:
        super().__init__()
        widths = _check_widths(widths or [heads] * depth + [mlp] * depth, 2 * depth, "vit")
        if input_size % patch:
            raise ValueError(f"vit needs an input size divisible by its patch {patch}, got "
                             f"{input_size}")
        self.depth = depth
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (input_size // patch) ** 2 + 1, dim) * .02)
        self.blocks = nn.Sequential(*(Block(dim, widths[i], dim // heads, widths[depth + i])
                                      for i in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (batch, patches, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])

    def widths(self) -> list[int]:
        """The ``widths`` that rebuild this (possibly narrowed) model."""
        return [b.attn.num_heads for b in self.blocks] + [b.mlp.fc1.out_features
                                                          for b in self.blocks]


# ---- torchvision ---------------------------------------------------------------------------


def _torchvision(arch: str, num_classes: int, in_channels: int,
                 widths: Sequence[int] | None) -> nn.Module:
    import torchvision  # lazy: torchvision adds seconds to the import; only the tv_* models need it

    if widths is not None:
        raise ValueError(f"tv_{arch} has no widths parameter; only the native models narrow")
    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError:
        raise UnknownModelError(f"unknown torchvision model {arch!r}") from None
    model = builder(weights=None, num_classes=num_classes)
    if in_channels != 3:
        # swap the stem conv for one with the right input channels, same geometry otherwise
        for parent in model.modules():
            for cname, child in parent.named_children():
                if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                    setattr(parent, cname, nn.Conv2d(
                        in_channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, child.dilation, child.groups, child.bias is not None))
                    return model
    return model


# ---- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """A zoo entry: how to build it and what input it expects by default."""

    name: str
    build: Callable[..., nn.Module]
    description: str
    in_channels: int
    input_size: int


def _entries() -> dict[str, ModelEntry]:
    e = {"lenet5": ModelEntry("lenet5", lambda **kw: LeNet5(**kw),
                              "LeNet-5: conv 6-16-120, fc 84", 1, 28)}
    for d in (11, 13, 16, 19):
        e[f"cifar_vgg_{d}"] = ModelEntry(
            f"cifar_vgg_{d}", lambda d=d, **kw: CifarVGG(depth=d, **kw),
            f"VGG-{d} with BatchNorm for CIFAR", 3, 32)
    for d in (20, 32, 44, 56, 110):
        e[f"cifar_resnet_{d}"] = ModelEntry(
            f"cifar_resnet_{d}", lambda d=d, **kw: CifarResNet(depth=d, **kw),
            f"ResNet-{d} for CIFAR (basic blocks)", 3, 32)
    e["vit_tiny"] = ModelEntry("vit_tiny", lambda **kw: ViT(**kw),
                               "ViT for 28x28: patch 7, width 64, 4 blocks of 4 heads, MLP 128",
                               1, 28)
    for arch in ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "vgg11_bn"):
        e[f"tv_{arch}"] = ModelEntry(
            f"tv_{arch}", lambda arch=arch, **kw: _torchvision(arch, **kw),
            f"torchvision {arch} (random init)", 3, 224)
    return e


_ENTRIES = _entries()


def registry() -> dict[str, ModelEntry]:
    """The listed models by name. Any other torchvision classifier also builds as ``tv_<name>``."""
    return dict(_ENTRIES)


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None,
                widths: Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name; ``in_channels`` defaults to the entry's usual input."""
    entry = _ENTRIES.get(name)
    if entry is None and name.startswith("tv_"):
        entry = ModelEntry(name, lambda **kw: _torchvision(name[3:], **kw), "", 3, 224)
    if entry is None:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of {', '.join(_ENTRIES)} or tv_<torchvision name>")
    if in_channels is None:
        in_channels = entry.in_channels
    model = entry.build(num_classes=num_classes, in_channels=in_channels, widths=widths, **kwargs)
    model.pathviz_arch = {"name": name, "num_classes": num_classes, "in_channels": in_channels,
                          "widths": None if widths is None else [int(w) for w in widths], **kwargs}
    return model


def widths_of(model: nn.Module) -> list[int] | None:
    """The ``widths`` list that rebuilds this (possibly narrowed) native model; None for
    torchvision models, which have no widths parameter."""
    arch = getattr(model, "pathviz_arch", None)
    if arch is None or arch["name"].startswith("tv_"):
        return None
    if isinstance(model, ViT):
        return model.widths()

    # shortcut convs take their width from the residual stream they join
    return [s.shape[0] for s in gamma_layers(model, conv="group", linear="group")
            if ".shortcut." not in s.name]


def default_widths(name: str) -> list[int] | None:
    """The full-width ``widths`` of a native model (None for torchvision models)."""
    return None if name.startswith("tv_") else widths_of(build_model(name))


@cache
def param_count(name: str, num_classes: int = 10) -> int:
    """Parameter count of a zoo model at full width (cached)."""
    return count_params(build_model(name, num_classes=num_classes))
