"""The distillers of the related KD families, chosen by ``KDConfig.method`` (docs/KD_FAMILIES.md).

Each is called like the paper's Distiller: ``loss, metrics = distiller(student, batch, student_out)``,
with ``loss`` already weighted (``KDConfig.weight`` and the method's own term weights).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch

from kdlab.kd.config import KDConfig

FeatMap = Callable[[torch.Tensor], torch.Tensor]

# method -> (module, class); every class takes (teacher, cfg, feat_map)
FAMILIES = {
    "ctc": ("kdlab.kd.inter", "InterKD"),  # final CTC head only: token-probability KD
    "inter": ("kdlab.kd.inter", "InterKD"),  # final and intermediate CTC heads (Inter-KD)
    "layer": ("kdlab.kd.layer", "LayerKD"),  # layer-to-layer via aux non-streaming branches + APC
    "onebest": ("kdlab.kd.transducer", "TransducerKD"),  # KL at the nodes of the teacher's one-best path
    "lattice": ("kdlab.kd.transducer", "TransducerKD"),  # KL at every lattice node
}


def build_family_distiller(cfg: KDConfig, teacher: torch.nn.Module, feat_map: FeatMap | None) -> Any:
    """The distiller of ``cfg.method`` around the frozen ``teacher``."""
    module, name = FAMILIES[cfg.method]
    cls = getattr(importlib.import_module(module), name)
    return cls(teacher.eval().requires_grad_(False), cfg, feat_map)
