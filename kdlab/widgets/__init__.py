"""Notebook widgets: thin ipywidgets wrappers over :mod:`kdlab.explore` (data, searches) and
:mod:`kdlab.viz` (figures). Each widget object exposes its controls, its output and an ``update()`` that
tests call directly after setting a control's value."""
