"""eval.demo_summary: the three-row table and chart that end ``make demo``, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from eval.demo_summary import main


def _probe(run, variant: str, top1: float) -> dict:
    return {"dataset": "synthetic:shapes:direction", "top1": top1, "top1_std": 0.02, "per_layer": {"0": top1},
            "n_train": 384, "n_test": 192, "n_classes": 8, "seeds": [0, 1, 2], "chance": 0.125,
            "variant": variant, "run": str(run)}  # fmt: skip


def _write_run(run) -> None:
    run.mkdir()
    for name, variant, top1 in [("probe", "trained", 0.45), ("probe_random_init", "random_init", 0.28),
                                ("probe_pixels", "pixels", 0.31)]:  # fmt: skip
        (run / f"{name}.json").write_text(json.dumps(_probe(run, variant, top1)))
    (run / "summary.json").write_text(json.dumps({"steps": 150, "final_loss": {"0": 1.0}, "wall_s": 90.0}))


def test_table_and_chart(tmp_path, capsys):
    run = tmp_path / "demo"
    _write_run(run)
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "±" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["trained", "random init", "pixels"]
    assert "45.0 ±  2.0" in rows[0] and "+17.0" in rows[0] and "+3.0" in rows[2]
    assert "150 steps, 1.5 min" in out and "chance 12.5%" in out
    assert (run / "probe_summary.png").stat().st_size > 1000
    assert "model features" not in out  # probe JSONs from before the readout was recorded


def test_table_names_the_readout(tmp_path, capsys):
    run = tmp_path / "demo"
    _write_run(run)
    d = json.loads((run / "probe.json").read_text())
    d |= {"clip_len": 20, "readout": {"readout": "a,r,da", "readout_bins": 2, "readout_whole": False}}
    (run / "probe.json").write_text(json.dumps(d))
    assert main([str(run)]) == 0
    assert "model features: a,r,da over 20 frames, 2 time bins\n" in capsys.readouterr().out
    for keys, tail in [
        ({"readout_whole": True}, "2 time bins and the whole clip"),
        ({"readout_trend": True}, "2 time bins read as the whole clip and the change between bins"),
    ]:
        d["readout"] |= keys
        (run / "probe.json").write_text(json.dumps(d))
        assert main([str(run)]) == 0
        assert f"model features: a,r,da over 20 frames, {tail}\n" in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["probe_pixels.json", "RUN"])
def test_missing_input_exits_2_with_one_line(tmp_path, capsys, missing):
    run = tmp_path / "demo"
    _write_run(run)
    target = run if missing == "RUN" else run / missing
    if missing == "RUN":
        target = tmp_path / "nope"
    else:
        target.unlink()
    with pytest.raises(SystemExit) as e:
        main([str(target if missing == "RUN" else run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and ("probe_pixels.json: missing" in err[0] or "nope" in err[0])
