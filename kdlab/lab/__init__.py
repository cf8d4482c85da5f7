"""The notebooks as a lab and as classroom apps: ``kdlab lab`` (JupyterLab on ``notebooks/``) and
``kdlab demo NN`` (one notebook as a Voilà app: prose, figures and widgets, no code).

:mod:`kdlab.lab.jupyter` finds the notebooks, makes the project's environment the ``python3`` kernel and
builds the server command lines; the browser test (``tests/test_browser.py``) starts its servers with the
same functions.
"""
