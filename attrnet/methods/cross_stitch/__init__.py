"""Cross-stitch networks (Misra et al., CVPR 2016) as a training method."""
from attrnet.methods.cross_stitch.method import CrossStitchMethod

__all__ = ["CrossStitchMethod"]
