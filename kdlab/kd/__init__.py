"""Knowledge transfer and distillation from an AR teacher to a Mask-CTC student (Section 3.2, eq 7–13).

`KDConfig` (settings and the paper's two stage presets), the losses of eq 7–13 (`kdlab.kd.losses`), the
teacher's live posteriors and cached N-best lists (`kdlab.kd.teacher`), and `build_distiller`, whose
`Distiller` the trainer calls once per batch. Names are imported lazily, so reading a config's `kd:`
section (`kdlab.kd.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KDConfig": "kdlab.kd.config",
    "Distiller": "kdlab.kd.distiller",
    "build_distiller": "kdlab.kd.distiller",
    "enc_frame_kd": "kdlab.kd.losses",
    "enc_seq_kd": "kdlab.kd.losses",
    "dec_frame_kd": "kdlab.kd.losses",
    "dec_seq_kd": "kdlab.kd.losses",
    "nbest_weights": "kdlab.kd.losses",
    "teacher_token_dist": "kdlab.kd.losses",
    "kd_objective": "kdlab.kd.losses",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdlab.kd' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
