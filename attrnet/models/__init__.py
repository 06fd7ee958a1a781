"""Models: backbones cut into stages, and the MultiTaskNet built from a Topology over them."""
from attrnet.models.backbones import ARCHS, backbone
from attrnet.models.net import MultiTaskNet

__all__ = ["ARCHS", "MultiTaskNet", "backbone"]
