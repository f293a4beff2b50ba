"""Exporting a trained model to run outside this package (ONNX graphs + a manifest)."""
