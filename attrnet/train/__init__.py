"""Training: trainer (AMP, DDP, resume), losses, metrics, thresholds, configuration, evaluation.

Importing this package does not import torch; `attrnet.train.trainer.Trainer`
and `attrnet.train.config.TrainConfig` are the entry points.
"""
