"""After training, everything that talks to MLflow: run records, the registry, the pyfunc
model. mlflow is imported inside functions only. The run logger that training writes
through is a foundation module, :mod:`depthcore.run_logger`."""
