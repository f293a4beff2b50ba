"""Per-scale AbsRel curves of probe runs (``bench.learning.probe --out``) as one PNG.

python -m bench.learning.plot docs/learning/runs/div80_*.json \\
        --ceiling docs/learning/runs/ceiling_div80.json --png docs/learning/scales.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="probe JSON files")
    ap.add_argument("--png", required=True)
    ap.add_argument("--ceiling", default="", help="bench.learning.ceiling JSON (val panel)")
    args = ap.parse_args()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    refs: dict[str, float] = {}
    for path in args.runs:
        run = json.loads(Path(path).read_text())
        for ax, split in zip(axes, ("train", "val"), strict=True):
            curve = run[f"{split}_abs_rel_K"]
            ax.plot(range(len(curve)), curve, marker="o", label=Path(path).stem)
        refs = run["val_references"]
    if args.ceiling:
        curve = json.loads(Path(args.ceiling).read_text())["ceiling_abs_rel_K"]
        axes[1].plot(range(len(curve)), curve, "k:", label="own tokens (ceiling)")
    for ax, split in zip(axes, ("train", "val"), strict=True):
        if split == "val":
            for name, value in refs.items():
                ax.axhline(value, ls="--", lw=1, color="grey")
                ax.text(0, value, name, fontsize=7, va="bottom", color="grey")
        ax.set_title(f"{split} frames: AbsRel (lsq) after each scale")
        ax.set_xlabel("scale")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AbsRel")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
