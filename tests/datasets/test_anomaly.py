"""synthetic:anomaly: half normal, anomalies start at the labelled onset and really differ from the normal clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prednet2.datasets import build_dataset, make_anomaly_set
from prednet2.datasets.anomaly import KINDS, MIN_ONSET, render_anomaly_clip

from prednet2.config import DataConfig


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_set_layout_and_determinism():
    a = make_anomaly_set(10, T=8, seed=0)
    assert a["video"].shape == (10, 8, 3, 64, 64) and a["video"].dtype == torch.uint8
    assert a["frame_label"].shape == (10, 8) and a["frame_label"].dtype == torch.bool
    assert a["kind"][0::2] == ["normal"] * 5 and "normal" not in a["kind"][1::2]
    for i, kind in enumerate(a["kind"]):
        onset = int(a["onset"][i])
        if kind == "normal":
            assert onset == -1 and not a["frame_label"][i].any()
        else:
            assert MIN_ONSET <= onset < 8
            assert a["frame_label"][i].nonzero().flatten().tolist() == [onset]
    assert (a["scored"][:, :MIN_ONSET] == 0).all() and a["scored"][:, MIN_ONSET:].all()
    b = make_anomaly_set(10, T=8, seed=0)
    assert torch.equal(a["video"], b["video"]) and a["kind"] == b["kind"]
    assert not torch.equal(a["video"], make_anomaly_set(10, T=8, seed=1)["video"])


def test_all_kinds_occur():
    kinds = make_anomaly_set(40, T=6, size=(32, 32), seed=0)["kind"]
    assert set(kinds) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS[1:])
def test_anomaly_differs_from_normal_continuation_at_onset(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(12):
        clip = render_anomaly_clip(rng, kind, T=12, with_normal=True)
        t0, v, normal = clip["onset"], clip["video"].astype(int), clip["normal_video"].astype(int)
        assert clip["kind"] in (kind, "teleport")  # reverse may fall back to teleport near walls
        assert np.array_equal(v[:t0], normal[:t0]), "the clip changed before its onset"
        changed = (np.abs(v[t0] - normal[t0]).sum(axis=0) > 30).sum()
        assert changed >= 15, f"{kind}: only {changed} pixels differ from the normal continuation at the onset"


def test_kinds_do_what_they_say():
    rng = np.random.default_rng(0)
    for _ in range(8):
        c = render_anomaly_clip(rng, "teleport", T=10, with_normal=True)
        m, t0 = c["true_mask"][:, 0], c["onset"]
        assert np.linalg.norm(centroid(m[t0]) - centroid(m[t0 - 1])) > 0.3 * 64

        c = render_anomaly_clip(rng, "reverse", T=10, with_normal=True)
        if c["kind"] == "reverse":
            m, t0 = c["true_mask"][:, 0], c["onset"]
            before = centroid(m[t0 - 1]) - centroid(m[t0 - 2])
            at = centroid(m[t0]) - centroid(m[t0 - 1])
            cos = before @ at / (np.linalg.norm(before) * np.linalg.norm(at) + 1e-9)
            assert cos < -0.8, "a reversal should send the object back the way it came"

        c = render_anomaly_clip(rng, "shape_change", T=10, with_normal=True)
        m, t0 = c["true_mask"][:, 0], c["onset"]
        normal_mask = np.abs(c["normal_video"][t0].astype(int) - c["video"][t0].astype(int)).sum(axis=0) > 0
        assert normal_mask.sum() >= 0.1 * m[t0].sum()  # the silhouette changed ...
        assert m[t0].any() and m[t0 - 1].any()  # ... and the object is still there


def test_registered_spec_items():
    cfg = DataConfig(clip_len=6, size=(32, 32), n_synthetic=4, n_synthetic_test=4)
    ds = build_dataset("synthetic:anomaly", cfg=cfg, split="test")
    item = ds[1]
    assert ds.classes == list(KINDS) and item["label"].item() in (1, 2, 3)
    assert item["frame_label"].shape == (6,) and item["frame_label"].sum() == 1
    assert ds[0]["label"].item() == 0 and not ds[0]["frame_label"].any()
