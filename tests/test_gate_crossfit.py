"""``polypvision gate --cross-fit K`` (docs/decisions.md, "The gate fitted on validation too, by
cross-fitting"): validation folds never split a sequence or a pair of near-duplicate frames, each
validation frame is scored by the gate that did not see its fold, and the written model records
that its decision and validation figures are out of fold."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_datasets import make_dataset, make_negatives

from polypvision import data as pdata

pytest.importorskip("onnx")
gate = pytest.importorskip("polypvision.training.gate")
from polypvision.training import crossfit  # noqa: E402


def _frame(path: Path, seed: int) -> Path:
    img = np.random.default_rng(seed).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_folds_keep_sequences_and_near_duplicates_whole(tmp_path):
    """Two names of one video (a frame of seq12 is a frame of seq2) are one group, like a still
    and its near-duplicate; the groups are balanced over the folds and never split."""
    samples = []
    for seq, seeds in (("seq2", (1, 2, 3)), ("seq6", (4, 5)), ("seq12", (2, 6)), ("seq13", (7,))):
        for i, sd in enumerate(seeds):
            p = _frame(tmp_path / f"{seq}_{i}_{sd}.png", sd)
            samples.append(pdata.Sample(f"{seq}_img{i}", p, None, seq))
    for stem, sd in (("a", 8), ("b", 8), ("c", 9)):  # a and b: the same picture
        samples.append(pdata.Sample(stem, _frame(tmp_path / f"{stem}.png", sd), None, None))
    groups = crossfit.fold_groups(samples)
    named = sorted(sorted(samples[i].stem for i in g) for g in groups)
    assert named == sorted(
        [
            ["seq12_img0", "seq12_img1", "seq2_img0", "seq2_img1", "seq2_img2"],
            ["seq6_img0", "seq6_img1"],
            ["seq13_img0"],
            ["a", "b"],
            ["c"],
        ]
    )
    folds = crossfit.assign_folds(groups, 3)
    assert sorted(i for f in folds for i in f) == list(range(len(samples)))
    for g in groups:  # a group sits in exactly one fold
        assert sum(set(g) <= set(f) for f in folds) == 1
    assert crossfit.assign_folds(groups, 3) == folds  # seeded
    with pytest.raises(ValueError):
        crossfit.assign_folds(groups, 1)


def test_assign_folds_balances_by_size():
    """Each group goes to the smallest fold, so folds differ by at most the largest group."""
    singletons = [[i] for i in range(10)]
    assert sorted(len(f) for f in crossfit.assign_folds(singletons, 4)) == [2, 2, 3, 3]
    groups = [[0, 1, 2, 3, 4], [5], [6], [7], [8], [9]]
    for seed in range(5):
        sizes = [len(f) for f in crossfit.assign_folds(groups, 2, seed=seed)]
        assert sum(sizes) == 10 and max(sizes) - min(sizes) <= 5


def test_out_of_fold_scores_each_frame_with_the_gate_that_did_not_see_it():
    rows = {"d": np.arange(6, dtype=float)[:, None]}
    folds = {"d": [[0, 3], [1, 4, 5], [2]]}
    gates = [lambda x, k=k: np.full(len(x), float(k)) for k in range(3)]
    oof = crossfit.out_of_fold(gates, rows, folds)
    assert oof["d"].tolist() == [0, 1, 2, 0, 1, 1]


def test_gate_cross_fit_writes_out_of_fold_decision_and_figures(tmp_path, capsys):
    from test_gate import build_unet, gate_args

    from polypvision.model.session import Segmenter

    base = build_unet(tmp_path / "base.onnx")
    kv = make_dataset(tmp_path / "kvasir-seg", n_seq=8, per_seq=3, sequences=False)
    neg = make_negatives(tmp_path / "neg", n_seq=8, per_seq=3)
    specs = pdata.specs_from([str(kv)], [str(neg)])
    split = tmp_path / "split.json"
    sds = pdata.load_splits(specs, split)
    n_val = {sd.name: len(sd.samples("val")) for sd in sds}
    out = tmp_path / "xfit.onnx"
    args = gate_args(
        base,
        "-o",
        out,
        "--data",
        kv,
        "--negatives",
        neg,
        "--split-file",
        split,
        "--crops",
        "--cross-fit",
        "2",
    )
    assert gate.run(args) == 0
    said = capsys.readouterr().out
    assert "(out of fold)" in said and "validation in 2 folds" in said
    c = Segmenter(out, provider="cpu").contract
    doc = c.training["presence_gate"]
    assert doc["cross_fit"]["folds"] == 2 and doc["c_chosen_on"].startswith("out-of-fold")
    for name, n in n_val.items():  # every validation frame in exactly one fold
        assert sum(doc["frames"][name]["val_folds"]) == n
    d = c.output.decision
    assert "out of fold" in d.chosen_on
    # the decision's validation figures cover every validation frame, each scored out of fold
    assert {k: v["frames"] for k, v in d.validation["per_dataset"].items()} == n_val
    # alarms shows the recorded out-of-fold figures as its validation row (scoring validation
    # with a gate fitted on it would be in-sample), and evaluate says so for the val split
    from polypvision import alarms

    res, _ = alarms.measure_model(out, sds)
    assert res["validation_out_of_fold"] is True
    assert res["as_shipped"]["val"] == alarms.out_of_fold_figures(d)
    assert res["matched"] == res["as_shipped"] and "lesions" in res["as_shipped"]["test"]
    doc_md = {
        "command": "polypvision alarms ...",
        "generated": "today",
        "datasets": list(n_val),
        "kinds": {sd.name: "negative" if sd.negative else "polyp" for sd in sds},
        "models": [res],
    }
    md = alarms.to_markdown(doc_md)
    val_part = md.split("## Frame tier, validation")[1].split("## Lesion tier")[0]
    assert "out of fold" in val_part and val_part.count(f"`{c.name}`") == 1
    assert "In-sample" in alarms.frame_tier_markdown(out, specs, "val", split)
    assert "In-sample" not in alarms.frame_tier_markdown(out, specs, "test", split)
    # its decision cannot be chosen again on validation (in-sample for this gate), and a
    # contract whose decision was anyway is not shown as out of fold
    import dataclasses

    from polypvision import operating
    from polypvision.errors import UserError
    from polypvision.training.export import with_decision

    with pytest.raises(UserError, match="cross-fitted"):
        with_decision(out, c, sds)
    redone = dataclasses.replace(
        c, output=dataclasses.replace(c.output, decision=dataclasses.replace(d, chosen_on="val"))
    )
    with pytest.raises(UserError, match="not chosen out of fold"):
        operating.cross_fitted(redone)
    # a fold count that cannot cross-fit is one line, before any work
    args.cross_fit, args.output = 1, str(tmp_path / "never.onnx")
    with pytest.raises(gate.GateError, match="2 or more folds"):
        gate.run(args)
    assert not Path(args.output).exists()


def test_each_fold_gate_is_fitted_and_scores_without_its_fold(tmp_path, monkeypatch):
    """No leakage: every fold's fit lacks that fold's frames, mirror images and squares and has
    every other fold's; the written gate's fit has them all; and the frames each fold's gate
    scores through the app are exactly its held-out fold."""
    from test_gate import build_unet, gate_args

    from polypvision import operating

    base = build_unet(tmp_path / "base.onnx")
    kv = make_dataset(tmp_path / "kvasir-seg", n_seq=8, per_seq=3, sequences=False)
    # several validation sequences; the red speck makes every frame distinct
    neg = make_negatives(tmp_path / "neg", n_seq=16, per_seq=3, red_speck=True)
    specs = pdata.specs_from([str(kv)], [str(neg)])
    split = tmp_path / "split.json"
    sds = pdata.load_splits(specs, split)
    k = 2
    fold_stems = {}
    for sd in sds:
        val = sd.samples("val")
        fold_stems[sd.name] = [{val[i].stem for i in f} for f in crossfit.val_folds(sd, k)]

    extracted: list[tuple[str, int, np.ndarray]] = []  # (dataset, fold, rows) added to fits
    real_extract = gate._cached_extract

    def spy_extract(session, contract, samples, mirror, model_sha, crops=False):
        x, y = real_extract(session, contract, samples, mirror, model_sha, crops)
        stems = {s.stem for s in samples}
        for name, folds in fold_stems.items():
            for j, f in enumerate(folds):
                if mirror and f and stems == f:
                    extracted.append((name, j, x))
        return x, y

    fits: list[set[bytes]] = []
    real_fit = gate.fit_logistic

    def spy_fit(x, y, c, **kw):
        fits.append({r.tobytes() for r in np.asarray(x, np.float32)})
        return real_fit(x, y, c, **kw)

    scored: list[tuple[str, set[str]]] = []
    real_score = operating.score_frames

    def spy_score(seg, sd, split_name, batch=8):
        recs = real_score(seg, sd, split_name, batch)
        scored.append((Path(seg.path).stem, {r.stem for r in recs}))
        return recs

    monkeypatch.setattr(gate, "_cached_extract", spy_extract)
    monkeypatch.setattr(gate, "fit_logistic", spy_fit)
    monkeypatch.setattr(operating, "score_frames", spy_score)
    args = gate_args(
        base,
        "-o",
        tmp_path / "xfit.onnx",
        "--data",
        kv,
        "--negatives",
        neg,
        "--split-file",
        split,
        "--crops",
        "--cross-fit",
        k,
    )
    assert gate.run(args) == 0
    assert len(fits) == len(gate.C_GRID) * k + 1  # k per C, then the written gate
    rows = [
        set().union(*({r.tobytes() for r in x} for _, j, x in extracted if j == f))
        for f in range(k)
    ]
    assert all(rows) and any(name == "kvasir-seg" for name, _, _ in extracted)
    for i, fit_rows in enumerate(fits[:-1]):
        held_out = i % k
        assert not (rows[held_out] & fit_rows), f"fit {i} saw its held-out fold"
        for j in range(k):
            if j != held_out:
                assert rows[j] <= fit_rows, f"fit {i} lacks fold {j}"
    assert all(r <= fits[-1] for r in rows), "the written gate is fitted on every fold"
    # each fold's gate scores exactly its own fold through the app
    by_fold: dict[str, set[str]] = {}
    for model, stems in scored:
        by_fold.setdefault(model, set()).update(stems)
    for j in range(k):
        assert by_fold[f"fold{j}"] == set().union(*(f[j] for f in fold_stems.values()))
