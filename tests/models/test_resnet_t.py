"""The written-out ResNet backbones against timm's: keys, buffers, outputs, fresh init.

A checkpoint trained with timm's ``features_only`` module must load into
:class:`~depthcore.models.resnet_t.ResNetFeatures` strictly and compute the same maps,
and a fresh seeded model must keep today's initialisation (timm's draws) bit for bit.
"""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from depthcore.models import create_model, resnet_t
from depthcore.models import pixels as pixels_module
from depthcore.models.pixels import feature_backbone, timm_features, weights_from_checkpoint
from depthcore.models.regression import create_regression
from tests.helpers.fresh import fresh_python

#: (name, out_indices) as the models use them: the tiny pixel path (levels of stride 8
#: and 16), the regression baselines (every level), the tests' pixel path (8, 16, 32).
USED = [
    ("resnet10t", (2, 3)),
    ("resnet10t", None),
    ("test_resnet", (2, 3, 4)),
    ("test_resnet", (0,)),
    ("resnet50", None),
]


def _timm(name: str, out_indices: tuple[int, ...] | None) -> nn.Module:
    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    return timm.create_model(name, features_only=True, pretrained=False, **kwargs)


def _same_weights(name: str, out_indices: tuple[int, ...] | None) -> tuple[nn.Module, nn.Module]:
    """(timm's module, ours) holding equal but separate tensors (BN statistics included)."""
    torch.manual_seed(0)
    theirs = _timm(name, out_indices)
    with torch.no_grad():  # non-trivial BN affine and running statistics
        for module in theirs.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    ours = resnet_t.build_empty(name, out_indices)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()), strict=True, assign=True)
    return theirs, ours


@pytest.mark.parametrize(("name", "out_indices"), USED)
def test_keys_shapes_buffers_and_feature_info_equal_timms(name, out_indices) -> None:
    theirs = _timm(name, out_indices)
    ours = resnet_t.build_empty(name, out_indices)
    assert [(k, v.shape, v.dtype) for k, v in theirs.state_dict().items()] == [
        (k, v.shape, v.dtype) for k, v in ours.state_dict().items()
    ]
    assert [k for k, _ in theirs.named_buffers()] == [k for k, _ in ours.named_buffers()]
    assert [k for k, _ in theirs.named_parameters()] == [k for k, _ in ours.named_parameters()]
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    info = resnet_t.feature_info(name, out_indices)
    assert info.channels() == theirs.feature_info.channels()


@pytest.mark.parametrize(("name", "out_indices"), USED[:3])
def test_outputs_gradients_and_statistics_equal_timms(name, out_indices) -> None:
    theirs, ours = _same_weights(name, out_indices)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for training in (False, True):
        theirs.train(training)
        ours.train(training)
        x_a, x_b = x.clone().requires_grad_(), x.clone().requires_grad_()
        a, b = theirs(x_a), ours(x_b)
        assert len(a) == len(b) == len(theirs.feature_info.channels())
        for fa, fb in zip(a, b, strict=True):
            assert torch.equal(fa, fb)
        sum(f.square().mean() for f in a).backward()
        sum(f.square().mean() for f in b).backward()
        torch.testing.assert_close(x_a.grad, x_b.grad, rtol=0, atol=1e-6)
        grads = {k: p.grad for k, p in ours.named_parameters()}
        for k, p in theirs.named_parameters():
            torch.testing.assert_close(p.grad, grads[k], rtol=0, atol=1e-6, msg=k)
        # training moved the running statistics the same way
        for (k, va), vb in zip(
            theirs.state_dict().items(), ours.state_dict().values(), strict=True
        ):
            assert torch.equal(va, vb), k


def test_an_empty_build_takes_no_memory_no_draws_and_no_timm() -> None:
    before = torch.get_rng_state()
    net = resnet_t.build_empty("resnet10t", (2, 3))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(t.is_meta for t in net.state_dict().values())
    with weights_from_checkpoint():
        inside = feature_backbone("resnet10t", (2, 3))
    assert isinstance(inside, resnet_t.ResNetFeatures) and torch.equal(
        torch.get_rng_state(), before
    )


def test_unsupported_names_and_levels_fail_clearly_or_fall_back_to_timm(monkeypatch) -> None:
    with pytest.raises(KeyError, match="no timm-free ResNet 'convnext_atto'"):
        resnet_t.ResNetFeatures("convnext_atto")
    with pytest.raises(ValueError, match="out_indices must be increasing"):
        resnet_t.feature_info("resnet10t", (3, 2))
    with pytest.raises(ValueError, match="out_indices must be increasing"):
        resnet_t.build_empty("resnet10t", (5,))
    monkeypatch.delitem(resnet_t.SPECS, "test_resnet")
    with weights_from_checkpoint():  # a name not written out is timm's, loading or not
        net = feature_backbone("test_resnet", (2,))
    assert not isinstance(net, resnet_t.ResNetFeatures) and net.feature_info.reduction() == [8]


def _todays_backbone(name: str, out_indices=None) -> nn.Module:
    """The backbone as it was built before the written-out module: timm's, kept."""
    kwargs = {} if out_indices is None else {"out_indices": tuple(out_indices)}
    return timm_features(name, **kwargs)


def _todays_strides(name: str) -> list[int]:
    """The level strides as they were read before the written-out init: a full timm build."""
    return list(timm_features(name).feature_info.reduction())


@pytest.mark.parametrize("name", sorted(resnet_t.SPECS))
@pytest.mark.parametrize("out_indices", [None, (2, 3)], ids=["all", "2-3"])
def test_seeded_is_timms_initialisation_draw_for_draw(name, out_indices) -> None:
    """Every tensor as timm's seeded build makes it, and the global RNG where timm leaves it."""
    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    torch.manual_seed(3)
    theirs = timm_features(name, **kwargs)
    rng_theirs = torch.get_rng_state()
    torch.manual_seed(3)
    ours = resnet_t.seeded(name, out_indices)
    assert torch.equal(torch.get_rng_state(), rng_theirs)
    assert ours.training == theirs.training
    expected = theirs.state_dict()
    assert list(ours.state_dict()) == list(expected)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_a_fresh_model_does_not_import_timm() -> None:
    """Fresh tiny models (the pixel path, the regression baseline) are built without timm."""
    code = (
        "import sys\n"
        "from depthcore.models import create_model\n"
        "from depthcore.models.regression import create_regression\n"
        "create_model('tiny'); create_regression('tiny')\n"
        "print('timm' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    assert fresh_python(code) == ["False", "False"]


def _fresh_state(build) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(11)
    module = build()
    return dict(module.state_dict()), torch.get_rng_state()


@pytest.mark.parametrize(
    "build",
    [lambda: create_model("tiny")[1], lambda: create_regression("tiny")],
    ids=["tiny-var", "tiny-regression"],
)
def test_a_fresh_seeded_model_keeps_todays_initialisation(build, monkeypatch) -> None:
    """Same weights as timm's own modules gave, and the global RNG where they left it."""
    ours, rng_ours = _fresh_state(build)
    monkeypatch.setattr(pixels_module, "feature_backbone", _todays_backbone)
    monkeypatch.setattr(pixels_module, "_level_strides", _todays_strides)
    monkeypatch.setattr("depthcore.models.regression.feature_backbone", _todays_backbone)
    todays, rng_todays = _fresh_state(build)
    assert list(ours) == list(todays)
    for k, v in todays.items():
        assert torch.equal(ours[k], v), k
    assert torch.equal(rng_ours, rng_todays)
