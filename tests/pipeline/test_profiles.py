"""profiles/*.yaml: each paper profile against the official values, typed here from the
official code (github bulatko/DepthART at b2bc093), and applying one with the CLI.

The table below is the facts, not a copy of the profile files: a profile edit that strays
from the official recipe fails here; every key a profile sets must be one the config
dataclasses know (``train.rec_loss``, ``scales.decoding``, the ``d16-depthart`` model
included).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthcore.cli import main as depthart
from depthcore.config import ConfigError
from depthcore.evaluation.protocol import PAPER_BENCHMARKS, PAPER_D1_THRESHOLD, PAPER_INPUT_HW
from depthcore.models import MODEL_CONFIGS
from depthcore.profiles import apply_profile, merge_profile, profile_leaves, read_profile
from stages.params import check_params, section_class

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = REPO_ROOT / "profiles"

#: The official values (config file: key), per profile, as dotted params keys.
COMMON = {
    "preprocess.resolution": [256, 256],  # var_train.yaml dataset_train height/width 256
    "preprocess.space": "scale_depth",  # NormalizerUTSQuant alpha 2, beta -1: 2z/q98 - 1
    "tokenizer.model": "d16",  # vae_local ch 160, z 32, vocab 4096
    "tokenizer.checkpoint": "models/official/vae_ch160v4096z32.pth",
    "train.model": "d16-depthart",  # BlockConfig tau 4, cos_attn False
    "train.init_var": "models/official/var_d16.pth",  # model.ckpt_path: var_d16.pth
    "train.init_pretrain": "",
    "pretrain.steps": 0,  # no RGB pretraining
    "train.loss_weighting": "token",  # VARLoss: 1/L on every token
    "train.lr": 1e-4,  # AdamW lr 1e-4
    "train.betas": [0.9, 0.999],
    "train.weight_decay": 0.01,
    "train.schedule": "step",  # StepLR
    "train.gamma": 0.8,
    "train.warmup_steps": 0,
    "train.grad_clip": 0.0,  # rocket's optimizer step: no clipping
    "train.precision": "fp32",  # accelerator.yaml: no mixed precision
    "evaluate.protocol": "paper",  # eval sets size [256, 256], NYU [8:-8, 8:-8]
    "evaluate.alignments": ["median"],  # AlignerSIL1
    "register.alignment": "median",
}
OFFICIAL: dict[str, dict[str, Any]] = {
    "paper-depthart": COMMON
    | {
        "train.tf_warmup_steps": 0,  # DepthART rolls out from step 0
        "train.rollout": "greedy",  # forward_train: argmax
        "train.rec_loss": True,  # train_depthART.yaml rec_loss: True, VARLoss L 424
        "train.batch_size": 16,
        "train.step_size": 5000,
        "scales.decoding": "sample",  # top_k 900, top_p 0.9, 5 samples
        "evaluate.decoding": "sample",
    },
    "paper-var-tf": COMMON
    | {
        "train.rec_loss": False,  # VARLoss L 680: CE on every token
        "train.batch_size": 32,
        "train.step_size": 10000,
        "scales.decoding": "greedy",  # depth_var.py: argmax
        "evaluate.decoding": "greedy",
        "register.objectives": ["var_tf", "regression"],
    },
}
EPOCHS = {"paper-depthart": 30, "paper-var-tf": 100}  # training_parameters.num_epochs
FRAMES = 32_000  # the train-frame count the profiles' steps assume (stated in their comments)
DROP_PATH = 0.06666666666666667  # var_train.yaml drop_path_rate

PAPER_MODEL = "d16-depthart"


def _params() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_paper_profile_holds_the_official_values(name: str) -> None:
    merged = profile_leaves(merge_profile(_params(), read_profile(PROFILES / f"{name}.yaml")))
    wrong = {k: (merged.get(k), v) for k, v in OFFICIAL[name].items() if merged.get(k) != v}
    assert not wrong, f"{name}: (profile, official) differ: {wrong}"
    steps, batch = merged["train.steps"], merged["train.batch_size"]
    assert steps * batch / FRAMES == EPOCHS[name]
    assert merged["pretrain.model"] == merged["train.model"]
    assert "bad_pixel" in merged["register.rank_metrics"]  # the paper's D1
    assert merged["evaluate.benchmarks.nyu.crop"] in ("border8", None)


def test_the_paper_model_and_protocol_are_the_official_ones() -> None:
    # eval configs: size [256, 256] for NYUv2 / TUM / ETH3D, iBims eval_fullres: true
    assert {k: v.gt_hw for k, v in PAPER_BENCHMARKS.items()} == {
        "nyu": (256, 256), "tum": (256, 256), "eth3d": (256, 256), "ibims": None,
    }  # fmt: skip
    assert PAPER_BENCHMARKS["nyu"].reader_kwargs == {"crop": "border8", "depth_key": "rawDepths"}
    assert PAPER_INPUT_HW == (256, 256) and PAPER_D1_THRESHOLD == 1.25
    var = MODEL_CONFIGS[PAPER_MODEL].var
    assert (var.depth, var.embed_dim, var.num_heads) == (16, 1024, 16)
    assert var.drop_path_rate == pytest.approx(DROP_PATH)
    assert var.attn_l2_norm is False  # cos_attn: False
    assert var.attn_tau == 4


_OFFICIAL_REF = re.compile(r"(config/|mde/|rocket|\.yaml|\.py\b|official: none)")


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_every_changed_key_names_its_official_source(name: str) -> None:
    default = profile_leaves(read_profile(PROFILES / "default.yaml"))
    lines = (PROFILES / f"{name}.yaml").read_text().splitlines()
    for dotted, value in profile_leaves(read_profile(PROFILES / f"{name}.yaml")).items():
        if default.get(dotted) == value:
            continue
        section, key = dotted.split(".", 1)
        start = lines.index(f"{section}:")
        line = next(li for li in lines[start + 1 :] if li.lstrip().startswith(f"{key}:"))
        comment = line.partition(" # ")[2]
        assert _OFFICIAL_REF.search(comment), f"{name}: {dotted} has no official source: {line}"


def test_default_profile_is_the_embedded_default_of_every_profiled_key() -> None:
    default = profile_leaves(read_profile(PROFILES / "default.yaml"))
    params = profile_leaves(_params())
    for name in OFFICIAL:
        missing = set(profile_leaves(read_profile(PROFILES / f"{name}.yaml"))) - set(default)
        assert not missing, f"profiles/default.yaml lacks {sorted(missing)} (set by {name})"
    for dotted, value in default.items():
        if dotted in params:
            assert params[dotted] == value, f"default.yaml {dotted}: {value} != params.yaml"
        else:  # a key params.yaml leaves at its dataclass default
            section, key = dotted.split(".", 1)
            field = section_class(section).__dataclass_fields__[key]
            assert field.default == value, f"default.yaml {dotted}: {value} != {field.default}"


def _repo_copy(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(PROFILES, tmp_path / "profiles")
    return tmp_path / "params.yaml"


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_applying_a_profile_keeps_comments_and_loads(name: str, tmp_path: Path) -> None:
    params_path = _repo_copy(tmp_path)
    before = params_path.read_text()
    assert depthart(["profile", "apply", name, "--params", str(params_path)]) == 0
    after = params_path.read_text()
    applied = yaml.safe_load(after)
    expected = merge_profile(yaml.safe_load(before), read_profile(PROFILES / f"{name}.yaml"))
    assert applied == expected
    for comment in ("# every scale equal", "# the official [8:-8, 8:-8]", "# d16: 16 per GPU"):
        assert comment in after, comment  # params.yaml's own comments survive
    assert "resolution: [256, 256]" in after  # lists stay in flow style
    checkable = tmp_path / "checkable.yaml"
    checkable.write_text(yaml.safe_dump(applied))
    loaded = check_params(checkable)  # every section's dataclass accepts the result
    assert loaded["evaluate"].protocol == "paper"
    assert depthart(["profile", "apply", "default", "--params", str(params_path)]) == 0
    assert yaml.safe_load(params_path.read_text()) == merge_profile(
        yaml.safe_load(before), read_profile(PROFILES / "default.yaml")
    )


def test_profile_errors_name_the_file_and_key(tmp_path: Path, capsys) -> None:
    params_path = _repo_copy(tmp_path)
    (tmp_path / "profiles" / "typo.yaml").write_text("train:\n  learning_rate: 0.1\n")
    before = params_path.read_text()
    assert depthart(["profile", "apply", "typo", "--params", str(params_path)]) == 1
    err = capsys.readouterr().err
    assert "typo.yaml: train.learning_rate is neither a key" in err
    assert depthart(["profile", "apply", "nope", "--params", str(params_path)]) == 1
    assert "profile 'nope'" in capsys.readouterr().err
    assert depthart(["profile", "apply", "--params", str(params_path)]) == 1
    assert "profile apply needs a NAME" in capsys.readouterr().err
    assert params_path.read_text() == before  # nothing half-written
    assert depthart(["profile", "list", "--params", str(params_path)]) == 0
    assert capsys.readouterr().out.split() == ["default", "paper-depthart", "paper-var-tf", "typo"]
    with pytest.raises(ConfigError, match="mapping of params sections"):
        (tmp_path / "bad.yaml").write_text("- 1\n")
        apply_profile(str(tmp_path / "bad.yaml"), params_path)
