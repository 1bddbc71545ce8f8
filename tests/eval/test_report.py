"""eval.report: tables and chart rendered from JSON files only."""

import json

from prednet2.eval.report import collect, main, render


def write(path, d):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d))
    return path


def probe(run, variant, top1, dataset="synthetic:shapes:direction"):
    return {"dataset": dataset, "top1": top1, "top1_std": 0.01, "per_layer": {"0": top1 - 0.05, "1": top1},
            "n_train": 100, "n_test": 50, "n_classes": 8, "seeds": [0, 1, 2], "variant": variant,
            "random_init": variant == "random_init", "baseline": "pixels" if variant == "pixels" else None,
            "run": str(run), "best_layer": ["1", "1", "1"], "best_layer_top1": top1, "chance": 0.125}  # fmt: skip


def make_run(tmp_path):
    run = tmp_path / "shapes_run"
    write(run / "summary.json", {"steps": 200, "final_loss": {"0": 0.4}, "n_skipped": 0, "wall_s": 95.0})
    write(run / "probe.json", probe(run, "trained", 0.6123))
    write(run / "probe_random_init.json", probe(run, "random_init", 0.4))
    write(run / "probe_pixels.json", probe(run, "pixels", 0.3))
    nxt = {"dataset": "synthetic:shapes", "per_layer_ratio": {"0": 0.8, "1": 1.2},
           "per_layer_ratio_mean": {"0": 0.5, "1": 0.9}, "n_clips": 16, "run": str(run)}  # fmt: skip
    write(run / "next.json", nxt)
    write(run / "surprise.json", {"auroc": 0.873, "n_clips": 32, "per_layer_auroc": {"0": 0.8}, "run": str(run)})
    flow = {"dataset": "synthetic:shapes", "per_unit_r2": {"0": 0.004, "2": 0.107}, "target": "next",
            "per_unit_ratio_copy_last": {"0": 1.74, "2": 1.7}, "n_test": 16, "steps": 10, "random_init": False,
            "checkpoint": str(run / "checkpoints" / "last.pt")}  # fmt: skip
    write(run / "flow.json", flow)
    write(run / "config.json", {"not": "a result"})
    return run


def test_report_renders_every_table_from_files(tmp_path):
    run = make_run(tmp_path)
    md = render(collect([str(run)]))
    assert "| shapes_run | synthetic:shapes:direction | 61.2 ± 1.0 | 40.0 ± 1.0 | 30.0 ± 1.0 | +21.2 |" in md
    assert "| 200 | 1.6 min | 3 | 100/50 |" in md  # steps and wall time come from the run's summary.json
    assert "0: 0.800, 1: 1.200" in md and "| no |" in md  # layer 1 does not beat copy-last
    assert "0.873" in md
    assert "### Flow probe" in md and "| shapes_run | synthetic:shapes | trained | next | 0: 0.004, 2: 0.107 " in md
    assert "| 0: 1.740, 2: 1.700 | 16 | 10 |" in md
    assert "config.json" not in md  # not a result file
    assert str(run / "probe.json") in md  # sources listed


def test_cli_writes_markdown_and_png(tmp_path):
    run = make_run(tmp_path)
    extra = write(tmp_path / "other" / "probe_mnist.json", probe(run, "trained", 0.9, "synthetic:moving_mnist:digit"))
    out, png = tmp_path / "tables.md", tmp_path / "chart.png"
    assert main([str(run), str(extra), "--out", str(out), "--png", str(png)]) == 0
    assert "synthetic:moving_mnist:digit" in out.read_text()
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    other = tmp_path / "peers.json"  # a benchmarks/ --json file: not one of the eval tools' results
    other.write_text('{"budget_s": 300, "rows": []}')
    assert main([str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m eval.report: error: no result JSON found") and "study_table.py" in err, err
    run = make_run(tmp_path)
    write(run / "probe_again.json", probe(run, "trained", 0.5))  # two trained probes for one (run, task)
    assert main([str(run)]) == 2
    assert "second trained probe" in capsys.readouterr().err


def test_probes_at_other_clip_lengths_get_rows_of_their_own(tmp_path):
    # trained and random init read at 5 frames beside pixels at 20 made one row of incomparable figures
    run = make_run(tmp_path)
    for name, v, top1 in (("probe_c5.json", "trained", 0.7), ("probe_c5_random.json", "random_init", 0.35)):
        write(run / name, {**probe(run, v, top1), "clip_len": 5})
    for name in ("probe.json", "probe_random_init.json", "probe_pixels.json"):
        d = json.loads((run / name).read_text())
        write(run / name, {**d, "clip_len": 20})
    md = render(collect([str(run)]))
    assert "| shapes_run | synthetic:shapes:direction (5 frames) | 70.0 ± 1.0 | 35.0 ± 1.0 | – | +35.0 |" in md
    assert "| shapes_run | synthetic:shapes:direction (20 frames) | 61.2 ± 1.0 | 40.0 ± 1.0 | 30.0 ± 1.0 |" in md


def test_a_cut_or_hand_edited_result_names_its_file(tmp_path, capsys):
    cut = {k: v for k, v in probe(tmp_path, "trained", 0.5).items() if k != "top1_std"}  # an older or cut file
    edited = probe(tmp_path, "trained", 0.5) | {"top1": "0.5"}  # a figure typed in as text
    for name, d, why in (("cut.json", cut, "KeyError: 'top1_std'"), ("edited.json", edited, "ValueError")):
        f = write(tmp_path / name, d)
        assert main([str(make_run(tmp_path)), str(f)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{f}: looks like a probe result but cannot be read as one ({why}" in err[0], err


def test_few_label_tables_and_curve(tmp_path):
    run = make_run(tmp_path)
    for v, base in [("trained", 0.5), ("random_init", 0.3), ("pixels", 0.2)]:
        for k, gain in [(1, 0.0), (5, 0.1), ("all", 0.3)]:
            write(tmp_path / "few" / f"{v}_{k}.json", {**probe(run, v, base + gain), "shots": k})
        write(tmp_path / "few" / f"knn_{v}.json", {**probe(run, v, base), "method": "knn", "chosen_k": {"concat": [5]}})
        write(tmp_path / "few" / f"cl_{v}.json", {"method": "kmeans", "k": 8, "nmi": base, "nmi_std": 0.01, "ari": 0.1,
              "purity": 0.4, "n_videos": 50, "seeds": [0], "variant": v, "run": str(run), "dataset": "d"})  # fmt: skip
    out, curve = tmp_path / "t.md", tmp_path / "curve.png"
    assert main([str(run), str(tmp_path / "few"), "--out", str(out), "--curve-png", str(curve)]) == 0
    md = out.read_text()
    assert "| K=1 | K=5 | K=all |" in md
    assert "| synthetic:shapes:direction | linear | 3 | trained | 50.0 ± 1.0 | 60.0 ± 1.0 | 80.0 ± 1.0 |" in md
    assert "| linear | 3 | trained − random | **+20.0** | **+20.0** | **+20.0** |" in md
    assert "### k-NN" in md and "| 50.0 ± 1.0 | 30.0 ± 1.0 | 20.0 ± 1.0 | +20.0 | 5 |" in md
    assert "| shapes_run | d | random init | 8 | 0.300 ± 0.010 | 0.100 | 0.400 | 50 | 1 |" in md
    assert "| 61.2 ± 1.0 | 40.0 ± 1.0 |" in md  # the plain probes still fill the main table
    assert curve.read_bytes()[:4] == b"\x89PNG"
