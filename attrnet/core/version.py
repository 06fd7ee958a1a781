"""The attrnet version, recorded in every checkpoint and exported model."""
__version__ = "0.1.0"
