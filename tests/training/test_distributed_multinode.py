"""Scale-out: two torchrun "nodes" (1 process each) meeting through the c10d rendezvous on
loopback (gloo), then a resume of their checkpoint by a job of another world size."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from depthcore.data.features import FeatureDataset
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_model, load_vae
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer
from tests.training.test_trainer import _cfg

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two_nodes(params: Path, objective: str) -> list[subprocess.CompletedProcess]:
    """The multi-node command of docs/operations.md, once per node, both on this machine."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    procs = []
    for node_rank in (0, 1):
        cmd = [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node_rank),
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
            "--rdzv_id", "depthcore-multinode-test",
            "-m", "stages.train", "--params", str(params), "--objective", objective,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _stage_model_trainer(setup: Path, cfg: TrainConfig, objective: str) -> Trainer:
    """A single-process trainer for the model ``stages.train`` builds from ``cfg``."""
    model_cfg = resolve_config(cfg.model)
    _, var = build_model(model_cfg)
    vae = load_vae(cfg.tokenizer, expected=model_cfg.vae).vae
    train = FeatureDataset(setup / "features" / "train.h5", fields=Trainer.fields_for(var))
    out = Path(cfg.out_dir) / objective
    return Trainer(vae, var, model_cfg, cfg, objective, train, None, out)


def test_two_nodes_c10d_then_resume_on_one(feature_setup: Path, tmp_path: Path) -> None:
    objective = "var_tf"
    # bf16 + activation checkpointing: the GPU knobs go through params.yaml to every rank
    cfg = _cfg(
        feature_setup, tmp_path / "models", steps=2, ckpt_every=0, device="cpu",
        precision="bf16", grad_checkpointing=True,
    )  # fmt: skip
    params = tmp_path / "params.yaml"
    train = json.loads(json.dumps(dataclasses.asdict(cfg)))
    params.write_text(yaml.safe_dump({"train": train, "tracking": {"backend": "none"}}))
    for node in _launch_two_nodes(params, objective):
        assert node.returncode == 0, node.stderr[-3000:]
    out = tmp_path / "models" / objective
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 2
    assert metrics["ranks_max_weight_diff"] == 0.0
    two_nodes = load_model(out / "model.safetensors").var.state_dict()

    # the same checkpoint resumed by a single process (world size 2 -> 1) continues from it
    resumed = _stage_model_trainer(feature_setup, dataclasses.replace(cfg, steps=4), objective)
    assert resumed.resume() and resumed.step == 2
    for name, w in resumed.var.state_dict().items():
        torch.testing.assert_close(w, two_nodes[name], rtol=0, atol=0, msg=name)
    assert resumed.opt.state_dict()["state"], "optimizer moments were not restored"
    result = resumed.fit()
    assert result["step"] == 4 and result["loss_ema"] == result["loss_ema"]  # not NaN
