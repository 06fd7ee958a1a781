"""The lowest layer: errors, file I/O, schema, input spec, image I/O, Topology and the model card.

Nothing here imports torch at import time, and nothing here imports another attrnet package.
"""
