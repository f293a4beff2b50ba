"""The paper profile in docs/model.md (a ``dvc exp run -S`` set) names only real keys."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from stages.params import check_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def _paper_overrides() -> dict[str, object]:
    text = (REPO_ROOT / "docs" / "model.md").read_text()
    block = text.split("<!-- paper-profile -->", 1)[1].split("<!-- /paper-profile -->", 1)[0]
    command = block.replace("```bash", "").replace("```", "").replace("\\\n", " ")
    words = shlex.split(command)
    assert words[:3] == ["dvc", "exp", "run"], words[:3]
    sets = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    return {key: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in sets)}


def test_paper_profile_applies_to_params_yaml(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    overrides = _paper_overrides()
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        assert key in params[section], f"docs/model.md paper profile sets unknown key {dotted}"
        params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    loaded = check_params(path)
    train = loaded["train"]
    assert (train.model, train.batch_size, train.lr, train.schedule) == ("d16", 16, 1e-4, "step")
    assert (train.step_size, train.gamma, train.weight_decay) == (5000, 0.8, 0.01)
    assert loaded["preprocess"].space == "scale_depth"
    assert tuple(loaded["preprocess"].resolution) == (256, 256)
    assert loaded["register"].alignment == "median"
