"""The attrnet version, recorded in every checkpoint and exported model."""
__all__ = ["__version__"]

__version__ = "0.1.0"
