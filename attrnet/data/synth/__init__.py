"""Procedural attribute datasets (`attrnet data synth`), written in the real benchmark formats."""
from attrnet.data.synth.generate import DEFAULT_SIZE, GROUPS_FILE, PRESETS, generate

__all__ = ["DEFAULT_SIZE", "GROUPS_FILE", "PRESETS", "generate"]
