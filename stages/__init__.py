"""DVC/Prefect pipeline stages: each module parses its params section and calls depthcore."""
