"""Fully-adaptive feature sharing (Lu et al., CVPR 2017): SOMP init, task affinity, top-down widening."""
from attrnet.methods.fafs.method import FAFSMethod, save_branch_tree

__all__ = ["FAFSMethod", "save_branch_tree"]
