"""Figures of the notebooks: pure matplotlib functions of plain data (tensors, lists, traces) returning a
``Figure``; no model calls and no widgets. One module per topic."""
