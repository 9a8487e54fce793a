"""A small variable-frame-rate H.264 clip for tests: frame i is stamped i and has its own pts."""

from __future__ import annotations

from pathlib import Path

# 20 frames 20 ms apart, then 20 frames 100 ms apart: frame k is not at k / nominal fps
VFR_PTS_MS = [i * 20 for i in range(20)] + [400 + i * 100 for i in range(20)]


def write_vfr_clip(path: Path, pts_ms: list[int], w: int = 160, h: int = 120, gop: int = 8) -> Path:
    """An H.264 MP4 whose frames carry the given (irregular) timestamps, frame i stamped i."""
    from fractions import Fraction

    import av

    from polypvision.sources.synthetic import SyntheticClip

    clip = SyntheticClip(w, h, stamp=True)
    c = av.open(str(path), "w")
    st = c.add_stream("libx264", rate=25)
    st.width, st.height, st.pix_fmt = w, h, "yuv420p"
    st.options = {"crf": "20", "preset": "ultrafast", "g": str(gop)}
    st.codec_context.time_base = Fraction(1, 1000)
    for i, p in enumerate(pts_ms):
        f = av.VideoFrame.from_ndarray(clip.frame(i), format="bgr24")
        f.pts = p
        for pk in st.encode(f):
            c.mux(pk)
    for pk in st.encode():
        c.mux(pk)
    c.close()
    return path
