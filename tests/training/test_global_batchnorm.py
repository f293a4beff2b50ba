"""GlobalBatchNorm2d: two gloo ranks normalise as one process with the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from depthcore.training.distributed import GlobalBatchNorm2d, globalise_batch_norms

WORLD = 2


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=gen) * 2 + 1
    g = torch.randn(4, 3, 5, 5, generator=gen)  # d loss / d output
    return x, g


def _bn() -> GlobalBatchNorm2d:
    bn = GlobalBatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, -1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return bn


def _rank(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        x, g = _data()
        half = slice(2 * rank, 2 * rank + 2)
        x_r = x[half].clone().requires_grad_(True)
        bn = _bn().train()
        y = bn(x_r)
        (y * g[half]).sum().backward()
        result = {
            "y": y.detach(), "dx": x_r.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
            "mean": bn.running_mean, "var": bn.running_var,
        }  # fmt: skip
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    x, g = _data()
    x = x.requires_grad_(True)
    bn = _bn().train()  # alone: exactly BatchNorm2d
    y = bn(x)
    (y * g).sum().backward()
    opts = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), **opts)
    torch.testing.assert_close(torch.cat([r["dx"] for r in ranks]), x.grad, **opts)
    # parameter gradients: the sum over ranks (the trainer then averages, as DDP does)
    torch.testing.assert_close(sum(r["dw"] for r in ranks), bn.weight.grad, **opts)
    torch.testing.assert_close(sum(r["db"] for r in ranks), bn.bias.grad, **opts)
    for r in ranks:  # the running statistics agree across ranks and with the one process
        torch.testing.assert_close(r["mean"], bn.running_mean, **opts)
        torch.testing.assert_close(r["var"], bn.running_var, **opts)


def test_globalise_swaps_batchnorm2d_and_keeps_the_state() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        net[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert globalise_batch_norms(net) == 1
    assert type(net[1]) is GlobalBatchNorm2d
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    with pytest.raises(ValueError, match="BatchNorm1d would normalise each rank"):
        globalise_batch_norms(torch.nn.Sequential(torch.nn.BatchNorm1d(4)))
