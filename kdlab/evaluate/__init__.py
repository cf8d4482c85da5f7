"""Evaluation: error rates (Table 1's CER/WER), result files, evaluation sets, and the ``decode``,
``align`` and ``bench`` commands that run :mod:`kdlab.search` over a checkpoint.
"""
