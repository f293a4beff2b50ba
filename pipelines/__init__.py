"""Prefect flows and the scheduled deployment; they run the same stage code as dvc."""
