"""Golden fixtures from the OFFICIAL VAR code, for tests/models/test_parity.py.

Imports FoundationVision/VAR's ``models`` package from a checkout given on the command
line (nothing of theirs is copied here), builds its VQVAE and VAR for each parity config
with the weights of ``fill_parameters`` (tests/helpers/parity.py, the recipe the parity
test follows too), runs its seeded ``parity_image`` through ``img_to_idxBl``,
``idxBl_to_var_input``, the teacher-forced ``VAR.forward`` (null class, eval mode) and
``idxBl_to_img``, and writes one ``.npz`` per config.

    python bench/parity/make_parity_fixtures.py --var-root /tmp/var_official \
        --var-commit 78b9539... --out tests/fixtures/parity
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.helpers
from tests.helpers.parity import (  # noqa: E402 - the recipe the parity test follows too
    PARITY_CONFIGS,
    fill_parameters,
    parity_image,
    summarise,
)

SEED = 20240617
FULL_MAX_ELEMENTS = 8192  # tensors up to this size are stored whole, larger ones summarised
D16_FIRST_SCALES = 2  # d16 keeps the logits of its first scales whole (1 + 4 positions)


def import_official(var_root: Path) -> types.ModuleType:
    """The official ``models`` package; optional deps it imports but never uses are stubbed."""
    if not (var_root / "models" / "var.py").is_file():
        raise FileNotFoundError(f"{var_root} is not a FoundationVision/VAR checkout")
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:  # only VARHF (hub upload mixin) needs it
        stub = types.ModuleType("huggingface_hub")
        stub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
        sys.modules["huggingface_hub"] = stub
    sys.path.insert(0, str(var_root))
    import models  # their package, from var_root

    return models


def _store(out: dict[str, np.ndarray], name: str, x: torch.Tensor) -> None:
    if x.numel() <= FULL_MAX_ELEMENTS:
        out[name] = x.detach().float().numpy() if x.is_floating_point() else x.numpy()
    else:
        out.update(summarise(name, x))


@torch.no_grad()
def run_config(official: types.ModuleType, name: str, var_commit: str) -> dict[str, np.ndarray]:
    """Every fixture array of one parity config, computed by the official modules."""
    cfg = PARITY_CONFIGS[name]
    v, t = cfg["vae"], cfg["var"]
    vae = official.VQVAE(
        vocab_size=v["vocab_size"],
        z_channels=v["z_channels"],
        ch=v["ch"],
        share_quant_resi=4,
        v_patch_nums=v["v_patch_nums"],
        test_mode=True,
    )
    var = official.VAR(
        vae_local=vae,
        num_classes=t["num_classes"],
        depth=t["depth"],
        embed_dim=t["embed_dim"],
        num_heads=t["num_heads"],
        drop_path_rate=0.0,
        attn_l2_norm=True,
        patch_nums=v["v_patch_nums"],
        flash_if_available=False,
        fused_if_available=False,
    )
    filled = fill_parameters(vae, SEED) + fill_parameters(var, SEED)
    vae.eval()
    var.eval()

    rgb_B3HW = parity_image(cfg["batch"], cfg["image_size"], SEED)
    idx_Bl_list = vae.img_to_idxBl(rgb_B3HW)
    var_input_BlCv = vae.quantize.idxBl_to_var_input(idx_Bl_list)
    label_B = torch.full((cfg["batch"],), t["num_classes"], dtype=torch.long)
    var.cond_drop_rate = 0.0
    logits_BLV = var(label_B, var_input_BlCv)
    rec_B3HW = vae.idxBl_to_img(idx_Bl_list, same_shape=True, last_one=True)

    out: dict[str, np.ndarray] = {
        "image.stats": summarise("image", rgb_B3HW)["image.stats"],
        "idx_BL": torch.cat(idx_Bl_list, dim=1).to(torch.int32).numpy(),
    }
    _store(out, "var_input", var_input_BlCv)
    _store(out, "logits", logits_BLV)
    _store(out, "rec", rec_B3HW)
    if "logits" not in out:
        first = sum(pn * pn for pn in v["v_patch_nums"][:D16_FIRST_SCALES])
        out["logits.first"] = logits_BLV[:, :first].numpy()
        out["logits.max_BL"] = logits_BLV.amax(dim=-1).numpy()
    meta = {
        "config": name,
        "seed": SEED,
        "var_commit": var_commit,
        "torch": torch.__version__,
        "parameters": len(filled),
        "num_params": sum(p.numel() for m in (vae, var) for p in m.parameters()),
    }
    out["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    return out


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed npz written to a temp name then renamed (no torn fixture on failure)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = path.with_suffix(".npz.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-root", type=Path, required=True, help="official VAR checkout")
    parser.add_argument("--var-commit", required=True, help="the checkout's commit (recorded)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/parity"))
    parser.add_argument("--configs", nargs="+", default=sorted(PARITY_CONFIGS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    official = import_official(args.var_root.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        start = time.perf_counter()
        arrays = run_config(official, name, args.var_commit)
        write_npz(args.out / f"{name}.npz", arrays)
        size_kib = (args.out / f"{name}.npz").stat().st_size / 1024
        print(f"{name}: {time.perf_counter() - start:.1f} s, {size_kib:.0f} KiB")


if __name__ == "__main__":
    main()
