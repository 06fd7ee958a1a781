"""Training: the loop (`trainer`) and its parts, losses, loss weighting, metrics, thresholds, checkpoints.

`trainer.Trainer(config, method)` orchestrates one run over `splits`,
`model_setup`, `optim`, `amp`, `epoch`, `validation`, `selection`, `outputs`,
`resume` and `resume_config`; methods plug in through `method.Method` and its `TrainContext`.
Train with a method by name through `attrnet.methods.train(config)`.
Importing this package does not import torch.
"""
