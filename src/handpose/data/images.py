"""Images at the model's input size: the one resize, shared by the split stage and the renderer's
in-memory hands for pretraining, so both see the same pixels."""

from __future__ import annotations

import cv2
import numpy as np


def to_input_size(rgb: np.ndarray, size: int) -> np.ndarray:
    """A decoded image at the model's input size (area averaging: no aliasing when shrinking)."""
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
