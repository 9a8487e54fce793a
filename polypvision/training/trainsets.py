"""Training data from several dataset folders: which frames, decoded once, mixed in batches.

A run names its datasets (``--data`` for polyp datasets with masks, ``--negatives`` for
folders of polyp-free frames) and one split file with a part per dataset. Every dataset's
training frames are decoded and resized once into an on-disk cache (decoding large JPEGs is
slow; a resumed run reads the cache instead), keyed by the files' names, sizes and
modification times, so a changed dataset is never served stale.

Frames of different sizes are stored at one square size, as the app resizes any frame to
the model's square input regardless of aspect; augmentation then crops and resizes from
there. Polyp-free frames get an all-background mask and a fixed share of every batch
(``negative_share``): they are few (a hundred frames of three sequences) next to
over a thousand polyp frames, and a model that has only seen polyp frames learns that every
frame holds a polyp somewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from polypvision import data as pdata
from polypvision.fileio import atomic_open

# stored square side for mixed-size data: above the 256 input, so crops keep detail
CACHE_SIDE = 384


# ------------------------------------------------------------------ decoded arrays, cached


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polypvision" / "train-cache"


def _cache_key(samples: list[pdata.Sample], side: tuple[int, int] | None) -> str:
    h = hashlib.sha256(json.dumps(side).encode())
    for s in samples:
        for p in (s.image, s.mask):
            if p is None:
                h.update(b"<none>")
                continue
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _decode(
    samples: list[pdata.Sample], target: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    if target is None:  # one size for all: keep it (no resampling)
        h, w = pdata.load_pair(samples[0])[0].shape[:2]
        target = (h, w)
    imgs = np.empty((len(samples), *target, 3), np.uint8)
    masks = np.empty((len(samples), *target, 1), np.uint8)
    for i, s in enumerate(samples):
        img, m = pdata.load_pair(s)
        if img.shape[:2] != target:
            img = cv2.resize(img, target[::-1], interpolation=cv2.INTER_AREA)
            m = cv2.resize(
                m.astype(np.uint8), target[::-1], interpolation=cv2.INTER_NEAREST
            ).astype(bool)
        imgs[i] = img[..., ::-1]
        masks[i, ..., 0] = m
    return imgs, masks


def _one_size(samples: list[pdata.Sample]) -> bool:
    import cv2

    sizes = set()
    for s in samples:
        # The header is enough for the size; decoding every frame twice is what the cache avoids.
        img = cv2.imread(str(s.image), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if img is None:
            return False
        sizes.add(img.shape)
        if len(sizes) > 1:
            return False
    return True


def load_arrays(
    samples: list[pdata.Sample], cache: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 images (N,H,W,3) and 0/1 masks (N,H,W,1), all at one size, from the cache when it
    holds them (``cache=None``: the user cache folder).

    Frames of one size are kept as they are; mixed sizes are resized to ``CACHE_SIDE`` square.
    """
    if not samples:
        raise ValueError("no samples to load")
    target = None if _one_size(samples) else (CACHE_SIDE, CACHE_SIDE)
    folder = cache if cache is not None else cache_root()
    path = folder / f"{_cache_key(samples, target)}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return z["images"], z["masks"]
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a cut-off write: decode again
    imgs, masks = _decode(samples, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.savez(f, images=imgs, masks=masks)
    except OSError:
        pass  # no cache (read-only home, full disk): the run goes on, decoding again next time
    return imgs, masks


# ------------------------------------------------------------------ batches


def make_mixed_dataset(
    groups: list[tuple[np.ndarray, np.ndarray, bool]],
    size: int,
    batch: int,
    mean,
    std,
    seed: int,
    crop: int | None = None,
    negative_share: float = 0.15,
    n_outputs: int = 1,
    presence: bool = False,
):
    """Endless augmented batches from several arrays: polyp arrays in proportion to their size,
    polyp-free arrays together ``negative_share`` of the draws (none if there are none).
    ``n_outputs`` > 1 repeats the mask for each output of a deeply supervised model."""
    import tensorflow as tf

    from polypvision.training.augment import augment, normalise

    out = int(crop or size)

    n_masks = n_outputs - 1 if presence else n_outputs

    def _map(i, m):
        a, b = augment(i, m, out, view=out / size)
        targets = (b,) * n_masks
        if presence:  # the frame label after augmentation: a crop may have cut the polyp out
            label = tf.cast(tf.reduce_max(b[..., :1]) > 0.5, tf.float32)
            targets = (*targets, tf.reshape(label, (1,)))
        return normalise(a, mean, std), (targets[0] if len(targets) == 1 else targets)

    streams, weights = [], []
    n_pos = sum(len(x) for x, _, neg in groups if not neg)
    n_neg_groups = sum(1 for _, _, neg in groups if neg)
    for k, (imgs, masks, neg) in enumerate(groups):
        ds = tf.data.Dataset.from_tensor_slices((imgs, masks))
        ds = ds.shuffle(len(imgs), seed=seed + k, reshuffle_each_iteration=True).repeat()
        streams.append(ds)
        if neg:
            weights.append(negative_share / n_neg_groups if n_pos else 1.0 / n_neg_groups)
        else:
            weights.append(
                (1.0 - (negative_share if n_neg_groups else 0.0)) * len(imgs) / max(n_pos, 1)
            )
    mixed = (
        streams[0]
        if len(streams) == 1
        else tf.data.Dataset.sample_from_datasets(streams, weights=weights, seed=seed)
    )
    mixed = mixed.map(_map, num_parallel_calls=2, deterministic=False)
    return mixed.batch(batch, drop_remainder=True).prefetch(2)


# ------------------------------------------------------------------ background crops

# a crop keeps this many stored pixels clear of the polyp's bounding box on every side
CROP_MARGIN = 16
# smallest crop side, as a share of the stored frame's shorter side: below a third, a crop
# blown up to the model's input no longer looks like anything a scope shows
CROP_MIN_SHARE = 1 / 3


def free_square(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """(top, left, side) of the largest square of one frame clear of its polyp's bounding box
    (plus ``CROP_MARGIN``), at a seeded position along the free strip; None when the frame has
    no polyp pixel or the square would be under ``CROP_MIN_SHARE`` of the shorter side."""
    h, w = mask.shape[:2]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None  # a polyp frame without a polyp pixel: nothing to avoid, nothing gained
    y0, y1 = max(int(ys.min()) - CROP_MARGIN, 0), min(int(ys.max()) + CROP_MARGIN, h - 1)
    x0, x1 = max(int(xs.min()) - CROP_MARGIN, 0), min(int(xs.max()) + CROP_MARGIN, w - 1)
    # the four strips around the box: (largest square side that fits in it, which strip)
    free_w, free_h = [x0, w - 1 - x1], [y0, h - 1 - y1]
    options = [
        (min(free_w[0], h), "left"),
        (min(free_w[1], h), "right"),
        (min(free_h[0], w), "top"),
        (min(free_h[1], w), "bottom"),
    ]
    side, where = max(options)
    if side < int(np.ceil(min(h, w) * CROP_MIN_SHARE)):
        return None
    if where in ("left", "right"):
        cx = 0 if where == "left" else w - side
        cy = int(rng.integers(0, h - side + 1))
    else:
        cy = 0 if where == "top" else h - side
        cx = int(rng.integers(0, w - side + 1))
    return cy, cx, side


def background_crops(
    imgs: np.ndarray, masks: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Polyp-free squares cut from polyp frames, resized back to the stored size, as negatives.

    Why: the polyp-free sequences trained on come from one video processor (clean mucosa,
    576p), while polyp frames of other centres carry stool, debris, on-screen text and picture
    insets (Kvasir-SEG's ScopeGuide) *only ever next to a polyp*; a model can learn those as
    polyp cues and light up on a polyp-free frame that shows them. The parts of those very
    frames away from the polyp are true negatives of the polyp frames' own centres.

    Per frame: the largest square clear of the polyp's bounding box (plus ``CROP_MARGIN``),
    kept if its side is at least ``CROP_MIN_SHARE`` of the frame's shorter side; placed at a
    seeded random position along the free strip. Every mask channel is cropped with it (the
    ground truth is all background there by construction; a teacher's map stays as it is).
    """
    import cv2

    n, h, w = masks.shape[:3]
    rng = np.random.default_rng(seed)
    out_i, out_m = [], []
    for k in range(n):
        sq = free_square(masks[k, ..., 0], rng)
        if sq is None:
            continue
        cy, cx, side = sq
        ci = imgs[k, cy : cy + side, cx : cx + side]
        cm = masks[k, cy : cy + side, cx : cx + side]
        out_i.append(cv2.resize(ci, (w, h), interpolation=cv2.INTER_LINEAR))
        m = cv2.resize(cm, (w, h), interpolation=cv2.INTER_NEAREST)
        out_m.append(m.reshape(h, w, masks.shape[3]))
    if not out_i:
        return imgs[:0], masks[:0]
    return np.stack(out_i), np.stack(out_m)


def with_background_crops(
    groups: list[tuple[np.ndarray, np.ndarray, bool]], seed: int
) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """``groups`` plus one polyp-free group of ``background_crops`` per polyp group (same
    centre, same stored size); together with the polyp-free folders they share the run's
    ``negative_share``."""
    extra = []
    for k, (imgs, masks, neg) in enumerate(groups):
        if neg:
            continue
        ci, cm = background_crops(imgs, masks, seed=seed + k)
        if len(ci):
            extra.append((ci, cm, True))
    return groups + extra


# ------------------------------------------------------------------ distillation targets


def teacher_maps(images: np.ndarray, teacher: str | Path, cache: Path | None = None) -> np.ndarray:
    """A teacher model's probability (x 255, uint8, N,H,W,1) on each cached training image.

    The teacher is an exported ONNX model run as the app runs it (its own contract's
    preprocessing), on the whole frame as stored; its map is resized back to the stored size, so
    augmentation crops, flips and rotates it together with the ground truth. Cached by the
    teacher file's hash and the images' content.
    """
    from polypvision.model.session import Segmenter

    h = hashlib.sha256(Path(teacher).read_bytes())
    h.update(
        np.ascontiguousarray(images[:, ::7, ::7]).tobytes()
    )  # a cheap fingerprint of the images
    h.update(str(images.shape).encode())
    folder = cache if cache is not None else cache_root()
    path = folder / f"teacher-{h.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    seg = Segmenter(teacher, provider="cpu", max_batch=8)
    out = np.empty((*images.shape[:3], 1), np.uint8)
    for i in range(0, len(images), 8):
        frames = [
            np.ascontiguousarray(x[..., ::-1]) for x in images[i : i + 8]
        ]  # the app's frames are BGR
        for j, p in enumerate(seg.predict(frames)):
            out[i + j, ..., 0] = np.clip(np.rint(p * 255.0), 0, 255).astype(np.uint8)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.save(f, out)
    except OSError:
        pass
    return out


def training_arrays(samples: list[pdata.Sample], config: dict) -> tuple[np.ndarray, np.ndarray]:
    """A run's arrays for ``samples``: the cached frames and masks, with the teacher's maps as a
    second mask channel when the run distils (``config["teacher"]``)."""
    imgs, masks = load_arrays(samples)
    if config.get("teacher"):
        masks = np.concatenate([masks, teacher_maps(imgs, config["teacher"])], axis=-1)
    return imgs, masks


# ------------------------------------------------------------------ hard negatives


def flagged_by(images: np.ndarray, model: str | Path, batch: int = 8) -> np.ndarray:
    """Which of ``images`` (RGB uint8, N,H,W,3) an exported model outlines anything on: a pixel
    at or over its own threshold, the raw map as the app's first stage sees it."""
    from polypvision.model.session import Segmenter

    seg = Segmenter(model, provider="cpu", max_batch=batch)
    t = seg.contract.output.threshold
    out = np.zeros(len(images), bool)
    for i in range(0, len(images), batch):
        frames = [np.ascontiguousarray(x[..., ::-1]) for x in images[i : i + batch]]
        for j, p in enumerate(seg.predict(frames)):
            out[i + j] = float(p.max()) >= t
    return out


def with_hard_negatives(
    groups: list[tuple[np.ndarray, np.ndarray, bool]], model: str | Path, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray, bool]], dict[str, int]]:
    """``groups`` plus one polyp-free group of what ``model`` (the shipped default) alarms on:
    the training polyp-free frames it outlines something on, and the polyp-free squares of the
    training polyp frames (:func:`background_crops`) it outlines something on. Drawn as a group
    of their own, they get a share of the negative draws on top of their folders' share, so the
    frames and regions that fool today's model are seen more often. Returns the counts too."""
    hard_i, hard_m = [], []
    counts = {"frames_checked": 0, "frames_flagged": 0, "squares_checked": 0, "squares_flagged": 0}
    for k, (imgs, masks, neg) in enumerate(groups):
        if neg:
            cand_i, cand_m, key = imgs, masks, "frames"
        else:
            cand_i, cand_m = background_crops(imgs, masks, seed=seed + k)
            key = "squares"
        if not len(cand_i):
            continue
        flags = flagged_by(cand_i, model)
        counts[f"{key}_checked"] += len(cand_i)
        counts[f"{key}_flagged"] += int(flags.sum())
        if flags.any():
            # groups are stored at different sizes: bring the hard ones to one square size
            side = CACHE_SIDE
            import cv2

            for x, m in zip(cand_i[flags], cand_m[flags]):
                hard_i.append(cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA))
                hard_m.append(np.zeros((side, side, m.shape[-1]), m.dtype))
    if not hard_i:
        return groups, counts
    return groups + [(np.stack(hard_i), np.stack(hard_m), True)], counts
