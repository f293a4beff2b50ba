"""DepthART: generative monocular depth estimation with a next-scale autoregressive transformer.

The package is a plain library: importing it starts nothing and pulls in no
orchestration tool (DVC, Prefect). MLflow is imported lazily, only inside the
functions of :mod:`depthcore.run_logger` and :mod:`depthcore.tracking` that need it.
"""

__version__ = "0.1.0"
