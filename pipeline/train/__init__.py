"""Training of the tile classifiers on real clean tissue with simulated ink.

``inkremove train classifier --task ink|background`` runs ``train_classifier``; see
``pipeline.train.sources`` for which images train, validate and stay held out.
"""

from pipeline.train.loop import TrainResult, TrainSettings, train_classifier

__all__ = ["TrainResult", "TrainSettings", "train_classifier"]
