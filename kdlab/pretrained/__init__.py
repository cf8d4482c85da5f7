"""Shipped pretrained mini models: the on-disk store (:mod:`kdlab.pretrained.store`), its check set
(:mod:`kdlab.pretrained.check`), shipping a reproduce run (:mod:`kdlab.pretrained.ship`) and the
``pretrained`` command.
"""
