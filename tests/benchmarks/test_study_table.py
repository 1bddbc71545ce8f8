"""benchmarks/study_table.py: merging peers.py JSON files by variant and seed, paired differences, bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import study_table  # noqa: E402

TASKS = ["direction", "kind"]


def peers_json(
    path: Path, variants: dict[str, tuple[list[str], dict[int, list[float]]]], kernels: str | None = None, **over
) -> Path:
    """A peers.py --json file: variants {name: (sets, {seed: [top1 per task]})}, one file, its seeds in order;
    ``kernels`` is what every run records (None: files from before session 19 record nothing)."""
    probe = {"n_train": 512, "n_test": 256, "seeds": 3, "clip_len": 10, "resplit": 0}
    res = {"budget_s": None, "clock": "cpu", "steps": 600, "data": "synthetic:shapes", "tasks": TASKS, "probe": probe}
    res["variants"] = {}
    res |= over
    for name, (sets, by_seed) in variants.items():
        seeds = list(by_seed)
        runs = [{"seed": s, "steps": 600, "frames_per_s": 100.0, "train_s": 1.0, "status": "completed"} for s in seeds]
        if kernels is not None:
            runs = [r | {"kernels": kernels} for r in runs]
        tasks = {
            t: {"trained": 0.0, "std": 0.0, "per_seed": [by_seed[s][i] for s in seeds]}
            for i, t in enumerate(res["tasks"])
        }
        res["variants"][name] = {"sets": sets, "runs": runs, "tasks": tasks}
    path.write_text(json.dumps(res))
    return path


def test_seeds_from_several_files_merge_and_pair_with_the_reference(tmp_path, capsys):
    files = [
        peers_json(tmp_path / "d0.json", {"default": ([], {0: [0.50, 0.40]})}),
        peers_json(tmp_path / "d1.json", {"default": ([], {1: [0.54, 0.44]})}),
        peers_json(tmp_path / "v01.json", {"v": (["model.horizon=2"], {0: [0.56, 0.40], 1: [0.56, 0.40]})}),
    ]
    out = tmp_path / "new" / "t.json"  # --json makes its folder
    assert study_table.main([*map(str, files), "--json", str(out)]) == 0
    (res,) = json.loads(out.read_text())
    d, v = res["variants"]["default"], res["variants"]["v"]
    assert d["seeds"] == [0, 1] and d["tasks"]["direction"] == pytest.approx(0.52) and d["mean"] == pytest.approx(0.47)
    assert v["sets"] == ["model.horizon=2"] and v["mean"] == pytest.approx(0.48)
    # paired on seeds 0 and 1: direction +0.06 and +0.02 -> +0.04, SE = std(0.06, 0.02)/sqrt(2) = 0.02
    assert v["vs_ref"]["seeds"] == [0, 1]
    assert v["vs_ref"]["direction"]["diff"] == pytest.approx(0.04)
    assert v["vs_ref"]["direction"]["se"] == pytest.approx(math.sqrt(0.0008) / math.sqrt(2))
    assert v["vs_ref"]["kind"]["diff"] == pytest.approx(-0.02) and v["vs_ref"]["mean"]["diff"] == pytest.approx(0.01)
    assert "vs_ref" not in d
    table = capsys.readouterr().out
    assert "| v vs default | 0,1 | +4.00 ± 2.00 | -2.00 ± 2.00 | +1.00 ± 2.00 |" in table
    assert "| default | 0,1 | 52.00 | 42.00 | 47.00 |" in table


def test_runs_under_other_cpu_kernels_are_named_under_the_table(tmp_path, capsys):
    a = peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]})}, kernels="AVX512")
    b = peers_json(tmp_path / "b.json", {"v": (["x=1"], {0: [0.6, 0.5]})}, kernels="AVX2 ATEN_CPU_CAPABILITY=avx2")
    old = peers_json(tmp_path / "old.json", {"w": (["x=2"], {0: [0.6, 0.5]})})  # records no kernels
    assert study_table.main([str(a), str(old)]) == 0
    assert "note:" not in capsys.readouterr().out  # one kind of kernels (and an unrecorded file): no note
    assert study_table.main([str(a), str(b), str(old)]) == 0
    out = capsys.readouterr().out
    assert "note: these runs were trained under different CPU kernels" in out
    assert "AVX512: default s0; AVX2 ATEN_CPU_CAPABILITY=avx2: v s0" in out


def test_one_shared_seed_has_no_error_bar_and_unshared_seeds_do_not_pair(tmp_path):
    a = peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]}), "v": (["x=1"], {0: [0.6, 0.5]})})
    b = peers_json(tmp_path / "b.json", {"w": (["x=2"], {5: [0.9, 0.9]})})
    (group,) = study_table.merge(study_table.load([str(a), str(b)])).values()
    res = study_table.summarize(group, "default")
    assert res["variants"]["v"]["vs_ref"]["direction"] == {"diff": pytest.approx(0.1), "se": None}
    assert "vs_ref" not in res["variants"]["w"]


def test_other_protocols_get_their_own_table_and_a_folder_reads_its_json(tmp_path, capsys):
    peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]})})
    peers_json(tmp_path / "b.json", {"default": ([], {0: [0.4]})}, tasks=["basketball"],
               probe={"n_train": 512, "n_test": 256, "seeds": 3, "clip_len": 10, "resplit": 10})  # fmt: skip
    assert study_table.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("| variant | seeds |") == 2 and "resplit 10" in out and "| default | 0 | 40.00 | 40.00 |" in out


def test_files_before_and_after_the_readout_options_share_a_table_and_another_readout_gets_its_own(tmp_path, capsys):
    """Files written before the studies' --readout-* options (no such probe keys) and after them without the options
    (keys set to None) are one protocol; a file probed on another readout is another."""
    base = {"n_train": 512, "n_test": 256, "seeds": 3, "clip_len": 10, "resplit": 0}
    peers_json(tmp_path / "old.json", {"default": ([], {0: [0.5, 0.5]})})
    peers_json(tmp_path / "new.json", {"default": ([], {1: [0.7, 0.7]})},
               probe=base | {"readout_bins": None, "readout_whole": None})  # fmt: skip
    peers_json(tmp_path / "b2w.json", {"default": ([], {0: [0.9, 0.9]})},
               probe=base | {"readout_bins": 2, "readout_whole": True})  # fmt: skip
    assert study_table.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("| variant | seeds |") == 2 and "readout_bins 2" in out
    assert "| default | 0,1 | 60.00 | 60.00 | 60.00 |" in out and "| default | 0 | 90.00 | 90.00 | 90.00 |" in out


def test_random_init_and_pixels_rows_appear_when_the_files_hold_them(tmp_path, capsys):
    f = peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]})})
    res = json.loads(f.read_text())
    for t in TASKS:
        res["variants"]["default"]["tasks"][t] |= {"random_init": 0.3, "random_init_std": 0.01}
    res["pixels"] = {"direction": 0.2, "kind": 0.1, "mean": 0.15}
    f.write_text(json.dumps(res))
    assert study_table.main([str(f)]) == 0
    out = capsys.readouterr().out
    assert (
        "| default (random init) | - | 30.00 | 30.00 | 30.00 |" in out
        and "| pixels | - | 20.00 | 10.00 | 15.00 |" in out
    )


def _without_seed(path: Path) -> Path:
    """A hand-edited peers.py JSON: its runs lost their seed."""
    res = json.loads(path.read_text())
    for v in res["variants"].values():
        for r in v["runs"]:
            del r["seed"]
    path.write_text(json.dumps(res))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file or folder"),
        ("garbage", "not readable JSON"),
        ("curve", "not a peers.py --json output"),
        ("renamed", "rename one"),
        ("twice", "pass only one"),
        ("empty_dir", "a folder with no *.json"),
        ("bad_ref", "--ref 'nope' is not among the variants"),
        ("no_seed", "not a complete peers.py --json output (KeyError: 'seed')"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    ok = peers_json(tmp_path / "ok.json", {"default": ([], {0: [0.5, 0.5]})})
    args = {
        "missing": [str(tmp_path / "nope.json")],
        "garbage": [str((tmp_path / "g.json").write_text("{oops") and tmp_path / "g.json")],
        "curve": [str((tmp_path / "c.json").write_text('{"points": [0, 250]}') and tmp_path / "c.json")],
        "renamed": [str(ok), str(peers_json(tmp_path / "r.json", {"default": (["x=1"], {1: [0.5, 0.5]})}))],
        "twice": [str(ok), str(peers_json(tmp_path / "t.json", {"default": ([], {0: [0.6, 0.6]})}))],
        "empty_dir": [str((tmp_path / "e").mkdir() or tmp_path / "e")],
        "bad_ref": [str(ok), "--ref", "nope"],
        "no_seed": [str(_without_seed(peers_json(tmp_path / "n.json", {"default": ([], {0: [0.5, 0.5]})})))],
    }[case]
    assert study_table.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert ": error: " in err
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_file_named_twice_or_also_through_its_folder_is_read_once(tmp_path, capsys):
    f = peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]})})
    assert study_table.main([str(f), str(tmp_path), str(f)]) == 0
    assert "| default | 0 | 50.00 | 50.00 | 50.00 |" in capsys.readouterr().out


def test_the_same_run_in_two_calls_counts_once_and_keeps_the_random_init(tmp_path, capsys):
    first = peers_json(tmp_path / "a.json", {"default": ([], {0: [0.5, 0.5]})})
    later = peers_json(tmp_path / "b.json", {"default": ([], {0: [0.5, 0.5]})})  # the same run, now with random init
    res = json.loads(later.read_text())
    for t in TASKS:
        res["variants"]["default"]["tasks"][t] |= {"random_init": 0.3, "random_init_std": 0.0}
    later.write_text(json.dumps(res))
    assert study_table.main([str(first), str(later)]) == 0
    out = capsys.readouterr().out
    assert "| default | 0 | 50.00 | 50.00 | 50.00 |" in out and "| default (random init) | - | 30.00 |" in out
