"""The desktop app's core without Qt: the session controller and what it drives.

:mod:`~polypvision.viewer.controller` is the session state machine (sources, models, playback,
recording, export, scan, a live signal lost); :mod:`~polypvision.viewer.player` runs one source
through the live pipeline; :mod:`~polypvision.viewer.scan` fills the detection timeline;
:mod:`~polypvision.viewer.export` writes an annotated clip, its log and its report;
:mod:`~polypvision.viewer.alert` decides when a new polyp deserves an alert. Everything here
runs (and is tested) without PySide6; :mod:`polypvision.gui` is the window around it.
"""
