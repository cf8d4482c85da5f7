"""Training internals: run folders, runtime (device, DDP, precision), schedule, loop, logging, benchmark.

The entry point is :func:`kdlab.training.fit.fit`; the ``train`` and ``average`` commands live here.
"""
