"""Procedural attribute datasets (`attrnet data synth`), written in the real benchmark formats."""
from attrnet.data.synth.generate import (DEFAULT_SIZE, GROUPS_FILE, PRESETS, VISIBILITY_FILE, generate, preset_groups,
                                         read_visibility)
from attrnet.data.synth.visibility import LEVELS

__all__ = ["DEFAULT_SIZE", "GROUPS_FILE", "LEVELS", "PRESETS", "VISIBILITY_FILE", "generate", "preset_groups",
           "read_visibility"]
