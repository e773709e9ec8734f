"""Evaluation of restoration quality: metrics and the benchmark."""
