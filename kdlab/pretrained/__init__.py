"""Shipped pretrained mini models: the on-disk store (:mod:`kdlab.pretrained.store`), its check set
(:mod:`kdlab.pretrained.check`), shipping a reproduce run (:mod:`kdlab.pretrained.ship`) and the
``pretrained`` command.
"""

from kdlab.pretrained.store import (
    DEFAULT_ROOT,
    PretrainedError,
    available,
    card,
    export,
    load,
    load_spec,
    path,
    pretrained_root,
)

__all__ = ["DEFAULT_ROOT", "PretrainedError", "available", "card", "export", "load", "load_spec", "path",
           "pretrained_root"]
