"""timm's ResNet feature backbones as plain modules: loading a checkpoint needs no timm.

Both default models read pixels through a ``timm.create_model(name, features_only=True)``
ResNet (ResNet-10-T for ``tiny``, ResNet-50 beside ``d16``). Importing timm costs
~1.6 s (it imports torchvision), a third of ``depthart predict``'s first image, although
a checkpoint's weights replace every value timm initialises. :class:`ResNetFeatures`
is the same network written out here: the same modules under the same names
(``conv1``, ``bn1``, ``layer1.0.downsample.1.weight``, ... the state_dict keys, shapes
and buffers of timm's ``FeatureListNet``), the same forward in eval and train mode, and
the two facts callers read from timm's ``feature_info`` (channels and reductions per
returned level), so a checkpoint written with timm's module loads into this one and
back, strictly.

A fresh model gets timm's initialisation, drawn here in timm's order (:func:`seeded`:
the seeded draws of today's training runs, see :mod:`depthcore.models.pixels`), so
building one imports no timm either; a model about to load a checkpoint is built on the
meta device (:func:`build_empty`: no memory, no random draws) and takes the file's tensors.

Only the plain ResNet family members listed in :data:`SPECS` are written out (basic
or bottleneck blocks, the ``''``/``deep``/``deep_tiered`` stems, conv or average-pool
shortcuts, output stride 32); :func:`is_supported` tells callers when to use timm itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: timm's level count for these networks: the stem (stride 2) and four stages (4..32).
NUM_LEVELS = 5


@dataclass(frozen=True)
class ResNetSpec:
    """The arguments timm's registry passes to its ``ResNet`` for one model name."""

    blocks: tuple[str, ...]  # "basic" or "bottleneck", one per stage
    layers: tuple[int, ...]  # blocks per stage
    channels: tuple[int, ...] = (64, 128, 256, 512)  # planes per stage (before expansion)
    stem_width: int = 64
    stem_type: str = ""  # "": one 7x7 conv; "deep": three 3x3; "deep_tiered": thinner first
    avg_down: bool = False  # shortcut = avg-pool + 1x1 conv (else a strided 1x1 conv)

    @property
    def stem_channels(self) -> int:
        """Channels out of the stem (level 0): timm widens a deep stem to 2 x stem_width."""
        return 2 * self.stem_width if self.stem_type.startswith("deep") else 64

    def level_channels(self) -> tuple[int, ...]:
        """Channels of every level 0..4 (a bottleneck stage outputs 4 x its planes)."""
        stages = tuple(c * _EXPANSION[b] for b, c in zip(self.blocks, self.channels, strict=True))
        return (self.stem_channels, *stages)


_EXPANSION = {"basic": 1, "bottleneck": 4}
_B4 = ("basic",) * 4
_N4 = ("bottleneck",) * 4
_T = {"stem_width": 32, "stem_type": "deep_tiered", "avg_down": True}
_D = {"stem_width": 32, "stem_type": "deep", "avg_down": True}

#: The timm model names written out here, with the arguments timm 1.0 registers for them.
SPECS: dict[str, ResNetSpec] = {
    "resnet10t": ResNetSpec(_B4, (1, 1, 1, 1), **_T),
    "resnet14t": ResNetSpec(_N4, (1, 1, 1, 1), **_T),
    "resnet18": ResNetSpec(_B4, (2, 2, 2, 2)),
    "resnet18d": ResNetSpec(_B4, (2, 2, 2, 2), **_D),
    "resnet34": ResNetSpec(_B4, (3, 4, 6, 3)),
    "resnet26": ResNetSpec(_N4, (2, 2, 2, 2)),
    "resnet50": ResNetSpec(_N4, (3, 4, 6, 3)),
    "resnet50d": ResNetSpec(_N4, (3, 4, 6, 3), **_D),
    # timm's 370 k-parameter test network (mixed blocks), the tests' pixel path
    "test_resnet": ResNetSpec(
        ("basic", "basic", "bottleneck", "basic"),
        (1, 1, 1, 1),
        (32, 48, 48, 96),
        stem_width=16,
        stem_type="deep",
        avg_down=True,
    ),  # fmt: skip
}
#: Stride of each level relative to the input (timm's ``feature_info.reduction()``).
REDUCTIONS = (2, 4, 8, 16, 32)


def is_supported(name: str) -> bool:
    """Whether :class:`ResNetFeatures` can stand in for timm's ``name``."""
    return name in SPECS


@dataclass(frozen=True)
class FeatureInfo:
    """What callers read from timm's ``feature_info``, for the returned levels only."""

    levels: tuple[int, ...]
    num_chs: tuple[int, ...]

    def channels(self) -> list[int]:
        return list(self.num_chs)

    def reduction(self) -> list[int]:
        return [REDUCTIONS[i] for i in self.levels]


def feature_info(name: str, out_indices: Sequence[int] | None = None) -> FeatureInfo:
    """Channels and reductions of ``name``'s levels ``out_indices`` without building it."""
    levels = _check_indices(name, out_indices)
    chans = _spec(name).level_channels()
    return FeatureInfo(levels, tuple(chans[i] for i in levels))


def _spec(name: str) -> ResNetSpec:
    if name not in SPECS:
        raise KeyError(
            f"no timm-free ResNet '{name}' (written out: {', '.join(sorted(SPECS))}); "
            f"build it with timm"
        )
    return SPECS[name]


def _check_indices(name: str, out_indices: Sequence[int] | None) -> tuple[int, ...]:
    levels = tuple(range(NUM_LEVELS)) if out_indices is None else tuple(out_indices)
    if (
        not levels
        or any(not 0 <= i < NUM_LEVELS for i in levels)
        or list(levels) != sorted(set(levels))
    ):
        raise ValueError(
            f"{name}: out_indices must be increasing levels in 0..{NUM_LEVELS - 1}, got {levels}"
        )
    return levels


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)


def _shortcut(c_in: int, c_out: int, stride: int, avg_down: bool) -> nn.Sequential:
    """The projection shortcut; its Sequential indices are part of timm's key names."""
    if not avg_down:
        return nn.Sequential(_conv(c_in, c_out, 1, stride), _bn(c_out))
    pool: nn.Module = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
        if stride != 1
        else nn.Identity()
    )
    return nn.Sequential(pool, _conv(c_in, c_out, 1), _bn(c_out))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN (the first strided) plus the shortcut, then ReLU (timm's names)."""

    def __init__(self, c_in: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        out += x if self.downsample is None else self.downsample(x)
        return self.act2(out)


class Bottleneck(nn.Module):
    """1x1 reduce, strided 3x3, 1x1 expand (x4), each with BN, plus the shortcut, ReLU."""

    def __init__(self, c_in: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, planes, 1)
        self.bn1 = _bn(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = _bn(planes * 4)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.act3(out)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


def _stem(spec: ResNetSpec, in_chans: int) -> nn.Module:
    """timm's ``conv1``: one 7x7 stride-2 conv, or three 3x3 (BN-ReLU between) for deep."""
    out = spec.stem_channels
    if not spec.stem_type:
        return nn.Conv2d(in_chans, out, 7, stride=2, padding=3, bias=False)
    if spec.stem_type not in ("deep", "deep_tiered"):
        raise ValueError(f"unknown stem_type '{spec.stem_type}'")
    w = spec.stem_width
    first = 3 * (w // 4) if spec.stem_type == "deep_tiered" else w
    return nn.Sequential(
        _conv(in_chans, first, 3, 2), _bn(first), nn.ReLU(inplace=True),
        _conv(first, w, 3), _bn(w), nn.ReLU(inplace=True),
        _conv(w, out, 3),
    )  # fmt: skip


class ResNetFeatures(nn.Module):
    """timm's ``features_only`` ResNet ``name`` for levels ``out_indices``: a list of maps.

    As timm's FeatureListNet, it holds the network up to the last level asked for (the
    stem ``conv1``/``bn1``/``act1``, then ``maxpool`` and ``layer1..`` only if a stage is
    asked for), runs it in that order and returns the maps of the asked levels, in level
    order. Level 0 is the stem after its ReLU (stride 2); level k the end of stage k.
    """

    def __init__(self, name: str, out_indices: Sequence[int] | None = None, in_chans: int = 3):
        super().__init__()
        spec = _spec(name)
        self.name = name
        self.feature_info = feature_info(name, out_indices)
        self._take = frozenset(self.feature_info.levels)
        last = max(self._take)
        self.conv1 = _stem(spec, in_chans)
        self.bn1 = _bn(spec.stem_channels)
        self.act1 = nn.ReLU(inplace=True)
        self._stages: tuple[str, ...] = ()
        if last == 0:
            return
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in = spec.stem_channels
        for k in range(last):
            block = _BLOCKS[spec.blocks[k]]
            c_out = spec.channels[k] * _EXPANSION[spec.blocks[k]]
            stride = 1 if k == 0 else 2
            layers: list[nn.Module] = []
            for j in range(spec.layers[k]):
                s = stride if j == 0 else 1
                needs = j == 0 and (s != 1 or c_in != c_out)
                shortcut = _shortcut(c_in, c_out, s, spec.avg_down) if needs else None
                layers.append(block(c_in, spec.channels[k], s, shortcut))
                c_in = c_out
            self.add_module(f"layer{k + 1}", nn.Sequential(*layers))
            self._stages += (f"layer{k + 1}",)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act1(self.bn1(self.conv1(x)))
        feats = [x] if 0 in self._take else []
        if not self._stages:
            return feats
        x = self.maxpool(x)
        for level, stage in enumerate(self._stages, start=1):
            x = getattr(self, stage)(x)
            if level in self._take:
                feats.append(x)
        return feats


def build_empty(name: str, out_indices: Sequence[int] | None = None) -> ResNetFeatures:
    """:class:`ResNetFeatures` on the meta device, for a strict ``load_state_dict(assign=True)``.

    No memory, no initialisation and no draw from the global RNG: every value comes from
    the checkpoint (a module used before that fails loudly on its meta tensors).
    """
    with torch.device("meta"):
        return ResNetFeatures(name, out_indices)


def seeded(name: str, out_indices: Sequence[int] | None = None) -> ResNetFeatures:
    """A fresh ``name`` initialised as timm's ``create_model(name, features_only=True)`` is,
    draw for draw, without importing timm (~3.5 s with torchvision and torch._dynamo on a
    2-core AVX2 CPU, once in every training stage).

    timm builds the whole classifier network: every stage, then the 1000-class ``fc``,
    each ``nn.Conv2d``/``nn.Linear`` drawing its default initialisation as it is made.
    It then redraws every convolution, in module order, Kaiming-normal (fan-out, ReLU),
    zeroes the last BatchNorm scale of each residual branch, and keeps the levels asked
    for. The same draws in the same order give the same tensors and leave the global RNG
    where timm's build leaves it (tests/models/test_resnet_t.py checks both against timm
    for every name in :data:`SPECS`).
    """
    full = ResNetFeatures(name)
    nn.Linear(_spec(name).level_channels()[-1], 1000)  # timm's classifier: its draws only
    for module in full.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    for module in full.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            last_bn = module.bn2 if isinstance(module, BasicBlock) else module.bn3
            nn.init.zeros_(last_bn.weight)
    net = build_empty(name, out_indices)
    kept = full.state_dict()
    net.load_state_dict({k: kept[k] for k in net.state_dict()}, strict=True, assign=True)
    return net
