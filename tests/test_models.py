"""Model zoo: golden parameter counts, shapes, narrow members, registry."""

from __future__ import annotations

import pytest
import torch

from pathviz.models import (
    UnknownModelError,
    build_model,
    count_params,
    default_widths,
    param_count,
    registry,
    widths_of,
)

GOLDEN = {
    "lenet5": 61_706,
    "cifar_vgg_11": 9_228_362,
    "cifar_vgg_13": 9_413_066,
    "cifar_vgg_16": 14_724_042,
    "cifar_vgg_19": 20_035_018,
    "cifar_resnet_20": 272_474,
    "cifar_resnet_32": 466_906,
    "cifar_resnet_44": 661_338,
    "cifar_resnet_56": 855_770,
    "cifar_resnet_110": 1_730_714,
    "tv_resnet18": 11_181_642,
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_parameter_counts(name):
    assert count_params(build_model(name)) == GOLDEN[name]


def test_golden_counts_by_formula():
    # LeNet-5: the classic 61,706
    lenet = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 16 * 25 + 120) + (84 * 120 + 84) + 850
    assert lenet == GOLDEN["lenet5"]
    # VGG-16: bias-free 3x3 convs + BN (2 per channel) + linear 512 -> 10
    ws = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    ins = [3] + ws[:-1]
    vgg = sum(9 * i * o + 2 * o for i, o in zip(ins, ws)) + 512 * 10 + 10
    assert vgg == GOLDEN["cifar_vgg_16"]
    # ResNet-20: 3 stages x 3 blocks, projection shortcut (1x1 conv + BN) where it downsamples
    res = 9 * 3 * 16 + 32
    for stage, (cin, c) in enumerate([(16, 16), (16, 32), (32, 64)]):
        for b in range(3):
            i = cin if b == 0 else c
            res += 9 * i * c + 2 * c + 9 * c * c + 2 * c
            if stage > 0 and b == 0:
                res += i * c + 2 * c
    res += 64 * 10 + 10
    assert res == GOLDEN["cifar_resnet_20"]


@pytest.mark.parametrize("name,shape", [("lenet5", (2, 1, 28, 28)),
                                        ("cifar_vgg_16", (2, 3, 32, 32)),
                                        ("cifar_resnet_20", (2, 3, 32, 32))])
def test_forward_shapes_and_options(name, shape):
    model = build_model(name, num_classes=7)
    assert model(torch.randn(*shape)).shape == (2, 7)
    one = build_model(name, in_channels=1, num_classes=3)
    assert one(torch.randn(2, 1, *shape[2:])).shape == (2, 3)
    assert model.pathviz_arch["name"] == name and model.pathviz_arch["num_classes"] == 7


def test_narrow_members_rebuild_from_widths():
    w = default_widths("cifar_resnet_20")
    assert len(w) == 19 and w[:3] == [16, 16, 16]
    narrow = [max(1, x // 2) for x in w]
    narrow[1] = 3  # an inner conv is free to differ from the residual stream
    m = build_model("cifar_resnet_20", widths=narrow)
    assert m.layer1[0].conv1.out_channels == 3 and m.layer1[0].conv2.in_channels == 3
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="identity shortcut needs equal widths"):
        build_model("cifar_resnet_20", widths=[16, 16, 15] + w[3:])
    vgg = build_model("cifar_vgg_16", widths=[8] * 13)
    assert count_params(vgg) < GOLDEN["cifar_vgg_16"] / 100
    lenet = build_model("lenet5", widths=[3, 5, 7, 11])
    assert lenet.fc1.in_features == 7 and lenet.fc2.in_features == 11
    with pytest.raises(ValueError, match="lenet5 takes 4 widths"):
        build_model("lenet5", widths=[1, 2])
    with pytest.raises(ValueError, match=">= 1"):
        build_model("lenet5", widths=[0, 2, 3, 4])


def test_registry_and_unknown_names():
    reg = registry()
    for name in ("lenet5", "cifar_vgg_16", "cifar_resnet_20", "cifar_resnet_32",
                 "cifar_resnet_56", "tv_resnet18"):
        assert name in reg
    assert param_count("cifar_resnet_56") == GOLDEN["cifar_resnet_56"]
    with pytest.raises(UnknownModelError, match="unknown model 'resnet9000'"):
        build_model("resnet9000")
    with pytest.raises(UnknownModelError, match="unknown torchvision model"):
        build_model("tv_not_a_model")
    # any torchvision classifier by name, with a 1-channel stem
    m = build_model("tv_squeezenet1_0", in_channels=1, num_classes=4)
    assert m(torch.randn(1, 1, 64, 64)).shape == (1, 4)


def test_vit_tiny_shape_widths_and_rebuild():
    import torch

    m = build_model("vit_tiny")
    assert count_params(m) == 139_018
    assert widths_of(m) == [4] * 4 + [128] * 4
    assert tuple(m(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)
    narrow = build_model("vit_tiny", num_classes=3, in_channels=3, widths=[1, 2, 3, 4, 5, 6, 7, 8])
    assert [b.attn.num_heads for b in narrow.blocks] == [1, 2, 3, 4]
    assert [b.attn.qkv.out_features for b in narrow.blocks] == [48, 96, 144, 192]  # head dim 16
    assert [b.mlp.fc1.out_features for b in narrow.blocks] == [5, 6, 7, 8]
    assert tuple(narrow(torch.zeros(1, 3, 28, 28)).shape) == (1, 3)
    with pytest.raises(ValueError, match="takes 8 widths"):
        build_model("vit_tiny", widths=[4, 4])
    with pytest.raises(ValueError, match="divisible by its patch"):
        build_model("vit_tiny", input_size=30)
