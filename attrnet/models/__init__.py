"""Models: Topology, backbones cut into stages, and the MultiTaskNet built from them."""
from attrnet.models.backbones import ARCHS, backbone
from attrnet.models.net import MultiTaskNet, probabilities
from attrnet.models.topology import Branch, Mix, Topology

__all__ = ["ARCHS", "Branch", "Mix", "MultiTaskNet", "Topology", "backbone", "probabilities"]
