"""`attrnet eval`: metrics of a checkpoint, ONNX file or engine on a dataset split."""
from attrnet.evaluate.evaluation import evaluate

__all__ = ["evaluate"]
