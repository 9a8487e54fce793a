"""The video area: paints the newest picture, letterboxed, plus a small stats HUD.

The pipeline draws each picture at the size this widget shows it (``area()``, in device
pixels), so painting is a 1:1 copy, not a scale of a 1080p frame in the GUI thread. The BGR
array is wrapped as a QImage (Format_BGR888) without converting or copying it and kept
referenced for as long as the QImage lives. Nothing here blocks.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

FLASH_MS = 450


def bgr_to_qimage(bgr: np.ndarray) -> QImage:
    """Wrap (not copy) a BGR uint8 HxWx3 array; the caller keeps ``bgr`` alive."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 HxWx3 frame, got {bgr.dtype} {bgr.shape}")
    if not bgr.flags.c_contiguous:  # a copy here would be freed while the QImage still points at it
        raise ValueError("the frame must be C-contiguous; pass np.ascontiguousarray(frame)")
    h, w = bgr.shape[:2]
    return QImage(bgr.data, w, h, bgr.strides[0], QImage.Format.Format_BGR888)


def fit_rect(img_w: int, img_h: int, area: QRect) -> QRect:
    """The largest rectangle with the image's aspect ratio, centred in ``area``."""
    if img_w <= 0 or img_h <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRect()
    scale = min(area.width() / img_w, area.height() / img_h)
    w, h = max(int(img_w * scale), 1), max(int(img_h * scale), 1)
    return QRect(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2, w, h)


class VideoView(QWidget):
    """Letterboxed frame, an optional HUD, a border flash, and a banner for live-signal states."""

    clicked = Signal()
    dropped = Signal(str)  # a file, folder or URL dropped onto the video
    resized = Signal()  # the area pictures should be drawn for has changed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAcceptDrops(True)
        self._array: np.ndarray | None = None
        self._image: QImage | None = None
        self.hud_lines: list[str] = []
        self.show_hud = True
        self.banner = ""  # e.g. "SIGNAL LOST - reconnecting"
        self.placeholder = "No video"
        self.flash_color = QColor(255, 200, 0)
        self._flash = False
        self._flash_timer = QTimer(self)
        self._flash_timer.setSingleShot(True)
        self._flash_timer.timeout.connect(self._end_flash)
        self.frames_shown = 0
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(max(mono.pointSizeF(), 9.0))
        self._mono = mono

    # -- inputs -------------------------------------------------------------------------------
    def set_frame(self, bgr: np.ndarray | None) -> None:
        if bgr is not None and not bgr.flags.c_contiguous:
            bgr = np.ascontiguousarray(
                bgr
            )  # the pipeline's frames already are; a crop would not be
        self._array = bgr  # keeps the pixels alive for as long as the QImage below points at them
        self._image = bgr_to_qimage(bgr) if bgr is not None else None
        if bgr is not None:
            self.frames_shown += 1
        self.update()

    def frame(self) -> np.ndarray | None:
        return self._array

    def area(self) -> tuple[int, int]:
        """The pixels a picture may fill (device pixels, inside the frame margin)."""
        r, dpr = self._frame_area(), self.devicePixelRatioF()
        return max(int(r.width() * dpr), 1), max(int(r.height() * dpr), 1)

    def _frame_area(self) -> QRect:
        return self.rect().adjusted(4, 4, -4, -4)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.resized.emit()

    def set_banner(self, text: str) -> None:
        if text != self.banner:
            self.banner = text
            self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        if self._image is None:
            self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.banner = ""
        self.set_frame(None)

    def flash(self) -> None:
        """Colour the frame border briefly, as commercial detection systems do on a new finding."""
        self._flash = True
        self._flash_timer.start(FLASH_MS)
        self.update()

    @property
    def flashing(self) -> bool:
        return self._flash

    def _end_flash(self) -> None:
        self._flash = False
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.clicked.emit()
        super().mousePressEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls() or event.mimeData().hasText():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        md = event.mimeData()
        url = md.urls()[0] if md.hasUrls() else None
        spec = (url.toLocalFile() or url.toString()) if url is not None else md.text().strip()
        if spec:
            event.acceptProposedAction()
            self.dropped.emit(spec)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(12, 12, 14))
        img = self._image
        if img is None:
            p.setPen(QColor(170, 170, 170))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.3)
            p.setFont(f)
            p.drawText(
                self.rect().adjusted(20, 20, -20, -20),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            p.end()
            return
        dpr = self.devicePixelRatioF()
        target = fit_rect(round(img.width() / dpr), round(img.height() / dpr), self._frame_area())
        if target.width() * dpr != img.width():  # only while the size changes: 1:1 otherwise
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(target, img)
        if self._flash:
            p.setPen(QPen(self.flash_color, 8))
            p.drawRect(target.adjusted(2, 2, -2, -2))
        if self.banner:
            self._paint_banner(p, target)
        if self.show_hud and self.hud_lines:
            self._paint_hud(p, target)
        p.end()

    def _paint_banner(self, p: QPainter, target: QRect) -> None:
        p.fillRect(target, QColor(0, 0, 0, 140))
        f = QFont(self.font())
        f.setPointSizeF(f.pointSizeF() * 2.0)
        f.setBold(True)
        p.setFont(f)
        p.setPen(QColor(255, 90, 70))
        p.drawText(target, Qt.AlignmentFlag.AlignCenter, self.banner)

    def _paint_hud(self, p: QPainter, target: QRect) -> None:
        p.setFont(self._mono)
        fm = p.fontMetrics()
        pad = 6
        w = max(fm.horizontalAdvance(t) for t in self.hud_lines) + 2 * pad
        h = fm.height() * len(self.hud_lines) + 2 * pad
        box = QRectF(target.x() + 8, target.y() + 8, min(w, target.width() - 16), h)
        p.fillRect(box, QColor(0, 0, 0, 150))
        p.setPen(QColor(235, 235, 235))
        for i, line in enumerate(self.hud_lines):
            p.drawText(int(box.x() + pad), int(box.y() + pad + fm.ascent() + i * fm.height()), line)
