"""dsreg-image: ``imagefolder`` (your own images, one folder per class, at any URL) and ``shapes``
(an offline sample generated at prepare time). Importing this package imports neither Pillow nor numpy.
"""

from __future__ import annotations

__all__ = ["IMAGE_FOLDER", "SHAPES"]

IMAGE_FOLDER = "imagefolder"
SHAPES = "shapes"
