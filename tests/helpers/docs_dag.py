"""The stage graph in docs/pipeline.md, kept equal to `dvc dag --md` of dvc.yaml.

`python -m tests.helpers.docs_dag --write` rewrites the block between the markers;
tests/pipeline/test_docs_dag.py fails while the two disagree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "pipeline.md"
BEGIN, END = "<!-- dag:begin -->", "<!-- dag:end -->"


def dvc_dag_markdown(repo: Path = REPO) -> str:
    """`dvc dag --md` of the repository's dvc.yaml (mermaid), without trailing blanks."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    done = subprocess.run(
        [dvc, "dag", "--md"], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def documented_dag(page: Path = PAGE) -> str:
    """The graph block of the page (what a reader sees)."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page}: markers {BEGIN} / {END} missing")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write_dag(page: Path = PAGE, repo: Path = REPO) -> None:
    """Replace the page's graph block with the current `dvc dag --md`."""
    text = page.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{BEGIN}\n{dvc_dag_markdown(repo)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/pipeline.md")
    args = parser.parse_args()
    if args.write:
        write_dag()
    else:
        print(dvc_dag_markdown())


if __name__ == "__main__":
    main()
