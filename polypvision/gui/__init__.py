"""The desktop app: the only package that imports PySide6.

A thin view over the headless pipeline (:mod:`polypvision.pipeline.live`): widgets never do
the work themselves; worker threads report back through :mod:`polypvision.gui.bridge`.
"""
