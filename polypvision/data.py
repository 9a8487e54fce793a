"""Segmentation datasets from folders, and a split that cannot leak.

Used by training and by ``polypvision evaluate``, so it needs only numpy and OpenCV
(no TensorFlow). Two layouts are read:

* CVC-ClinicDB: ``images/<n>.png``, ``masks/<n>.png`` and optionally ``sequences.csv``
  (``frame,sequence``) naming the video sequence each frame was cut from;
* Kvasir-SEG and similar: ``images/`` and ``masks/`` with matching file stems
  (jpg, png, tif, bmp), no sequence information.

Frames of one video sequence are near-duplicates, so a random per-image split puts the
same polyp on both sides and inflates every metric. With sequence information whole
sequences go to train, validation or test; without it the split is per image and is
flagged ``"leaky": true`` so every report can say so. The split is written once to a
JSON file and reused by every later command, so training, export and evaluation always
agree on the test set: the shipped ``polypvision/splits`` files when they cover the dataset,
else ``<dataset>.json`` in the user's data folder (:func:`polypvision.paths.new_splits_dir`), or
the ``--split-file`` given. Shipped split files are read, never written through the package (in a
checkout, ``--split-file splits/NAME.json`` writes a split to commit).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import paths
from polypvision.errors import UserError
from polypvision.fileio import write_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_THRESHOLD = 127
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
SPLITS_DIR = paths.shipped_splits_dir()  # read-only; new splits go to paths.new_splits_dir()
DEFAULT_SPLIT_FILE = SPLITS_DIR / "two-centre.json"
MULTI_SCHEMA = "polypvision-split/2"


class DatasetError(UserError):
    """A dataset folder is missing, incomplete or holds unreadable files."""


class SplitError(UserError):
    """A split file does not match the dataset it is used with."""


@dataclass(frozen=True)
class Sample:
    """One image and its mask; ``mask`` is None for a polyp-free frame (every pixel background),
    ``sequence`` is None when the dataset has no sequence info."""

    stem: str
    image: Path
    mask: Path | None
    sequence: str | None = None


@dataclass
class Dataset:
    """The pairs found in a dataset folder, in natural order of their stems."""

    root: Path
    name: str
    layout: str
    samples: list[Sample] = field(default_factory=list)
    kind: str = "polyp"  # "polyp": every frame has a mask; "negative": polyp-free frames, no masks
    # a published test list shipped with the data (test-*.txt)
    test_ids: tuple[str, ...] | None = None
    test_ids_file: str | None = None

    @property
    def negative(self) -> bool:
        return self.kind == "negative"

    @property
    def has_sequences(self) -> bool:
        return all(s.sequence is not None for s in self.samples)

    def by_stem(self) -> dict[str, Sample]:
        return {s.stem: s for s in self.samples}


@dataclass(frozen=True)
class Split:
    """Which stems are train / val / test, and whether the split can leak."""

    dataset: str
    seed: int
    leaky: bool
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    sequences: dict[str, tuple[str, ...]] = field(default_factory=dict)
    path: Path | None = None
    method: str | None = None

    def stems(self, which: str) -> tuple[str, ...]:
        if which not in SPLIT_NAMES and which != "all":
            raise SplitError(f"unknown split {which!r}; use one of train, val, test, all")
        if which == "all":
            return self.train + self.val + self.test
        return getattr(self, which)

    def to_dict(self) -> dict:
        doc: dict = {
            "dataset": self.dataset,
            "seed": self.seed,
            "leaky": self.leaky,
            "method": self.method
            or (
                "per-image (leaky: frames of one sequence on several sides)"
                if self.leaky
                else "whole sequences"
            ),
            "counts": {k: len(getattr(self, k)) for k in SPLIT_NAMES},
        }
        if self.sequences:
            doc["sequences"] = {k: list(v) for k, v in self.sequences.items()}
        for k in SPLIT_NAMES:
            doc[k] = list(getattr(self, k))
        return doc


def natural_key(text: str) -> list:
    """Sort key that puts ``2`` before ``10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _images_in(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in found:
                raise DatasetError(
                    f"{folder}: two files share the stem '{p.stem}' ({found[p.stem].name}, "
                    f"{p.name}); keep one"
                )
            found[p.stem] = p
    return found


def _name_list(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names, key=natural_key)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_sequences(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}); fix or remove it") from None
    if not rows or not {"frame", "sequence"} <= set(rows[0]):
        raise DatasetError(
            f"{path}: expected a CSV with columns 'frame,sequence'; fix or remove it"
        )
    out: dict[str, str] = {}
    for row in rows:
        frame, seq = (row.get("frame") or "").strip(), (row.get("sequence") or "").strip()
        if not frame or not seq:
            raise DatasetError(
                f"{path}: a row has an empty frame or sequence ({row}); fix or remove it"
            )
        out[frame] = seq
    return out


def discover(root: str | Path, negative: bool = False) -> Dataset:
    """Pair images with masks under ``root``; raise ``DatasetError`` naming what is wrong.

    ``negative``: a folder of polyp-free frames (``images/`` only; a ``masks/`` folder, if
    any, is ignored): every pixel of every frame is background. Their sequences come from
    ``sequences.csv`` or, failing that, from the file stems (``seq3_img12`` -> ``seq3``: the
    stem up to its last underscore, PolypGen's naming), so they can be split by sequence.
    """
    root = Path(root)
    what = (
        "--negatives pointing at a folder with images/"
        if negative
        else "--data pointing at a folder with images/ and masks/"
    )
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; pass {what}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; pass {what}")
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir,) if negative else (img_dir, mask_dir):
        if not d.is_dir():
            need = "images/" if negative else "images/ and masks/ with matching file names"
            raise DatasetError(f"{root}: no '{d.name}/' folder; a dataset needs {need}")
    images = _images_in(img_dir)
    if not images:
        raise DatasetError(f"{img_dir}: no images (png, jpg, tif, bmp) found; check the path")
    masks: dict[str, Path] = {}
    if not negative:
        masks = _images_in(mask_dir)
        no_mask = set(images) - set(masks)
        if no_mask:
            raise DatasetError(
                f"{root}: {len(no_mask)} image(s) have no mask in masks/: {_name_list(no_mask)}; "
                "add the masks or remove the images"
            )
        no_image = set(masks) - set(images)
        if no_image:
            raise DatasetError(
                f"{root}: {len(no_image)} mask(s) have no image in images/: "
                f"{_name_list(no_image)}; add the images or remove the masks"
            )

    seq_file = root / "sequences.csv"
    sequences = _read_sequences(seq_file) if seq_file.is_file() else {}
    if sequences:
        missing = set(images) - set(sequences)
        if missing:
            raise DatasetError(
                f"{seq_file}: {len(missing)} frame(s) have no sequence: {_name_list(missing)}; "
                "add them to the CSV"
            )
    elif negative and all("_" in stem for stem in images):
        sequences = {stem: stem.rsplit("_", 1)[0] for stem in images}
    layout = "sequences" if sequences else "pairs"
    samples = [
        Sample(stem, images[stem], masks.get(stem), sequences.get(stem))
        for stem in sorted(images, key=natural_key)
    ]
    test_ids, ids_file = (None, None) if negative else _read_test_ids(root, set(images))
    return Dataset(
        root=root,
        name=dataset_slug(root),
        layout=layout,
        samples=samples,
        kind="negative" if negative else "polyp",
        test_ids=test_ids,
        test_ids_file=ids_file,
    )


def _read_test_ids(root: Path, stems: set[str]) -> tuple[tuple[str, ...] | None, str | None]:
    """The published test ids shipped with a dataset (Kvasir-SEG's ``test-pranet.txt``), if any.

    Published tables on such a dataset all test on these ids, so a split keeps exactly them as
    its test side; one file ``test-*.txt`` at the dataset root, one id (file stem) per line.
    """
    files = sorted(root.glob("test-*.txt"))
    if not files:
        return None, None
    if len(files) > 1:
        raise DatasetError(
            f"{root}: several test lists ({', '.join(f.name for f in files)}); keep one"
        )
    try:
        ids = [
            Path(line.strip()).stem for line in files[0].read_text().splitlines() if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{files[0]}: cannot be read ({exc}); fix or remove it") from None
    unknown = set(ids) - stems
    if unknown:
        raise DatasetError(
            f"{files[0]}: {len(unknown)} id(s) have no image: {_name_list(unknown)}; fix the list"
        )
    if len(set(ids)) != len(ids) or not ids:
        raise DatasetError(f"{files[0]}: the list is empty or repeats an id; fix it")
    return tuple(sorted(ids, key=natural_key)), files[0].name


def dataset_slug(root: str | Path) -> str:
    """``CVC-ClinicDB`` -> ``cvc-clinicdb``: the split file's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", Path(root).resolve().name.lower()).strip("-")
    return slug or "dataset"


def _imread(path: Path, flags: int) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, flags) if data is not None and data.size else None
    if img is None:
        raise DatasetError(
            f"{path}: cannot be read as an image (missing, empty or corrupt); replace or remove it"
        )
    return img


def read_image(path: str | Path) -> np.ndarray:
    """The image as BGR uint8 HxWx3 (what OpenCV, and so the app, sees)."""
    import cv2

    return _imread(Path(path), cv2.IMREAD_COLOR)


def read_mask(path: str | Path) -> np.ndarray:
    """The mask as bool HxW: any channel's grey level above 127 is polyp."""
    import cv2

    m = _imread(Path(path), cv2.IMREAD_UNCHANGED)
    if m.dtype == np.uint16:  # 16-bit masks: compare on the 8-bit scale
        m = (m >> 8).astype(np.uint8)
    elif m.dtype != np.uint8:  # float masks (tif): 0..1 or 0..255
        m = np.nan_to_num(m.astype(np.float64))
        m = (m * 255.0 if m.max(initial=0.0) <= 1.0 else m).clip(0, 255).astype(np.uint8)
    if m.ndim == 3:
        m = m[..., :3].max(axis=2)
    return m > MASK_THRESHOLD


def load_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(BGR uint8 image, bool mask), checked to have the same size;
    all False for a polyp-free frame."""
    img = read_image(sample.image)
    if sample.mask is None:
        return img, np.zeros(img.shape[:2], bool)
    mask = read_mask(sample.mask)
    if img.shape[:2] != mask.shape:
        raise DatasetError(
            f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{img.shape[1]}x{img.shape[0]}; fix the pair"
        )
    return img, mask


# --------------------------------------------------------------------------- splits


def _split_sequences(
    frames_per_seq: dict[str, int], seed: int, fractions: Sequence[float], tries: int = 4000
) -> dict[str, list[str]]:
    """Assign whole sequences so each side's share of frames is closest to ``fractions``.

    Deterministic: candidate assignments come from one seeded generator, and the one with
    the smallest squared deviation from the target fractions wins.
    """
    seqs = sorted(frames_per_seq, key=natural_key)
    if len(seqs) < 3:
        raise SplitError(f"need at least 3 sequences for a train/val/test split, found {len(seqs)}")
    total = sum(frames_per_seq.values())
    target = np.asarray(fractions, dtype=float) / float(sum(fractions))
    rng = np.random.default_rng(seed)
    best: tuple[float, dict[str, list[str]]] | None = None
    for _ in range(tries):
        order = [seqs[i] for i in rng.permutation(len(seqs))]
        parts: dict[str, list[str]] = {"val": [], "test": [], "train": []}
        counts = dict.fromkeys(parts, 0)
        goals = {"val": target[1] * total, "test": target[2] * total}
        rest = []
        for s in order:
            placed = False
            for side in ("val", "test"):
                n = frames_per_seq[s]
                if counts[side] + n / 2 <= goals[side]:
                    parts[side].append(s)
                    counts[side] += n
                    placed = True
                    break
            if not placed:
                rest.append(s)
        for side in ("val", "test"):  # few, long sequences: each side still gets its smallest one
            if not parts[side] and len(rest) > 1:
                s = min(rest, key=lambda q: frames_per_seq[q])
                rest.remove(s)
                parts[side].append(s)
                counts[side] += frames_per_seq[s]
        parts["train"] = rest
        counts["train"] = sum(frames_per_seq[s] for s in rest)
        if not all(parts.values()):
            continue
        got = np.array([counts["train"], counts["val"], counts["test"]], dtype=float) / total
        err = float(((got - target) ** 2).sum())
        if best is None or err < best[0] - 1e-12:
            best = (err, {k: sorted(v, key=natural_key) for k, v in parts.items()})
    assert best is not None
    return best[1]


def make_split(
    dataset: Dataset,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    per_image: bool = False,
) -> Split:
    """A new split of ``dataset``: by whole sequences when known, else per image (leaky).

    ``per_image`` forces the leaky per-image split even when sequences are known: only to
    reproduce the random splits of published tables, for a comparison footnote, never to
    choose or report a model on.
    """
    if dataset.test_ids is not None and not per_image:
        return _split_with_test_ids(dataset, seed)
    if dataset.negative and not dataset.has_sequences and not per_image:
        return _split_negative_images(dataset, seed)
    if dataset.has_sequences and not per_image:
        per_seq: dict[str, list[str]] = {}
        for s in dataset.samples:
            per_seq.setdefault(str(s.sequence), []).append(s.stem)
        parts = _split_sequences({k: len(v) for k, v in per_seq.items()}, seed, fractions)
        stems = {k: tuple(st for seq in parts[k] for st in per_seq[seq]) for k in SPLIT_NAMES}
        stems = {k: tuple(sorted(v, key=natural_key)) for k, v in stems.items()}
        return Split(
            dataset.name,
            seed,
            False,
            stems["train"],
            stems["val"],
            stems["test"],
            sequences={k: tuple(parts[k]) for k in SPLIT_NAMES},
        )
    n = len(dataset.samples)
    if n < 3:
        raise SplitError(
            f"{dataset.root}: need at least 3 images for a train/val/test split, found {n}"
        )
    order = np.random.default_rng(seed).permutation(n)
    frac = np.asarray(fractions, dtype=float) / float(sum(fractions))
    n_val = max(1, int(round(frac[1] * n)))
    n_test = max(1, int(round(frac[2] * n)))
    shuffled = [dataset.samples[i].stem for i in order]
    val, test, train = (
        shuffled[:n_val],
        shuffled[n_val : n_val + n_test],
        shuffled[n_val + n_test :],
    )
    srt = lambda v: tuple(sorted(v, key=natural_key))  # noqa: E731
    return Split(dataset.name, seed, True, srt(train), srt(val), srt(test))


KVASIR_VAL_SIZE = 100
# between Kvasir-SEG's known duplicate pairs and its closest distinct frames
NEAR_DUPLICATE_CORR = 0.98


def _thumbnail(path: Path) -> np.ndarray:
    """A 32x32 grey thumbnail, zero mean and unit variance (brightness and contrast drop out)."""
    import cv2

    g = cv2.resize(
        cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY), (32, 32), interpolation=cv2.INTER_AREA
    )
    g = g.astype(np.float32).ravel()
    return (g - g.mean()) / (g.std() + 1e-6)


def near_duplicate_groups(
    samples: Sequence[Sample], min_corr: float = NEAR_DUPLICATE_CORR
) -> list[list[str]]:
    """Stems grouped so that near-duplicate frames
    (thumbnail correlation >= ``min_corr``) share a group."""
    thumbs = (
        np.stack([_thumbnail(s.image) for s in samples])
        if samples
        else np.zeros((0, 1024), np.float32)
    )
    corr = thumbs @ thumbs.T / max(thumbs.shape[1], 1)
    pairs = zip(*np.nonzero(np.triu(corr, k=1) >= min_corr))
    return sorted(
        (
            sorted((samples[i].stem for i in g), key=natural_key)
            for g in components(len(samples), pairs)
        ),
        key=lambda g: natural_key(g[0]),
    )


def components(n: int, pairs: Iterable[tuple[Any, Any]]) -> list[list[int]]:
    """The connected components of items ``0..n-1`` linked by ``pairs`` (union-find), each in
    index order, in order of their first index: what frames that must stay together (near-
    duplicates, one sequence) form."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(int(j))] = root(int(i))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _split_with_test_ids(dataset: Dataset, seed: int, n_val: int = KVASIR_VAL_SIZE) -> Split:
    """Test = the dataset's published ids; validation = ``n_val`` seeded frames of the rest.

    Near-duplicate frames are drawn as one group, so no pair straddles
    train and validation; the test ids are taken as published, untouched.
    """
    test = set(dataset.test_ids or ())
    rest = [s for s in dataset.samples if s.stem not in test]
    if len(rest) < 2 * n_val:
        n_val = max(1, len(rest) // 7)
    groups = near_duplicate_groups(rest)
    order = np.random.default_rng(seed).permutation(len(groups))
    val: list[str] = []
    for i in order:
        if len(val) >= n_val:
            break
        val.extend(groups[i])
    vset = set(val)
    srt = lambda v: tuple(sorted(v, key=natural_key))  # noqa: E731
    return Split(
        dataset.name,
        seed,
        False,
        srt(s.stem for s in rest if s.stem not in vset),
        srt(val),
        srt(test),
        method=(
            f"test: the published ids of {dataset.test_ids_file or 'the test list'}; "
            f"validation: {len(val)} seeded frames of the rest, near-duplicates (grey "
            f"thumbnail correlation >= {NEAR_DUPLICATE_CORR}) kept on one side"
        ),
    )


# polyp-free images without sequences (CP-CHILD): enough frames for a validation and a test side
# big enough to measure a 5% false-alarm rate to about +-1 point
NEGATIVE_IMAGE_FRACTIONS = (0.60, 0.20, 0.20)


def _split_negative_images(
    dataset: Dataset, seed: int, fractions: Sequence[float] = NEGATIVE_IMAGE_FRACTIONS
) -> Split:
    """A seeded split of polyp-free images with no sequence information, near-duplicates
    (grey thumbnail correlation >= ``NEAR_DUPLICATE_CORR``) drawn as one group so that no pair
    straddles two sides. Not leaky: every side's near-duplicates stay on that side."""
    groups = near_duplicate_groups(dataset.samples)
    order = np.random.default_rng(seed).permutation(len(groups))
    frac = np.asarray(fractions, dtype=float) / float(sum(fractions))
    n = len(dataset.samples)
    goals = {"val": round(frac[1] * n), "test": round(frac[2] * n)}
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i in order:
        side = next((k for k in ("val", "test") if len(parts[k]) < goals[k]), "train")
        parts[side].extend(groups[i])
    srt = lambda v: tuple(sorted(v, key=natural_key))  # noqa: E731
    return Split(
        dataset.name,
        seed,
        False,
        srt(parts["train"]),
        srt(parts["val"]),
        srt(parts["test"]),
        method=(
            f"seeded per image ({round(frac[0] * 100)}/{round(frac[1] * 100)}/"
            f"{round(frac[2] * 100)}), near-duplicates (grey thumbnail correlation >= "
            f"{NEAR_DUPLICATE_CORR}) kept on one side"
        ),
    )


def default_split_path(dataset: Dataset, per_image: bool = False) -> Path:
    """Where a dataset's split lives when no ``--split-file`` is given.

    The shipped multi-dataset split (``polypvision/splits/two-centre.json``) when it has a part
    for this dataset, else a shipped ``<dataset>.json``, else ``<dataset>.json`` in the user's
    data folder (made on first use; see :func:`polypvision.paths.new_splits_dir`).
    """
    if (
        not per_image
        and _part_names(DEFAULT_SPLIT_FILE)
        and dataset.name in _part_names(DEFAULT_SPLIT_FILE)
    ):
        return DEFAULT_SPLIT_FILE
    name = f"{dataset.name}-per-image-LEAKY.json" if per_image else f"{dataset.name}.json"
    return SPLITS_DIR / name if (SPLITS_DIR / name).is_file() else paths.new_splits_dir() / name


def _read_doc(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SplitError(
            f"split file {path} cannot be read ({exc}); delete it to make a new split"
        ) from None
    if not isinstance(doc, dict):
        raise SplitError(f"split file {path} is not a JSON object; delete it to make a new split")
    return doc


def _part_names(path: Path) -> set[str]:
    """The datasets a multi-dataset split file covers
    (empty for a missing or single-dataset file)."""
    if not path.is_file():
        return set()
    doc = _read_doc(path)
    return set(doc.get("datasets") or {}) if doc.get("schema") == MULTI_SCHEMA else set()


def save_split(split: Split, path: str | Path, multi: bool = False) -> Path:
    """Write ``split``; with ``multi`` (or into an existing multi-dataset file) as that file's part
    for its dataset, keeping the other parts. Written atomically."""
    path = Path(path)
    if paths.inside_package(path):
        raise SplitError(
            f"{path} is inside the polypvision package, whose split files are read-only; "
            "pass --split-file with a path outside it (in a checkout: splits/NAME.json)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict = split.to_dict()
    if (
        multi
        or _part_names(path)
        or (path.is_file() and _read_doc(path).get("schema") == MULTI_SCHEMA)
    ):
        whole: dict[str, Any] = (
            _read_doc(path) if path.is_file() else {"schema": MULTI_SCHEMA, "datasets": {}}
        )
        whole.setdefault("datasets", {})[split.dataset] = doc
        whole["datasets"] = dict(sorted(whole["datasets"].items()))
        doc = whole
    return write_text(path, json.dumps(doc, indent=1) + "\n")


def read_split(path: str | Path, dataset: str | None = None) -> Split:
    """One dataset's split from a split file (a single-dataset file, or ``dataset``'s part of a
    multi-dataset file)."""
    path = Path(path)
    doc = _read_doc(path)
    if doc.get("schema") == MULTI_SCHEMA:
        parts = doc.get("datasets") or {}
        if dataset not in parts:
            raise SplitError(
                f"split file {path} has no part for dataset '{dataset}' (it has "
                f"{', '.join(sorted(parts)) or 'none'}); pass the split file made for it"
            )
        doc = parts[dataset]
    try:
        return Split(
            dataset=str(doc["dataset"]),
            seed=int(doc["seed"]),
            leaky=bool(doc["leaky"]),
            train=tuple(doc["train"]),
            val=tuple(doc["val"]),
            test=tuple(doc["test"]),
            sequences={k: tuple(v) for k, v in (doc.get("sequences") or {}).items()},
            path=path,
            method=doc.get("method"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SplitError(
            f"split file {path} cannot be read ({exc}); delete it to make a new split"
        ) from None


def check_split(split: Split, dataset: Dataset) -> None:
    """Refuse a split that names frames the dataset lacks, or puts a sequence on two sides."""
    have = set(dataset.by_stem())
    listed = split.train + split.val + split.test
    missing = set(listed) - have
    if missing:
        raise SplitError(
            f"split file {split.path}: {len(missing)} frame(s) are not in {dataset.root}: "
            f"{_name_list(missing)}; use the dataset it was made for, or pass another "
            "--split-file"
        )
    if len(set(listed)) != len(listed):
        raise SplitError(
            f"split file {split.path}: a frame is listed on two sides; delete it to make a new "
            "split"
        )
    if (
        dataset.test_ids is not None
        and not split.leaky
        and set(split.test) != set(dataset.test_ids)
    ):
        raise SplitError(
            f"split file {split.path}: its test side is not the published test list "
            f"{dataset.test_ids_file} of {dataset.root}; delete it to make a new split"
        )
    if not split.leaky and dataset.has_sequences:
        side_of: dict[str, str] = {}
        by = dataset.by_stem()
        for k in SPLIT_NAMES:
            for st in split.stems(k):
                seq = str(by[st].sequence)
                if side_of.setdefault(seq, k) != k:
                    raise SplitError(
                        f"split file {split.path}: sequence {seq} is on both {side_of[seq]} and "
                        f"{k}; delete it to make a new split"
                    )


def load_or_create_split(
    dataset: Dataset,
    path: str | Path | None = None,
    seed: int = 0,
    create: bool = True,
    per_image: bool = False,
    multi: bool = False,
) -> Split:
    """The split stored for ``dataset`` (made and written on first use), validated."""
    path = Path(path) if path is not None else default_split_path(dataset, per_image)
    new_multi = multi  # a new file is made in the multi-dataset form (several datasets share it)
    multi = path.is_file() and _read_doc(path).get("schema") == MULTI_SCHEMA
    if path.is_file() and (not multi or dataset.name in _part_names(path)):
        split = read_split(path, dataset.name)
        if per_image and not split.leaky:
            raise SplitError(
                f"split file {path} is a whole-sequence split, not a per-image one; drop "
                "--leaky-split or pass another --split-file"
            )
    elif create:
        # A multi-dataset file gains a part for a new dataset; the parts already in it never change.
        split = make_split(dataset, seed=seed, per_image=per_image)
        save_split(split, path, multi=multi or new_multi)
        split = read_split(path, dataset.name)
    elif multi:
        read_split(path, dataset.name)  # raises: no part for this dataset
        raise AssertionError  # pragma: no cover
    else:
        raise SplitError(
            f"split file {path} does not exist; run 'polypvision train' first or pass --split-file"
        )
    check_split(split, dataset)
    return split


def select(dataset: Dataset, split: Split, which: str) -> list[Sample]:
    """The samples of one side of the split, in the split file's order."""
    by = dataset.by_stem()
    return [by[s] for s in split.stems(which)]


# --------------------------------------------------------------------------- several datasets


@dataclass(frozen=True)
class DataSpec:
    """One dataset folder of a run: ``kind`` "polyp"
    (images + masks) or "negative" (images only)."""

    path: str
    kind: str = "polyp"

    def discover(self) -> Dataset:
        return discover(self.path, negative=self.kind == "negative")

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind}


def specs_from(data: list[str] | str | None, negatives: list[str] | None) -> list[DataSpec]:
    """The run's datasets from the command line (``--data`` may be given once or several times)."""
    paths = [data] if isinstance(data, str) else list(data or [])
    specs = [DataSpec(str(Path(p).resolve())) for p in paths]
    specs += [DataSpec(str(Path(p).resolve()), "negative") for p in (negatives or [])]
    return specs


def specs_of_config(config: dict) -> list[DataSpec]:
    """The datasets a stored run config names
    (a single path in runs made before several were allowed)."""
    d = config.get("data")
    if isinstance(d, str):
        return [DataSpec(d)]
    return [DataSpec(x["path"], x.get("kind", "polyp")) for x in d or []]


@dataclass
class SplitData:
    """A dataset and its split, as a run uses them."""

    spec: DataSpec
    dataset: Dataset
    split: Split

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def negative(self) -> bool:
        return self.dataset.negative

    def samples(self, which: str) -> list[Sample]:
        return select(self.dataset, self.split, which)


def load_splits(
    specs: list[DataSpec],
    split_file: str | Path | dict[str, str] | None,
    seed: int = 0,
    per_image: bool = False,
    create: bool = True,
) -> list[SplitData]:
    """Each dataset with its part of ``split_file`` (made on first use unless ``create`` is False);
    a dict names each dataset's own split file."""

    out: list[SplitData] = []
    seen: dict[str, str] = {}
    for spec in specs:
        ds = spec.discover()
        if ds.name in seen:
            raise DatasetError(
                f"{spec.path} and {seen[ds.name]} are both named '{ds.name}' in the split file; "
                "give each dataset folder its own name"
            )
        seen[ds.name] = spec.path
        path = split_file.get(ds.name) if isinstance(split_file, dict) else split_file
        split = load_or_create_split(
            ds,
            path,
            seed=seed,
            create=create,
            multi=len(specs) > 1,
            per_image=per_image and not ds.negative,
        )
        out.append(SplitData(spec, ds, split))
    return out
