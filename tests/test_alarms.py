"""``polypvision alarms`` end to end on tiny datasets and toy models (one with a presence output
and a decision in its contract), and ``polypvision evaluate``'s frame-tier section."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from tiny_datasets import make_dataset, make_negatives
from toy_model import build_toy_model, contract_doc

from polypvision import alarms
from polypvision import data as pdata

pytest.importorskip("true_colon")


def _setup(tmp_path):
    kv = make_dataset(tmp_path / "kvasir-seg", n_seq=6, per_seq=3, sequences=False)
    cvc = make_dataset(tmp_path / "cvc-clinicdb", n_seq=8, per_seq=3, seed=2)
    neg = make_negatives(tmp_path / "neg", n_seq=5, per_seq=3, red_speck=True)
    specs = pdata.specs_from([str(kv), str(cvc)], [str(neg)])
    split = tmp_path / "split.json"
    pdata.load_splits(specs, split)
    plain = build_toy_model(tmp_path / "plain.onnx")
    doc = contract_doc(64, name="toy-presence")
    doc["output"]["presence"] = "presence"
    doc["output"]["decision"] = {"score": "presence", "threshold": 0.5, "window": 2, "min_hits": 2}
    with_presence = build_toy_model(tmp_path / "presence.onnx", contract=doc, presence=True)
    return kv, cvc, neg, split, [plain, with_presence]


def test_alarms_writes_tables_json_and_the_afroc_plot(tmp_path):
    kv, cvc, neg, split, models = _setup(tmp_path)
    out = tmp_path / "bench"
    args = SimpleNamespace(
        data=[str(kv), str(cvc)],
        negatives=[str(neg)],
        model=[str(m) for m in models],
        split_file=str(split),
        out_dir=str(out),
    )
    assert alarms.run(args) == 0
    doc = json.loads((out / "alarms.json").read_text())
    assert [m["model_name"] for m in doc["models"]] == ["toy-redness", "toy-presence"]
    plain, pres = doc["models"]
    # the plain toy outlines every red speck: its shipped rule alarms on polyp-free frames
    assert plain["as_shipped"]["test"]["per_dataset"]["neg"]["false_alarm"] > 0.5
    # the matched operating point is chosen on validation, at the target
    assert plain["matched"]["val"]["false_alarm_max"] <= 0.045
    assert pres["decision"]["score"] == "presence" and pres["decision"]["window"] == 2
    lt = plain["as_shipped"]["test"]["lesions"]
    assert lt["lesions"] and all(x["dataset"] == "cvc-clinicdb" for x in lt["lesions"])
    md = (out / "alarms.md").read_text()
    # as shipped and matched, in the test and validation frame tiers and in the lesion tier
    assert md.count("| `toy-redness`") == 6 and "## Lesion tier" in md and "afroc.png" in md
    assert (out / "afroc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reports_the_frame_tier(tmp_path):
    kv, cvc, neg, split, models = _setup(tmp_path)
    specs = pdata.specs_from([str(kv), str(cvc)], [str(neg)])
    md = alarms.frame_tier_markdown(models[1], specs, "test", split)
    assert "## Frame tier (test)" in md and "presence >= 0.500, on 2 of the last 2 frames" in md
    assert "| neg |" in md and "| cvc-clinicdb |" in md and "AUROC" in md


def test_evaluate_takes_the_same_decision_as_the_alarm_analysis(tmp_path):
    """``evaluate``/``accuracy`` report "through the app" with the model's presence output, as
    ``alarms`` and the app do (a presence model judged on its mask alone would differ)."""
    from polypvision.evaluate import evaluate_many
    from polypvision.model.session import Segmenter
    from polypvision.operating import decide, rates, score_frames

    kv, cvc, neg, split, _ = _setup(tmp_path)
    doc = contract_doc(64, name="toy-quiet")
    doc["output"]["presence"] = "presence"
    doc["output"]["decision"] = {"score": "presence", "threshold": 0.5}
    # the frame-level output never clears 0.5 although the mask lights up: no alarm anywhere
    quiet = build_toy_model(tmp_path / "q.onnx", contract=doc, presence=True, presence_gain=0.1)
    specs = pdata.specs_from([str(kv), str(cvc)], [str(neg)])
    res = evaluate_many(quiet, specs, split="test", split_file=split)
    by = {s["dataset"]: s for s in res["sets"]}
    assert by["neg"]["flagged_app"] == 0.0 and by["neg"]["flagged_raw"] > 0.5
    assert by["cvc-clinicdb"]["found"] == 0.0
    seg = Segmenter(quiet, "cpu")
    sds = pdata.load_splits(specs, split, create=False)
    recs = [r for sd in sds for r in score_frames(seg, sd, "test")]
    want = rates(recs, decide(recs, seg.contract.output.decision))["per_dataset"]
    assert by["neg"]["flagged_app"] == pytest.approx(want["neg"]["false_alarm"])
