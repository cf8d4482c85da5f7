"""Training internals: run folders, runtime (device, DDP, precision), schedule, loop, logging, benchmark.

The public entry points are re-exported by :mod:`kdlab.train`.
"""
