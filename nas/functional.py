"""Functions that compiled modules call (imported by the op registry only when compiling, so
``import nas`` stays free of torch). Each is TorchScript- and ONNX-exportable."""
from __future__ import annotations

from typing import List

import torch


def channel_affine(x: torch.Tensor, scale: List[float], shift: List[float]) -> torch.Tensor:
    """``x[:, c] * scale[c] + shift[c]`` for every channel c, written as torchvision's
    GoogLeNet/Inception-v3 ``_transform_input`` writes it (so results are bit-identical)."""
    return torch.cat([torch.unsqueeze(x[:, i], 1) * scale[i] + shift[i]
                      for i in range(len(scale))], 1)
