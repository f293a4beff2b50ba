"""A stand-in for the released DepthART ``model.safetensors``, from the OFFICIAL code.

Reads bulatko/DepthART's ``mde/models/train_models/var_utils`` at a pinned commit out of a
git checkout (nothing of theirs is copied into this repository), builds the official
``DepthART`` class at a small width with the official DepthART settings (``cos_attn:
False``, ``tau: 4``, ``shared_aln: False``, ``rec_loss: True``), fills every parameter with
seeded random values, and writes

- ``depthart_small.safetensors``: its state dict as ``safetensors.torch.save_model`` writes
  it (the official loader, ``init_from_ckpt``, reads the release with
  ``safetensors.torch.load_model``; shared tensors, ``vae_quant_proxy.*`` = the VQ-VAE's
  ``vae_proxy.quantize.*``, are stored once);
- ``depthart_small_io.safetensors``: a fixed image and depth batch and the teacher-forced
  logits of the official masked pass (``DepthVAR.forward_train``, the class DepthART
  extends, loaded with the same weights; eval mode) for them, and the official inference
  (``DepthART.autoregressive_infer_cfg``) made greedy (top-k 1, see
  ``official_depthart.official_greedy``): its tokens per scale and its depth;
- ``depthart_d16.keys.tsv``: key, shape and dtype of the full-size d16 DepthART model's
  file, from a meta-device build (no weights, no download).

``pos_start`` is set to zero: the official teacher-forced pass adds no ``pos_start`` to
the SOS while every DepthART pass (training rollout and inference) adds it, as ours does;
at zero both readings agree, and these logits test everything else.

    git clone https://github.com/bulatko/DepthART /tmp/depthart_official
    python bench/official/make_depthart_fixture.py --repo /tmp/depthart_official \
        --out tests/fixtures/official_depthart
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import save_file, save_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_depthart import (  # noqa: E402
    COMMIT,
    D16,
    SEED,
    SMALL,
    build,
    file_keys,
    import_official,
    official_depth,
    official_greedy,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="a bulatko/DepthART git checkout")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        official = import_official(args.repo, Path(tmp))
        torch.manual_seed(SEED)
        art = build(official, SMALL, "DepthART").eval()
        gen = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for _, p in sorted(art.named_parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            art.pos_start.zero_()  # see the module docstring
        path = args.out / "depthart_small.safetensors"
        save_model(art, str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:  # the shared quantiser is stored once
            assert set(fh.keys()) == set(file_keys(art)), "unexpected shared-tensor naming"
        tf = build(official, SMALL, "DepthVAR").eval()
        missing, unexpected = tf.load_state_dict(art.state_dict(), strict=False)
        assert missing == ["attn_bias_for_masking"] and not unexpected, (missing, unexpected)
        size = SMALL["patch_nums"][-1] * 2 ** (len(SMALL["ch_mult"]) - 1)
        image = torch.rand(SMALL["batch"], 3, size, size, generator=gen) * 2 - 1
        depth = torch.rand(SMALL["batch"], 1, size, size, generator=gen) * 2 - 1
        batch = types.SimpleNamespace(image=image, target=depth)
        with torch.no_grad():
            logits = tf.forward_train(batch).pred
            with official_greedy(official) as chosen:
                greedy_depth = official_depth(art, image)
        tokens = {f"greedy_idx_{si}": idx.contiguous() for si, idx in enumerate(chosen)}
        save_file(
            {
                "image": image,
                "depth": depth,
                "tf_logits": logits.float().contiguous(),
                "greedy_depth": greedy_depth.contiguous(),
                **tokens,
            },  # fmt: skip
            str(args.out / "depthart_small_io.safetensors"),
            metadata={"commit": COMMIT, "seed": str(SEED)},
        )
        linspace = torch.linspace  # its drop-path rule calls .item(): keep that one on CPU
        torch.linspace = functools.partial(linspace, device="cpu")
        try:
            with torch.device("meta"):
                d16 = build(official, D16, "DepthART")
        finally:
            torch.linspace = linspace
        lines = [f"# official DepthART d16 file keys (bulatko/DepthART {COMMIT[:7]})"]
        for k, v in sorted(file_keys(d16).items()):
            lines.append(f"{k}\t{tuple(v.shape)}\t{str(v.dtype).removeprefix('torch.')}")
        (args.out / "depthart_d16.keys.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
