"""Cross-fitting ``polypvision gate`` over validation folds (``--cross-fit K``).

Why (docs/decisions.md, "The gate fitted on validation too, by cross-fitting"): validation holds
polyp-free material training lacks (stool, insets, blur, instruments, more of another hospital's
mucosa), but it is also what chooses C and the operating threshold. Cross-fitting uses it for
both: each fold's gate is fitted on training plus the other folds and scores its own fold, C and
the decision are chosen on these out-of-fold scores, and the shipped gate is fitted on all of it
with them.

Folds keep whole what must not straddle them: a sequence with every frame that near-duplicates
one of its frames (so two names of one video are one group), a still with its near-duplicates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from polypvision import data as pdata


def fold_groups(samples: Sequence[pdata.Sample]) -> list[list[int]]:
    """Indices of ``samples`` grouped: one sequence, joined with any sample near-duplicating
    one of its frames (:func:`polypvision.data.near_duplicate_groups`); groups in natural order
    of their first stem."""
    first_of_seq: dict[str, int] = {}
    pairs = [
        (first_of_seq.setdefault(s.sequence, i), i)
        for i, s in enumerate(samples)
        if s.sequence is not None
    ]
    at = {s.stem: i for i, s in enumerate(samples)}
    for stems in pdata.near_duplicate_groups(samples):
        pairs += [(at[stems[0]], at[st]) for st in stems[1:]]
    groups = pdata.components(len(samples), pairs)
    return sorted(groups, key=lambda g: pdata.natural_key(samples[g[0]].stem))


def assign_folds(groups: Sequence[Sequence[int]], k: int, seed: int = 0) -> list[list[int]]:
    """The groups, in a seeded order, each to the fold holding the fewest indices so far (ties
    to the lower fold): folds of near-equal size that never split a group."""
    if k < 2:
        raise ValueError("cross-fitting needs at least 2 folds")
    folds: list[list[int]] = [[] for _ in range(k)]
    for gi in np.random.default_rng(seed).permutation(len(groups)):
        smallest = min(range(k), key=lambda f: (len(folds[f]), f))
        folds[smallest].extend(groups[int(gi)])
    return [sorted(f) for f in folds]


def val_folds(sd: pdata.SplitData, k: int, seed: int = 0) -> list[list[int]]:
    """Indices into ``sd.samples("val")``, per fold."""
    return assign_folds(fold_groups(sd.samples("val")), k, seed)


def fold_split(sd: pdata.SplitData, idx: Sequence[int]) -> pdata.SplitData:
    """``sd`` whose validation side is only the samples at ``idx`` (a fold), so the app's own
    scoring (:func:`polypvision.operating.score_frames`) can run on one fold."""
    val = sd.samples("val")
    stems = tuple(val[i].stem for i in idx)
    return dataclasses.replace(sd, split=dataclasses.replace(sd.split, val=stems))


def out_of_fold(
    scores_of: Sequence, rows: dict[str, np.ndarray], folds: dict[str, list[list[int]]]
) -> dict[str, np.ndarray]:
    """Each dataset's validation score, every frame scored by ``scores_of[k]`` (the gate that
    did not see fold ``k``): the pooled out-of-fold scores C and the threshold are chosen on."""
    out: dict[str, np.ndarray] = {}
    for name, x in rows.items():
        s = np.full(len(x), np.nan)
        for k, idx in enumerate(folds[name]):
            if idx:
                s[idx] = scores_of[k](x[idx])
        out[name] = s
    return out
