"""``polypvision accuracy`` (the published-comparison table) and ``scripts/tables.py``
(generated blocks, a maintainer tool of the checkout)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_datasets import make_dataset, make_negatives
from toy_model import build_toy_model

from polypvision import accuracy
from polypvision import data as pdata

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    """scripts/tables.py, loaded by path (it is not part of the package)."""
    path = ROOT / "scripts" / "tables.py"
    if not path.is_file():
        pytest.skip("scripts/tables.py is a tool of the checkout")
    spec = importlib.util.spec_from_file_location("polypvision_tables_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_accuracy_writes_ours_beside_the_quoted_rows(tmp_path):
    kv = make_dataset(tmp_path / "kvasir-seg", n_seq=6, per_seq=3, sequences=False)
    cvc = make_dataset(tmp_path / "cvc-clinicdb", n_seq=8, per_seq=3, seed=2)
    neg = make_negatives(tmp_path / "neg", n_seq=4, per_seq=2)
    specs = pdata.specs_from([str(kv), str(cvc)], [str(neg)])
    split = tmp_path / "split.json"
    pdata.load_splits(specs, split)
    models = [
        build_toy_model(tmp_path / "toy-a.onnx", size=64),
        build_toy_model(tmp_path / "toy-b.onnx", size=32),
    ]
    args = SimpleNamespace(
        data=[str(kv), str(cvc)],
        negatives=[str(neg)],
        models=[str(m) for m in models],
        split_file=str(split),
        output=str(tmp_path / "acc.md"),
        json=str(tmp_path / "acc.json"),
        threads=1,
    )
    assert accuracy.run(args) == 0
    md = (tmp_path / "acc.md").read_text()
    doc = json.loads((tmp_path / "acc.json").read_text())
    assert [r["model"] for r in doc["results"]] == ["toy-a.onnx", "toy-b.onnx"]
    for ds in ("kvasir-seg", "cvc-clinicdb"):
        section = md.split(f"## {ds}")[1].split("## ")[0]
        assert section.count("| **ours** |") == 2  # both models measured here
        assert section.count("*quoted*") == 3 and "PraNet" in section and "Polyp-PVT" in section
    assert (
        "**Not the same test set.**" in md
    )  # CVC-ClinicDB's published protocol is leaky: said where it shows
    assert "Polyp-free sequences" in md and md.count("| neg |") == 2
    assert doc["generated_by"].startswith("polypvision accuracy --data")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.partial*"))
    table = accuracy.readme_table(doc, fps={"toy-redness": 123.0})
    assert table.count("| `toy-redness` |") == 2 and "123" in table


def test_quoted_rows_carry_their_source():
    for rows in accuracy.PUBLISHED.values():
        for r in rows:
            assert r["cite"] in accuracy.CITES and 0 < r["mdice"] < 1 and 0 < r["mae"] < 1


@pytest.mark.repo  # scripts/tables.py is a tool of the checkout
def test_update_rewrites_only_the_marked_blocks(tables):
    class Ctx:
        pass

    text = "keep\n<!-- generated: models -->\nold\n<!-- end generated: models -->\nkeep too\n"
    orig = tables.render
    try:
        tables.render = lambda name, ctx: f"NEW {name}"
        out = tables.update(text, Ctx())
    finally:
        tables.render = orig
    assert (
        out == "keep\n<!-- generated: models -->\nNEW models\n<!-- end generated: models -->\nkeep "
        "too\n"
    )


@pytest.mark.repo  # reads README.md and models/README.md of the checkout
def test_generated_tables_in_readme_and_model_cards_are_current(tables):
    ctx = tables.Context()
    for name in tables.DEFAULT_FILES:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert tables.BLOCK.search(text), f"{name} has no generated block"
        assert tables.update(text, ctx) == text, (
            f"{name}: generated tables are stale; run 'python scripts/tables.py'"
        )
    for stem in ctx.models:  # every shipped model has its test figures and its card
        assert ctx.test(stem) is not None, f"{stem} is missing from benchmarks/accuracy.json"
        assert f"<!-- generated: card:{stem} -->" in (ROOT / "models" / "README.md").read_text(
            encoding="utf-8"
        )
