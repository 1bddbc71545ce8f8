"""benchmarks/peers.py and benchmarks/curve.py: a 2-step run through the whole pipeline, the table's keys, and the
wall-clock budget (SIGTERM) mechanism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import curve  # noqa: E402
import peers  # noqa: E402
from study import Probe, Runner, StudyError, StudyFailure, parse_variants, readout_note  # noqa: E402

TINY = ["--set", "motion=off", "--set", "data.batch_size=2", "--set", "data.clip_len=4",
        "--set", "model.channels=[4,8]", "--seeds", "1", "--n-train", "24", "--n-test", "16"]  # fmt: skip


def test_parse_variants():
    v = parse_variants("default,prednet", ["res=model.predict=residual;model.readout=a,r,da"])
    assert v == {"default": [], "prednet": ["model.preset=prednet"],
                 "res": ["model.predict=residual", "model.readout=a,r,da"]}  # fmt: skip
    with pytest.raises(StudyError, match="unknown variant"):
        parse_variants("nope", [])
    with pytest.raises(StudyError, match="NAME="):
        parse_variants("", ["justaname"])
    # every variant's settings are checked as a config before anything trains
    with pytest.raises(StudyError, match="variant 'x': unknown config key 'model.nokey'"):
        parse_variants("", ["x=model.nokey=1"])
    with pytest.raises(StudyError, match=r"variant 'default' \(with --set train.lr=-1\): train.lr=-1.0 is out"):
        parse_variants("default", [], ["train.lr=-1"])
    assert parse_variants("", ["mix=data=synthetic:mix"]) == {"mix": ["data=synthetic:mix"]}


def test_bad_options_exit_2(capsys):
    assert peers.main(["--tasks", "direction,colour"]) == 2
    assert "--tasks" in capsys.readouterr().err
    assert curve.main(["--points", "a,b"]) == 2
    assert peers.main(["--steps", "0"]) == 2
    assert peers.main(["--n-train", "0", "--tasks", "direction"]) == 2
    assert "--n-train 0: need at least 1" in capsys.readouterr().err


def test_options_are_checked_before_anything_trains(tmp_path, capsys):
    """Each is one line and exit 2 before a run starts (no study folder is made), not an error after training, a
    traceback or a silently ignored option."""
    out = tmp_path / "p"
    base = ["--steps", "1", "--variants", "default", "--tasks", "direction", "--out", str(out), *TINY]
    (tmp_path / "afile").write_text("")
    for argv, expect in [
        (["--random-for", "defualt"], "--random-for: ['defualt'] are not among the variants (default)"),
        (["--train-seeds", ""], "--train-seeds '': expected integers >= 0 like 0,1"),
        (["--train-seeds", "0,-1"], "--train-seeds '0,-1': expected integers >= 0"),
        (["--resplit", "3"], "--resplit 3 draws splits of folder tasks (basketball); --tasks direction has none"),
        (["--budget-s", "60"], "--steps 1 and --budget-s 60 both bound training; give one"),
        (["--data", str(tmp_path / "nope")], f"--data {tmp_path / 'nope'}: no such file or folder"),
        (["--variant", "x=data=synthetic:nope"], "variant 'x': data=synthetic:nope: unknown synthetic data"),
        (["--set", "train.steps=5"], "--set train.steps=5: --steps / --budget-s sets it for every run"),
        (["--variant", "s=train.seed=3"], "variant 's': train.seed=3: --train-seeds sets it; drop it"),
    ]:
        assert peers.main([*base, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err
    assert curve.main(["--points", "2", "--tasks", "direction", "--out", str(out), "--train-seed", "-1"]) == 2
    assert "--train-seed -1: need a seed >= 0" in capsys.readouterr().err
    assert curve.main(["--points", "2", "--tasks", "direction", "--out", str(out), "--set", "train.ckpt_every=5"]) == 2
    assert "--set train.ckpt_every=5: --points sets it for every run" in capsys.readouterr().err
    for main, argv, expect in [  # both were found only after every run had trained and been probed
        (curve.main, ["--points", "2", "--out", str(out), "--png", str(tmp_path)], f"--png: {tmp_path} is a folder"),
        (peers.main, [*base, "--out", str(tmp_path / "afile")], f"--out: {tmp_path / 'afile'} is a file, not a folder"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and expect in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_run_is_one_line_naming_its_log(tmp_path, capsys):
    """A run that fails (here: train.py refuses a horizon no clip holds) is one line with the run's own last
    line and its log, exit 1; not a traceback."""
    rc = peers.main(["--steps", "2", "--variants", "", "--variant", "h=model.horizon=6", "--tasks", "direction",
                     "--out", str(tmp_path / "p"), *TINY])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and "Traceback" not in err
    assert "training h_s0 failed (exit 2)" in err and "train_h_s0.log" in err
    assert "model.horizon=6 needs 6 frames in one training window, but data.clip_len=4 gives 4" in err
    with pytest.raises(StudyFailure):
        Runner(tmp_path / "r", verbose=False).train("x", ["model.horizon=6"], data="synthetic:shapes", steps=2,
                                                      budget_s=None, seed=0, extra_sets=TINY[1:8:2])  # fmt: skip


def test_peers_two_step_run_and_table(tmp_path, capsys):
    out = tmp_path / "peers"
    rc = peers.main(["--steps", "2", "--variants", "default", "--variant", "res=model.predict=residual",
                     "--tasks", "direction", "--out", str(out), "--jobs", "2",
                     "--json", str(tmp_path / "new" / "p.json"), *TINY])  # fmt: skip
    assert rc == 0
    got = capsys.readouterr()
    table = got.out
    assert "probe default_s0 on direction (trained): top-1 " in got.err  # each probe is said as it lands
    assert "probe default_s0 on direction (pixels): top-1 " in got.err
    for row in ("| default |", "| res |", "| default (random init) |", "| pixels |"):
        assert row in table
    assert "res (random init)" not in table  # --random-for defaults to the default variant
    res = json.loads((tmp_path / "new" / "p.json").read_text())  # --json makes its folder
    assert res["tasks"] == ["direction"] and set(res["variants"]) == {"default", "res"}
    v = res["variants"]["default"]
    assert v["runs"][0]["steps"] == 2 and v["runs"][0]["frames_per_s"] > 0
    assert {"trained", "std", "per_seed", "random_init"} <= set(v["tasks"]["direction"])
    assert 0.0 <= v["mean"] <= 1.0 and "direction" in res["pixels"]
    # a second call reuses the runs and probes on disk
    t0 = time.time()
    assert peers.main(["--steps", "2", "--variants", "default", "--tasks", "direction", "--out", str(out), *TINY]) == 0
    assert time.time() - t0 < 5
    capsys.readouterr()
    # a finished run trained otherwise than asked is refused, not reported as the run asked for
    for argv, expect in [(["--steps", "3"], "steps 2 (asked 3)"), (["--steps", "2", "--set", "train.lr=1e-5"],
                                                                   "no --set train.lr=1e-5 (asked)")]:  # fmt: skip
        assert peers.main([*argv, "--variants", "default", "--tasks", "direction", "--out", str(out), *TINY]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{out / 'default_s0'} was trained with other settings: " in err[0], err
        assert expect in err[0] and "remove that run folder or give another --out" in err[0]
    # without the default variant, the first variant's random init is the baseline
    assert peers.main(["--steps", "2", "--variants", "", "--variant", "res=model.predict=residual", "--tasks",
                       "direction", "--out", str(out), "--no-pixels", *TINY]) == 0  # fmt: skip
    assert "| res (random init) |" in capsys.readouterr().out


def test_probe_clip_len_reaches_the_synthetic_probes_only(tmp_path, monkeypatch, capsys):
    """--probe-clip-len sets the synthetic probes' clip length (its own cached file); basketball keeps its 6."""
    seen = {}

    def fake_run(self, args, log, budget_s=None):
        out = Path(args[args.index("--out") + 1])
        clip_len = args[args.index("--clip-len") + 1] if "--clip-len" in args else None
        seen[args[args.index("--data") + 1]] = (clip_len, out.name)
        out.write_text(json.dumps({"top1": 0.5}))
        return 0

    monkeypatch.setattr(Runner, "run", fake_run)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    r = Runner(tmp_path, verbose=False)
    for clip_len in (None, 20):
        for task in ("direction", "basketball"):
            r.probe(ckpt, task, "trained", Probe(1, 8, 8, clip_len), "t")
        kind = seen["synthetic:shapes:direction"]
        assert kind == ((None, "probe_direction_t_n8x1_trained.json") if clip_len is None
                        else ("20", "probe_direction_t_n8x1_T20_trained.json"))  # fmt: skip
        assert [v[0] for k, v in seen.items() if k != "synthetic:shapes:direction"] == ["6"]
    assert peers.main(["--probe-clip-len", "1", "--tasks", "direction"]) == 2
    assert "--probe-clip-len 1: need at least 2 frames" in capsys.readouterr().err


def test_resplit_reaches_the_folder_probes_only(tmp_path, monkeypatch, capsys):
    """--resplit N: folder tasks probe N splits (--resplit --seeds N, their own file); synthetic ones are unchanged."""
    seen = {}

    def fake_run(self, args, log, budget_s=None):
        out = Path(args[args.index("--out") + 1])
        seen[args[args.index("--data") + 1].split(":")[0]] = (args[args.index("--seeds") + 1], "--resplit" in args,
                                                              out.name)  # fmt: skip
        out.write_text(json.dumps({"top1": 0.5}))
        return 0

    monkeypatch.setattr(Runner, "run", fake_run)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    for task in ("direction", "basketball"):
        Runner(tmp_path, verbose=False).probe(ckpt, task, "trained", Probe(3, 8, 8, None, resplit=10), "t")
    assert seen["synthetic"] == ("3", False, "probe_direction_t_n8x3_trained.json")
    assert [v for k, v in seen.items() if k != "synthetic"] == [
        ("10", True, "probe_basketball_t_n8x3_rs10_trained.json")
    ]
    assert peers.main(["--resplit", "-1", "--tasks", "direction"]) == 2
    assert "--resplit -1" in capsys.readouterr().err


def test_readout_options_reach_stack_probes_only(tmp_path, monkeypatch, capsys):
    """--readout-bins / --readout-whole reach every stack probe (trained and random init, their own cached file);
    pixels and the faithful PredNet, whose readout is fixed, are probed as before."""
    import prednet2.checkpoint as ck

    load_checkpoint = ck.load_checkpoint
    seen = []

    def fake_run(self, args, log, budget_s=None):
        out = Path(args[args.index("--out") + 1])
        seen.append((out.parent.parent.name, args[args.index("--no-progress") + 1 :], out.name))
        out.write_text(json.dumps({"top1": 0.5}))
        return 0

    monkeypatch.setattr(Runner, "run", fake_run)
    monkeypatch.setattr(ck, "load_checkpoint", lambda p: {"config": {"model": {"preset": Path(p).parent.parent.name}}})
    for preset in ("tiny", "prednet"):
        (tmp_path / preset / "checkpoints").mkdir(parents=True)
        (tmp_path / preset / "checkpoints" / "last.pt").write_bytes(b"x")
    r = Runner(tmp_path, verbose=False)
    for preset, variant in [("tiny", "trained"), ("tiny", "random_init"), ("tiny", "pixels"), ("prednet", "trained")]:
        r.probe(tmp_path / preset / "checkpoints" / "last.pt", "direction", variant, Probe(1, 8, 8, None, 0, 2, True),
                "t")  # fmt: skip
    names = [(run, name) for run, _, name in seen]
    assert names == [("tiny", "probe_direction_t_n8x1_rb2w_trained.json"),
                     ("tiny", "probe_direction_t_n8x1_rb2w_random_init.json"),
                     ("tiny", "probe_direction_t_n8x1_pixels.json"),
                     ("prednet", "probe_direction_t_n8x1_trained.json")]  # fmt: skip
    assert [a for _, a, _ in seen] == [["--readout-bins", "2", "--readout-whole"], ["--readout-bins", "2",
                                       "--readout-whole", "--random-init"], ["--baseline", "pixels"], []]  # fmt: skip
    seen.clear()
    r.probe(tmp_path / "tiny" / "checkpoints" / "last.pt", "direction", "trained",
            Probe(1, 8, 8, readout_whole=False), "t")  # fmt: skip
    assert seen[0][1] == ["--no-readout-whole"] and seen[0][2] == "probe_direction_t_n8x1_rnw_trained.json"
    seen.clear()
    r.probe(tmp_path / "tiny" / "checkpoints" / "last.pt", "direction", "trained",
            Probe(1, 8, 8, readout_bins=2, readout_trend=True), "t")  # fmt: skip
    assert seen[0][1] == ["--readout-bins", "2", "--readout-trend"]
    assert seen[0][2] == "probe_direction_t_n8x1_rb2t_trained.json"
    assert readout_note(Probe(readout_bins=2, readout_whole=True)).startswith(
        "readout: 2 time bin(s), with the whole clip's mean for every stack checkpoint"
    )
    assert readout_note(Probe()) is None
    seen.clear()
    r.probe(tmp_path / "tiny" / "checkpoints" / "last.pt", "direction", "trained",
            Probe(1, 8, 8, readout="a,r,da,fo", readout_bins=1), "t")  # fmt: skip
    assert seen[0][1] == ["--readout", "a,r,da,fo", "--readout-bins", "1"]
    assert seen[0][2] == "probe_direction_t_n8x1_rpa-r-da-fob1_trained.json"
    assert readout_note(Probe(readout="a,fo")).startswith("readout: parts a,fo for every stack checkpoint")
    seen.clear()  # a part on its own grid: '@' kept out of the file name
    r.probe(tmp_path / "tiny" / "checkpoints" / "last.pt", "direction", "trained", Probe(1, 8, 8, readout="a,f@4"), "t")
    assert seen[0][1] == ["--readout", "a,f@4"] and seen[0][2] == "probe_direction_t_n8x1_rpa-fg4_trained.json"
    monkeypatch.setattr(ck, "load_checkpoint", load_checkpoint)  # a checkpoint that does not load is one line
    bad = tmp_path / "bad" / "checkpoints" / "last.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StudyFailure, match="bad/checkpoints/last.pt") as e:
        r.probe(bad, "kind", "trained", Probe(readout_bins=2), "u")
    assert "failed (exit" not in str(e.value)  # refused before any probe ran
    assert curve.main(["--readout-bins", "0", "--tasks", "direction"]) == 2
    assert "--readout-bins 0: need at least 1" in capsys.readouterr().err
    assert curve.main(["--readout", "a,q", "--tasks", "direction"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--readout: 'a,q' is not a comma-separated list of" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_curve_points_and_rising_flag(tmp_path, capsys):
    rc = curve.main(["--points", "0,2", "--tasks", "direction", "--out", str(tmp_path / "c"),
                     "--json", str(tmp_path / "new" / "c.json"), *TINY])  # fmt: skip
    assert rc == 0
    res = json.loads((tmp_path / "new" / "c.json").read_text())
    pts = res["variants"]["default"]["points"]
    assert set(pts) == {"0", "2"} and {"direction", "mean", "mean_std"} <= set(pts["2"])
    assert isinstance(res["variants"]["default"]["rising"], bool)
    assert (tmp_path / "c" / "curve.png").stat().st_size > 1000  # the chart without --png: in the study folder
    out = capsys.readouterr().out
    assert "(random init)" in out and f"chart: {tmp_path / 'c' / 'curve.png'}" in out
    args = curve.build_parser().parse_args(["--png", str(tmp_path / "mine.png")])
    assert curve.png_path(args) == str(tmp_path / "mine.png")  # --png: where it says
    # fewer points reuse the run (it saved them); another setting is refused, not reported as the run asked for
    assert curve.main(["--points", "2", "--tasks", "direction", "--out", str(tmp_path / "c"), *TINY]) == 0
    argv = ["--points", "2", "--tasks", "direction", "--out", str(tmp_path / "c"), *TINY, "--set", "train.lr=1e-5"]
    assert curve.main(argv) == 2 and "no --set train.lr=1e-5 (asked)" in capsys.readouterr().err


def _worker(tmp_path: Path, body: str) -> Path:
    """A child script that saves (writes tmp_path/saved) and exits 143 on SIGTERM, then runs ``body``."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import signal, sys, time\n"
        "def h(*a):\n"
        f"    open({str(tmp_path / 'saved')!r}, 'w').write('ok'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, h)\n" + body
    )
    return script


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_budget_sends_sigterm_and_waits(tmp_path, clock):
    """A run past its budget (wall seconds, or its own CPU seconds) gets SIGTERM and may save before it exits."""
    script = _worker(tmp_path, "t0 = time.time()\nwhile time.time() - t0 < 60:\n    sum(range(10000))  # burns CPU\n")
    r = Runner(tmp_path, verbose=False, budget_clock=clock)
    t0 = time.time()
    assert r.run([str(script)], "worker", budget_s=1.0) == 143
    assert time.time() - t0 < 50 and (tmp_path / "saved").read_text() == "ok"


def test_a_budget_run_fills_the_data_caches_first_outside_its_budget(tmp_path, monkeypatch):
    """--budget-s: each run's data is prepared first (train.py --prepare, same data and settings, no budget), so the
    first run of a fresh machine does not pay inside its budget for the cache the later runs read for free."""
    calls = []

    def fake_run(self, args, log, budget_s=None):
        calls.append((args, log, budget_s))
        if "--prepare" not in args:
            run = Path(args[args.index("--out") + 1])
            (run / "summary.json").write_text(json.dumps({"steps": 3, "frames_per_s": 10.0}))
        return 0

    monkeypatch.setattr(Runner, "run", fake_run)
    r = Runner(tmp_path, verbose=False)
    r.train("a", ["train.lr=1e-3", "data=synthetic:mix"], data="synthetic:shapes", steps=None, budget_s=5, seed=1)
    (prep, prep_log, prep_budget), (train, _, train_budget) = calls
    assert prep_log == "prepare_a" and prep_budget is None and train_budget == 5
    assert "--out" not in prep and prep[prep.index("--data") + 1] == "synthetic:mix"  # the variant's own data
    sets = [a for i, a in enumerate(train) if train[i - 1] == "--set"]
    assert [a for i, a in enumerate(prep) if prep[i - 1] == "--set"] == sets and "train.seed=1" in sets
    calls.clear()
    r.train("b", [], data="synthetic:shapes", steps=2, budget_s=None, seed=0)
    assert [log for _, log, _ in calls] == ["train_b"]  # a step count needs no warm cache to be fair
    monkeypatch.setattr(Runner, "run", lambda self, args, log, budget_s=None: 2)  # the data refused
    with pytest.raises(StudyFailure, match="preparing the data of c failed .exit 2.*prepare_c.log"):
        r.train("c", [], data="synthetic:shapes", steps=None, budget_s=5, seed=0)
    assert not (tmp_path / "c").exists()  # nothing left that a rerun would call unfinished


def test_scripts_have_help(tmp_path):
    # Run as a user runs them, from another folder: every import must resolve without the repo root on sys.path.
    for name in ("peers.py", "curve.py", "study_table.py"):
        p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--help"], capture_output=True, text=True,
                           cwd=tmp_path)  # fmt: skip
        assert p.returncode == 0 and "--json" in p.stdout, p.stderr


def test_a_run_cut_short_by_ctrl_c_is_not_reused(tmp_path, monkeypatch):
    """train.py saves and writes summary.json on Ctrl-C (exit 130); the study drops that run, so a rerun trains it
    again instead of reusing a run stopped short of its steps or budget as finished."""
    r = Runner(tmp_path, verbose=False)

    def interrupted(self, args, log, budget_s=None):
        if "--prepare" in args:  # the budget run's untimed data preparation
            return 0
        run = Path(args[args.index("--out") + 1])
        (run / "summary.json").write_text(json.dumps({"steps": 3, "status": "interrupted"}))
        return 130

    monkeypatch.setattr(Runner, "run", interrupted)
    kw = dict(data="synthetic:shapes", steps=None, budget_s=6.0, seed=0)
    with pytest.raises(KeyboardInterrupt):
        r.train("x", [], **kw)
    assert not (tmp_path / "x").exists()

    def finished(self, args, log, budget_s=None):
        if "--prepare" in args:  # the budget run's untimed data preparation
            return 0
        run = Path(args[args.index("--out") + 1])
        (run / "summary.json").write_text(json.dumps({"steps": 9, "status": "interrupted", "frames_per_s": 1.0}))
        return 143  # the budget's SIGTERM

    monkeypatch.setattr(Runner, "run", finished)
    assert r.train("x", [], **kw)["steps"] == 9


def test_ctrl_c_stops_the_child_and_waits_for_it(tmp_path):
    """Ctrl-C reaching only the study (not its child) still stops the child, a budget run included, before the
    study exits."""
    script = _worker(tmp_path, f"open({str(tmp_path / 'started')!r}, 'w').write('ok')\ntime.sleep(60)\n")
    r = Runner(tmp_path, verbose=False)
    t0 = time.time()

    def interrupt_once_started():
        while not (tmp_path / "started").exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler for the test: a suite started in the background by a shell inherits SIGINT ignored
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Thread(target=interrupt_once_started, daemon=True)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            r.run([str(script)], "worker", budget_s=600.0)
    finally:
        signal.signal(signal.SIGINT, old)
    assert time.time() - t0 < 50 and (tmp_path / "saved").read_text() == "ok"


def test_a_budget_too_small_to_start_train_is_a_clear_error(tmp_path, monkeypatch):
    """SIGTERM before train.py installs its handler leaves no summary (exit -15): that is the budget's fault, said so;
    the folder holding only the request is removed, so a rerun with a larger budget is not refused as unfinished."""

    def fake_run(self, args, log, budget_s=None):
        (self.out / "logs" / f"{log}.log").write_text("")
        return 0 if "--prepare" in args else -signal.SIGTERM  # the untimed preparation has no budget to run out of

    monkeypatch.setattr(Runner, "run", fake_run)
    r = Runner(tmp_path, verbose=False)
    with pytest.raises(StudyError, match=r"--budget-s 2: training v_s0 was stopped before train.py had started"):
        r.train("v_s0", [], data="synthetic:shapes", steps=None, budget_s=2.0, seed=0)
    assert not (tmp_path / "v_s0").exists()
