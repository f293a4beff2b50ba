"""``python -m depthcore.cli``: the ``depthart`` console script (also under torchrun)."""

from depthcore.cli import main

raise SystemExit(main())
