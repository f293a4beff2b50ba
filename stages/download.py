"""Stage ``download``: fetch the needed members of each Hypersim scene zip from the source.

``python -m stages.download --params params.yaml`` reads the ``download`` section
(``source``: ``file://``, ``http(s)://`` or ``s3://``) and fills ``<download.out_dir>/``
with ``<scene>/images/...``, ``<scene>/_detail/metadata_scene.csv``, the dataset-wide
``metadata_*.csv`` and ``download_manifest.json``. Rerunning resumes and verifies.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthcore.data.hypersim.download import DownloadConfig, download
from stages.common import load_section, run_stage, stage_args


def main(argv: Sequence[str] | None = None) -> None:
    args = stage_args(__doc__.splitlines()[0], argv)

    def body() -> None:
        cfg = load_section("download", DownloadConfig, args.params)
        result = download(cfg)
        print(
            f"download: {result.members} members ({result.fetched} fetched, "
            f"{result.bytes_transferred} bytes) -> {result.manifest}"
        )

    run_stage("download", body)


if __name__ == "__main__":
    main()
