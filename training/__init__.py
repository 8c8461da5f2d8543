"""Retraining from labeled cases and the model registry."""
