"""Dataset discovery, its one-line errors, and the split that cannot leak."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from tiny_datasets import make_dataset

from polypvision import data as pdata
from polypvision.errors import UserError


def test_discover_pairs_in_natural_order(tmp_path):
    ds = pdata.discover(make_dataset(tmp_path / "d", n_seq=4, per_seq=3))
    assert ds.layout == "sequences" and ds.has_sequences
    assert [s.stem for s in ds.samples] == [str(i) for i in range(1, 13)]
    img, mask = pdata.load_pair(ds.samples[0])
    assert img.shape == (40, 48, 3) and img.dtype == np.uint8
    assert mask.shape == (40, 48) and mask.dtype == bool and 0 < mask.sum() < mask.size


def test_kvasir_layout_mixed_extensions(tmp_path):
    root = make_dataset(tmp_path / "k", n_seq=2, per_seq=3, sequences=False, ext=".jpg")
    ds = pdata.discover(root)
    assert ds.layout == "pairs" and not ds.has_sequences and len(ds.samples) == 6
    assert ds.samples[0].image.suffix == ".jpg" and ds.samples[0].mask.suffix == ".png"


def test_mask_binarised_above_127(tmp_path):
    m = np.zeros((4, 4, 3), np.uint8)
    m[0, 0] = 127
    m[0, 1] = 128
    m[0, 2] = (0, 0, 200)  # any channel counts
    cv2.imwrite(str(tmp_path / "m.png"), m)
    got = pdata.read_mask(tmp_path / "m.png")
    assert not got[0, 0] and got[0, 1] and got[0, 2]
    assert got.sum() == 2


@pytest.mark.parametrize(
    "breakage, words",
    [
        (
            lambda r: (r / "images" / "99.png").write_bytes((r / "images" / "1.png").read_bytes()),
            ["99", "no mask"],
        ),
        (
            lambda r: (r / "masks" / "77.png").write_bytes((r / "masks" / "1.png").read_bytes()),
            ["77", "no image"],
        ),
        (
            lambda r: (r / "sequences.csv").write_text("frame,seq\n1,2\n"),
            ["sequences.csv", "frame,sequence"],
        ),
        (lambda r: (r / "sequences.csv").write_text("frame,sequence\n1,2\n"), ["no sequence", "2"]),
    ],
)
def test_discover_errors_name_the_problem(tmp_path, breakage, words):
    root = make_dataset(tmp_path / "d", n_seq=3, per_seq=2)
    breakage(root)
    with pytest.raises(pdata.DatasetError) as err:
        pdata.discover(root)
    msg = str(err.value)
    assert "\n" not in msg and isinstance(err.value, UserError)
    for w in words:
        assert w in msg


def test_missing_folders(tmp_path):
    with pytest.raises(pdata.DatasetError, match="does not exist"):
        pdata.discover(tmp_path / "nope")
    (tmp_path / "x" / "images").mkdir(parents=True)
    with pytest.raises(pdata.DatasetError, match="masks/"):
        pdata.discover(tmp_path / "x")
    (tmp_path / "x" / "masks").mkdir()
    with pytest.raises(pdata.DatasetError, match="no images"):
        pdata.discover(tmp_path / "x")


def test_unreadable_image_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", n_seq=3, per_seq=2)
    (root / "images" / "3.png").write_bytes(b"not a png at all")
    ds = pdata.discover(root)
    with pytest.raises(pdata.DatasetError, match=r"3\.png.*cannot be read"):
        pdata.load_pair(ds.by_stem()["3"])


def test_size_mismatch_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", n_seq=3, per_seq=2)
    cv2.imwrite(str(root / "masks" / "2.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(pdata.DatasetError, match=r"2\.png.*10x10"):
        pdata.load_pair(pdata.discover(root).by_stem()["2"])


def _side_of_sequence(ds: pdata.Dataset, split: pdata.Split) -> dict[str, set[str]]:
    by = ds.by_stem()
    sides: dict[str, set[str]] = {}
    for k in pdata.SPLIT_NAMES:
        for st in split.stems(k):
            sides.setdefault(by[st].sequence, set()).add(k)
    return sides


def test_split_keeps_sequences_whole_and_is_deterministic(tmp_path):
    root = make_dataset(tmp_path / "d", n_seq=12, per_seq=4)
    ds = pdata.discover(root)
    a, b = pdata.make_split(ds, seed=3), pdata.make_split(ds, seed=3)
    assert a == b
    assert not a.leaky
    assert all(len(s) == 1 for s in _side_of_sequence(ds, a).values())
    assert sorted(a.train + a.val + a.test, key=pdata.natural_key) == [s.stem for s in ds.samples]
    assert all(len(a.stems(k)) > 0 for k in pdata.SPLIT_NAMES)
    assert 0.55 <= len(a.train) / len(ds.samples) <= 0.85


def test_split_file_written_once_and_reused(tmp_path):
    ds = pdata.discover(make_dataset(tmp_path / "d", n_seq=8, per_seq=2))
    path = tmp_path / "splits" / "d.json"
    first = pdata.load_or_create_split(ds, path, seed=1)
    doc = json.loads(path.read_text())
    assert doc["leaky"] is False and doc["method"] == "whole sequences"
    again = pdata.load_or_create_split(ds, path, seed=999)  # seed ignored: the file wins
    assert (again.train, again.val, again.test) == (first.train, first.val, first.test)


def test_split_without_sequences_is_flagged_leaky(tmp_path):
    ds = pdata.discover(make_dataset(tmp_path / "k", n_seq=5, per_seq=4, sequences=False))
    split = pdata.make_split(ds, seed=0)
    assert split.leaky and split.to_dict()["leaky"] is True
    assert len(set(split.train) | set(split.val) | set(split.test)) == 20


def test_forced_per_image_split_is_flagged_and_kept_apart(tmp_path):
    ds = pdata.discover(make_dataset(tmp_path / "d", n_seq=6, per_seq=4))
    split = pdata.make_split(ds, seed=0, per_image=True)
    assert split.leaky and split.to_dict()["method"].startswith("per-image")
    sides = _side_of_sequence(ds, split)
    assert any(len(s) > 1 for s in sides.values())  # it really mixes sequences: that is the leak
    path = pdata.default_split_path(ds, per_image=True)
    assert path.name == "d-per-image-LEAKY.json" and path != pdata.default_split_path(ds)
    honest = tmp_path / "honest.json"
    pdata.load_or_create_split(ds, honest)
    with pytest.raises(UserError, match="not a per-image one"):
        pdata.load_or_create_split(ds, honest, per_image=True)


def test_split_check_refuses_leaks_and_strangers(tmp_path):
    ds = pdata.discover(make_dataset(tmp_path / "d", n_seq=6, per_seq=2))
    split = pdata.make_split(ds, seed=0)
    doc = split.to_dict()
    moved = doc["train"].pop()  # one frame of a train sequence goes to test: a leak
    doc["test"].append(moved)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(pdata.SplitError, match="both"):
        pdata.load_or_create_split(ds, bad)
    doc = split.to_dict()
    doc["test"].append("12345")
    bad.write_text(json.dumps(doc))
    with pytest.raises(pdata.SplitError, match="12345"):
        pdata.load_or_create_split(ds, bad)


def test_committed_clinicdb_split_is_leak_free(clinicdb):
    split_file = pdata.SPLITS_DIR / "cvc-clinicdb.json"
    if not split_file.is_file():
        pytest.skip("splits/cvc-clinicdb.json not made yet")
    ds = pdata.discover(clinicdb)
    split = pdata.load_or_create_split(ds, split_file, create=False)
    assert not split.leaky
    assert all(len(s) == 1 for s in _side_of_sequence(ds, split).values())
    n = len(ds.samples)
    assert abs(len(split.train) / n - 0.70) < 0.06 and abs(len(split.test) / n - 0.15) < 0.05


def test_sixteen_bit_mask(tmp_path):
    m = np.zeros((4, 4), np.uint16)
    m[1, 1] = 65535
    m[2, 2] = 20000  # 78 on the 8-bit scale: background
    cv2.imwrite(str(tmp_path / "m16.png"), m)
    got = pdata.read_mask(tmp_path / "m16.png")
    assert got.dtype == bool and got.sum() == 1 and got[1, 1]


# ------------------------------------------------------------------ several datasets, polyp-free
# frames


def test_negative_folder_gives_empty_masks_and_sequences_from_stems(tmp_path):
    from tiny_datasets import make_negatives

    root = make_negatives(tmp_path / "neg", n_seq=3, per_seq=2)
    with pytest.raises(pdata.DatasetError, match="masks/"):
        pdata.discover(root)  # as a polyp dataset it lacks masks: said, not guessed
    ds = pdata.discover(root, negative=True)
    assert ds.negative and ds.has_sequences
    assert {s.sequence for s in ds.samples} == {"seq3", "seq4", "seq5"}
    img, mask = pdata.load_pair(ds.samples[0])
    assert mask.shape == img.shape[:2] and not mask.any()
    split = pdata.make_split(ds, seed=0)
    assert all(len(v) == 1 for v in split.sequences.values())  # one sequence per side


def test_published_test_ids_are_the_test_side_exactly(tmp_path):
    from tiny_datasets import make_test_list

    root = make_dataset(tmp_path / "kv", n_seq=10, per_seq=3, sequences=False, ext=".jpg")
    ids = ["3", "7", "11", "20"]
    make_test_list(root, ids)
    ds = pdata.discover(root)
    assert ds.test_ids == tuple(ids)
    split = pdata.make_split(ds, seed=0)
    assert set(split.test) == set(ids) and not split.leaky
    assert not set(split.val) & set(ids) and not set(split.train) & set(ids) and split.val
    path = pdata.save_split(split, tmp_path / "s.json")
    doc = json.loads(path.read_text())
    doc["test"] = doc["test"][:-1] + ["1"]  # someone moved a test id
    doc["train"] = [s for s in doc["train"] if s != "1"] + [ids[-1]]
    path.write_text(json.dumps(doc))
    with pytest.raises(pdata.SplitError, match="published test list"):
        pdata.load_or_create_split(ds, path)
    (root / "test-other.txt").write_text("3\n")
    with pytest.raises(pdata.DatasetError, match="several test lists"):
        pdata.discover(root)


def test_near_duplicates_stay_on_one_side(tmp_path):
    root = make_dataset(tmp_path / "kv", n_seq=12, per_seq=2, sequences=False)
    img = cv2.imread(str(root / "images" / "5.png"))
    cv2.imwrite(
        str(root / "images" / "6.png"), cv2.convertScaleAbs(img, alpha=1.1, beta=3)
    )  # same frame, brighter
    cv2.imwrite(str(root / "masks" / "6.png"), cv2.imread(str(root / "masks" / "5.png")))
    ds = pdata.discover(root)
    groups = pdata.near_duplicate_groups(ds.samples)
    assert ["5", "6"] in groups and sum(len(g) for g in groups) == len(ds.samples)
    for seed in range(6):
        (root / "test-x.txt").write_text("1\n2\n")
        split = pdata.make_split(pdata.discover(root), seed=seed)
        assert ("5" in split.val) == ("6" in split.val)


def test_multi_dataset_split_file_gains_parts_and_keeps_them(tmp_path):
    from tiny_datasets import make_negatives

    a = pdata.discover(make_dataset(tmp_path / "alpha", n_seq=6, per_seq=2))
    n = pdata.discover(make_negatives(tmp_path / "neg", n_seq=3, per_seq=2), negative=True)
    path = tmp_path / "multi.json"
    pdata.save_split(pdata.make_split(a, seed=0), path, multi=True)
    first = path.read_text()
    sn = pdata.load_or_create_split(n, path)  # a new dataset: its part is added
    doc = json.loads(path.read_text())
    assert doc["schema"] == pdata.MULTI_SCHEMA and set(doc["datasets"]) == {"alpha", "neg"}
    assert json.loads(first)["datasets"]["alpha"] == doc["datasets"]["alpha"]  # untouched
    again = pdata.load_or_create_split(n, path, seed=99)
    assert again.train == sn.train
    b = pdata.discover(make_dataset(tmp_path / "beta", n_seq=6, per_seq=2))
    with pytest.raises(pdata.SplitError, match="no part for dataset 'beta'"):
        pdata.load_or_create_split(b, path, create=False)
    sets = pdata.load_splits(
        pdata.specs_from([str(tmp_path / "alpha")], [str(tmp_path / "neg")]), path
    )
    assert [s.name for s in sets] == ["alpha", "neg"] and sets[1].negative


def test_committed_two_centre_split_never_leaks(clinicdb, kvasir, negatives):
    """No Kvasir-SEG test id, no CVC-ClinicDB test sequence, no polyp-free test sequence is in
    training or validation; the CVC-ClinicDB part is the single-centre split of earlier models."""
    path = pdata.DEFAULT_SPLIT_FILE
    sets = pdata.load_splits(
        pdata.specs_from([str(kvasir), str(clinicdb)], [str(negatives)]), path, create=False
    )
    by = {s.name: s for s in sets}
    kv = by["kvasir-seg"]
    assert set(kv.split.test) == set(kv.dataset.test_ids) and len(kv.split.test) == 100
    assert not set(kv.split.test) & (set(kv.split.train) | set(kv.split.val))
    assert len(kv.split.val) >= 100
    groups = pdata.near_duplicate_groups(
        [s for s in kv.dataset.samples if s.stem not in set(kv.split.test)]
    )
    for g in groups:  # near-duplicate pairs never straddle train and validation
        assert len({("val" if x in kv.split.val else "train") for x in g}) == 1
    for name in ("cvc-clinicdb", "polypgen-negatives"):
        sd = by[name]
        sides = _side_of_sequence(sd.dataset, sd.split)
        assert all(len(v) == 1 for v in sides.values()) and not sd.split.leaky
        assert any("test" in v for v in sides.values())
    legacy = pdata.read_split(pdata.SPLITS_DIR / "cvc-clinicdb.json")
    assert (
        by["cvc-clinicdb"].split.test == legacy.test and by["cvc-clinicdb"].split.val == legacy.val
    )


def test_polyp_free_material_split_never_leaks(negatives, cp_child):
    """Issue 22's polyp-free material: PolypGen by whole sequence with seq2 and seq12 (one video
    under two names) on one side, the earlier five sequences where they were, the kinds of frame
    that fail on validation; CP-CHILD per image with near-duplicates on one side. No test
    sequence or test image is in training or validation."""
    sets = pdata.load_splits(
        pdata.specs_from([], [str(negatives), str(cp_child)]),
        pdata.DEFAULT_SPLIT_FILE,
        create=False,
    )
    pg, cp = sets
    sides = _side_of_sequence(pg.dataset, pg.split)
    assert all(len(v) == 1 for v in sides.values())
    side = {k: next(iter(v)) for k, v in sides.items()}
    assert side["seq2"] == side["seq12"]
    assert [side[s] for s in ("seq4", "seq5", "seq7", "seq6", "seq3")] == [
        "train",
        "train",
        "train",
        "val",
        "test",
    ]
    assert {side[s] for s in ("seq12", "seq10", "seq13")} == {"val"}  # stool, inset, blur
    assert {s for s, v in side.items() if v == "test"} >= {"seq3", "seq9"}
    assert set(side) == {str(s.sequence) for s in pg.dataset.samples}
    test = set(cp.split.test)
    assert len(test) == 400 and not test & (set(cp.split.train) | set(cp.split.val))
    assert len(cp.split.train) + len(cp.split.val) + len(test) == len(cp.dataset.samples)
    for g in pdata.near_duplicate_groups(cp.dataset.samples):
        assert (
            len({("test" if x in test else "val" if x in cp.split.val else "train") for x in g})
            == 1
        )
