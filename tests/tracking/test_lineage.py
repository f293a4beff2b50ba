"""Lineage and model cards against a real MLflow sqlite store and a dvc.lock written by DVC.

The lock comes from a small real pipeline (features <- processed shards, train@depthart,
evaluate@depthart, the stage names of dvc.yaml) run by ``dvc repro`` twice: once, then
after one training scene changed. A register round on each lock must record different
training data hashes on the two versions and the same evaluation data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from depthcore.cli import main as depthart
from depthcore.data.domain import DEMO_WARNING, EMBEDDED, trained_on
from depthcore.evaluation.comparison import paired_bootstrap_ci, read_per_image
from depthcore.models.checkpoint import META_KEY
from depthcore.run_inputs import (
    EVALUATION,
    TRAINING,
    TRAINING_SOURCE,
    log_training_inputs,
)
from depthcore.run_logger import MlflowLogger
from depthcore.tracking import registry
from depthcore.tracking.lineage import lineage_text, read_lineage
from depthcore.tracking.model_card import LICENCES, CardFacts, model_card
from depthcore.tracking.registry import RegisterConfig
from tests.helpers.registry import metrics_payload, new_model, references, tiny_pyfunc

DVC_YAML = """\
stages:
  features:
    cmd: python -c "import shutil; shutil.copytree('data/processed', 'data/features')"
    deps: [data/processed]
    outs: [data/features]
  train:
    foreach: [depthart]
    do:
      cmd: python -c "import os; os.makedirs('models/${item}', exist_ok=True);
        open('models/${item}/model.bin', 'w').write(str(os.listdir('data/features')))"
      deps: [data/features, stages/train.py]
      outs: ['models/${item}/model.bin']
  evaluate:
    foreach: [depthart]
    do:
      cmd: python -c "import os; os.makedirs('outputs/${item}', exist_ok=True);
        open('outputs/${item}/metrics.json', 'w').write('{}')"
      deps: [data/benchmarks, 'models/${item}/model.bin']
      outs: ['outputs/${item}/metrics.json']
  evaluate_reference:
    foreach: [constant_plane]
    do:
      cmd: python -c "open('reference_${item}.json', 'w').write('{}')"
      deps: [data/benchmarks]
      outs: ['reference_${item}.json']
"""
SCENES = ("ai_100_001", "ai_100_002", "ai_101_001")


@pytest.fixture(scope="module")
def locks(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """dvc.lock of a real ``dvc repro``, before and after one training scene changed."""
    dvc = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    assert dvc, "dvc is installed with the project"
    repo = tmp_path_factory.mktemp("dvcrepo")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True, env=env)
    for scene in SCENES:
        (repo / "data/processed").mkdir(parents=True, exist_ok=True)
        (repo / "data/processed" / f"{scene}.txt").write_text(f"frames of {scene}\n")
    (repo / "data/benchmarks").mkdir()
    (repo / "data/benchmarks/nyu.txt").write_text("benchmark frames\n")
    (repo / "stages").mkdir()
    (repo / "stages/train.py").write_text("# code: not data\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    texts = []
    for _ in range(2):
        subprocess.run([dvc, "repro", "-q"], cwd=repo, check=True, env=env)
        texts.append((repo / "dvc.lock").read_text())
        (repo / "data/processed/ai_100_002.txt").write_text("a re-rendered scene\n")
    return texts[0], texts[1]


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import mlflow

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    yield registry.connect(uri)
    mlflow.set_tracking_uri(None)


def _checkpoint(path: Path, keys: list[str], steps: int) -> None:
    """A safetensors file with the meta a trainer writes (the card reads the header only)."""
    meta = {"space": "sqrt_disparity", "image_size": 64, "steps": steps}
    meta["trained_on"] = trained_on(keys)
    save_file({"w": torch.zeros(1)}, str(path), metadata={META_KEY: json.dumps(meta)})


def _round(client, tmp_path: Path, lock: str, tag: str, abs_rel: float):
    (tmp_path / "dvc.lock").write_text(lock)
    model = new_model(client, tmp_path, "depthart", tag, metrics_payload(abs_rel, 0.7))
    client.log_param(model.run_id, "train_frames", "6")
    keys = [f"{s}/cam_00/{i}" for s in SCENES for i in range(2)]
    _checkpoint(model.checkpoint, keys, steps=len(tag) * int(abs_rel * 100))
    cfg = RegisterConfig(objectives=("depthart",), bootstrap_resamples=200)
    result = registry.run_round(client, cfg, [model], references(tmp_path), tiny_pyfunc)
    return model, result


def test_lock_hashes_are_read_per_stage(locks) -> None:
    before, after = (read_lock_text(t) for t in locks)
    deps = {d["path"]: d["md5"] for d in before["train@depthart"]["deps"]}
    assert set(deps) == {"data/features", "stages/train.py"}
    changed = {d["path"]: d["md5"] for d in after["train@depthart"]["deps"]}
    assert changed["data/features"] != deps["data/features"]


def read_lock_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)["stages"]


def test_one_changed_scene_changes_the_next_versions_data_hash(
    client, tmp_path, locks, capsys
) -> None:
    m1, r1 = _round(client, tmp_path, locks[0], "r1", 0.20)
    m2, r2 = _round(client, tmp_path, locks[1], "r2", 0.10)
    v1, v2 = r1.new_versions["depthart"], r2.new_versions["depthart"]
    assert (v1, v2) == ("depthart-tiny/v1", "depthart-tiny/v2")
    l1 = read_lineage(client, "models:/depthart-tiny/1")
    l2 = read_lineage(client, "models:/depthart-tiny/2")
    assert l1.data_hash != l2.data_hash and "unknown" not in (l1.data_hash, l2.data_hash)
    by = {(r.context, r.name): r.digest for r in l1.data}
    by2 = {(r.context, r.name): r.digest for r in l2.data}
    assert set(by) == {
        (TRAINING, "data/features"),
        (TRAINING_SOURCE, "data/processed"),
        (EVALUATION, "data/benchmarks"),
        (EVALUATION, "models/depthart/model.bin"),
    }
    assert by[(TRAINING, "data/features")] != by2[(TRAINING, "data/features")]
    assert by[(TRAINING_SOURCE, "data/processed")] != by2[(TRAINING_SOURCE, "data/processed")]
    assert by[(EVALUATION, "data/benchmarks")] == by2[(EVALUATION, "data/benchmarks")]
    lock = read_lock_text(locks[1])
    assert by2[(TRAINING, "data/features")] == lock["train@depthart"]["deps"][0]["md5"]
    # the version links to them: tag, description, and the champion resolves to v2
    mv2 = client.get_model_version("depthart-tiny", "2")
    assert mv2.tags["data_version"] == l2.data_hash and l2.data_hash in mv2.description
    assert client.get_model_version("depthart-tiny", "1").tags["data_version"] == l1.data_hash
    assert "model_card.md" in mv2.description and l2.register_run == r2.register_run_id
    champion = read_lineage(client, "models:/depthart@champion")
    assert champion.source == v2 and champion.data_hash == l2.data_hash
    exp_id = client.get_experiment_by_name("depthart").experiment_id
    ref_run = client.search_runs([exp_id], "tags.reference = 'constant_plane'")[0]
    (ref_input,) = ref_run.inputs.dataset_inputs  # a reference predictor's evaluation run
    assert (ref_input.dataset.name, ref_input.dataset.digest) == (
        "data/benchmarks",
        by[(EVALUATION, "data/benchmarks")],
    )
    product = client.get_model_version_by_alias("depthart", "champion")
    assert "model_card.md" in product.description and l2.data_hash in product.description
    assert product.tags["data_version"] == l2.data_hash
    assert champion.run_id == m2.run_id and champion.git_commit == "0123456789abcdef"
    text = lineage_text(champion)
    for fact in (l2.data_hash, m2.run_id, "0123456789abcdef", champion.params_hash):
        assert fact in text
    # the same, one call on the command line
    capsys.readouterr()
    uri = client.tracking_uri
    assert depthart(["lineage", "models:/depthart@champion", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert l2.data_hash in out and "data/features" in out and "data/benchmarks" in out
    assert depthart(["lineage", "models:/nothing@champion", "--tracking-uri", uri]) == 1


def test_a_training_run_logs_its_inputs_from_the_lock(client, tmp_path, locks) -> None:
    (tmp_path / "dvc.lock").write_text(locks[0])
    logger = MlflowLogger(client.tracking_uri, "depthart", run_name="train-x")
    items = log_training_inputs(logger, ["data/features", "models/tokenizer/none", ""])
    logger.close()
    assert [(i.path, i.stage) for i in items] == [
        ("data/features", "features"), ("data/processed", "features")
    ]  # fmt: skip
    logged = client.get_run(logger.run_id).inputs.dataset_inputs
    assert {d.dataset.name: d.dataset.digest for d in logged} == {i.path: i.md5 for i in items}


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def _numbers(value) -> set[str]:
    """Every number a record holds, in the forms a card may print it."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out |= _numbers(k) | _numbers(v)
    elif isinstance(value, list | tuple):
        for v in value:
            out |= _numbers(v)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int | float):
        out |= {str(value), f"{value:.4f}", f"{value:.3f}", f"{value:g}", f"{value * 100:.0f}"}
    else:
        out |= set(NUMBER.findall(str(value)))
    return out


def _meta(path: Path) -> dict:
    """The checkpoint's recorded meta, read straight from its safetensors header."""
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()[META_KEY])


def test_every_number_in_the_card_is_a_recorded_fact(client, tmp_path, locks) -> None:
    import mlflow

    model, result = _round(client, tmp_path, locks[0], "r1", 0.20)
    local = mlflow.artifacts.download_artifacts(
        run_id=model.run_id, tracking_uri=client.tracking_uri
    )
    card = (Path(local) / "model_card.md").read_text()
    facts = json.loads((Path(local) / "model_card_facts.json").read_text())
    run = client.get_run(model.run_id)
    cfg = RegisterConfig(bootstrap_resamples=200)
    records = [run.data.params, model.metrics, read_lock_text(locks[0]), result.ranks,
               len(result.ranks), cfg.ci_level, cfg.bootstrap_resamples, list(LICENCES),
               _meta(model.checkpoint), facts["benchmarks"]]  # fmt: skip
    allowed = set().union(*(_numbers(r) for r in records))
    found = NUMBER.findall(card)
    assert found and not [n for n in found if n not in allowed], (
        [n for n in found if n not in allowed],
        card,
    )
    # the intervals are the bootstrap of the per-image records, around the recorded mean
    rows = read_per_image(model.per_image, "lsq")
    for bench in facts["benchmarks"]:
        for iv in bench["intervals"]:
            values = [r[iv["metric"]] for (b, _), r in rows.items() if b == bench["name"]]
            ci = paired_bootstrap_ci(values, np.zeros(len(values)), resamples=200)
            assert (iv["lo"], iv["hi"]) == (ci.lo, ci.hi) and iv["lo"] <= iv["mean"] <= iv["hi"]
            assert iv["mean"] == model.metrics[bench["name"]]["lsq"][iv["metric"]]
    assert "not measured" in card and "MIT" in card and "CC BY-SA 3.0" in card
    assert "affine-invariant" in card and "not metric" in card
    assert DEMO_WARNING in card and facts["trained_on"]["sources"] == {
        EMBEDDED: {"scenes": 3, "frames": 6}
    }  # fmt: skip


def test_the_card_says_not_measured_and_not_recorded_when_facts_are_missing() -> None:
    facts = CardFacts(
        label="regression-tiny/v1", objective="regression", model="tiny", space="depth",
        image_size=None, trained_on=None, data=(), train_frames=None, git_commit="unknown",
        params_hash="p", params={}, alignment="lsq", rank_metrics=("abs_rel",), ci_level=0.9,
        resamples=10, decoding="not recorded", benchmarks=(), rank=2.0, num_candidates=4,
        verdict="Not champion.",
    )  # fmt: skip
    card = model_card(facts)
    assert "Latency and memory: not measured" in card and "not recorded in the checkpoint" in card
    assert DEMO_WARNING not in card and "regression baseline" in card
    measured = model_card(dataclasses.replace(facts, performance={"predict_latency_ms": 12.5}))
    assert "predict_latency_ms: 12.5" in measured and "not measured" not in measured
    own = {"frames": 5, "sources": {"folder:my_rooms": {"scenes": 1, "frames": 5}}}
    assert "own folder my_rooms (1 scenes, 5 frames)" in model_card(
        dataclasses.replace(facts, trained_on=own)
    )
