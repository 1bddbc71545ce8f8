"""benchmarks/measures.py: the seven measures' table from cached probes, the pairing, bad input (no probe runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import measures  # noqa: E402


def fake_run(root: Path, name: str, top1: dict[str, float], random_init: dict[str, float] | None = None) -> Path:
    """A run folder with a checkpoint file and every measure's probe already cached (so nothing is run)."""
    ck = root / name / "checkpoints" / "last.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"not read: every probe is cached")
    for kind, figs in (("trained", top1), ("random_init", random_init or {})):
        for m, v in figs.items():
            out = root / name / "eval" / f"measure_{m}_{kind}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"top1": v / 100}))
    return root / name


def test_table_pairs_runs_by_position_and_marks_a_fall_beyond_two_standard_errors(tmp_path, capsys):
    ri = {"dirK5": 10.0, "bbres": 30.0}
    a0 = fake_run(tmp_path, "a_s0", {"dirK5": 20.0, "bbres": 40.0}, ri)
    fake_run(tmp_path, "a_s1", {"dirK5": 22.0, "bbres": 42.0})
    b0 = fake_run(tmp_path, "b_s0", {"dirK5": 25.0, "bbres": 38.0}, {"dirK5": 12.0, "bbres": 30.0})
    fake_run(tmp_path, "b_s1", {"dirK5": 26.0, "bbres": 39.5})
    argv = ["--variant", f"a={a0},{tmp_path / 'a_s1'}", "--variant", f"b={b0},{tmp_path / 'b_s1'}"]
    argv += [
        "--measures",
        "dirK5,bbres",
        "--out",
        str(tmp_path / "logs"),
        "--quiet",
        "--json",
        str(tmp_path / "m.json"),
    ]
    assert measures.main(argv) == 0
    res = json.loads((tmp_path / "m.json").read_text())
    s = res["summary"]
    assert s["a"]["mean"] == {"dirK5": pytest.approx(21.0), "bbres": pytest.approx(41.0)}
    assert s["b"]["gain_over_random_init"] == {"dirK5": pytest.approx(13.5), "bbres": pytest.approx(8.75)}
    # b - a per seed: dirK5 +5, +4 (mean +4.5, se 0.5); bbres -2, -2.5 (mean -2.25, se 0.25: beyond 2 se)
    vs = s["b"]["vs_ref"]
    assert {k: vs[k] for k in ("ref", "pairs", "below_by_2se")} == {"ref": "a", "pairs": 2, "below_by_2se": ["bbres"]}
    assert vs["per_seed"] == {"seven": [pytest.approx(1.5), pytest.approx(0.75)]}  # both measures are in seven
    table = capsys.readouterr().out
    assert "+4.50 ± 0.50" in table and "**-2.25 ± 0.25**" in table and "b − its random init" in table
    assert "| +1.12 ± 0.37 |" in table  # the mean over the two measures, paired: +1.5 and +0.75 (se 0.375)
    assert "b − a, each set's mean per training seed: seven (bbres, dirK5 of its 7) +1.50 / +0.75" in table


@pytest.mark.parametrize(
    "argv, says",
    [
        ([], "give at least one --variant"),
        (["--variant", "a"], "expected NAME=RUN,RUN"),
        (["--variant", "a=nope"], "--variant a: nope is neither a checkpoint nor a run folder"),
        (["--variant", "a=RUN0", "--measures", "dirK5,speed"], "--measures: unknown ['speed']"),
        (["--variant", "a=RUN0", "--ref", "b"], "--ref 'b': not a --variant"),
        (["--variant", "a=RUN0,RUN1", "--variant", "b=RUN0"], "pair by position with --ref a's 2, but b has 1"),
        (["--variant", "a=RUN0", "--variant", "a=RUN1"], "given twice"),
        (["--variant", "a=,"], "--variant 'a=,': no run given"),
        (["--variant", "a=RUN0,RUN1,RUN0"], "is the same checkpoint as"),
        (["--variant", "a=RUN0", "--measures", "dirK5,bbres,dirK5"], "--measures: dirK5 given twice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, says):
    runs = {f"RUN{i}": str(fake_run(tmp_path, f"r{i}", {})) for i in range(2)}
    argv = [x.replace("RUN0", runs["RUN0"]).replace("RUN1", runs["RUN1"]) for x in argv]
    assert measures.main([*argv, "--out", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("text", ['{"top', "{}", "[]"])
def test_a_cached_file_that_is_no_probe_result_is_one_line_naming_it(tmp_path, capsys, text):
    run = fake_run(tmp_path, "r", {"dirK5": 20.0}, {"dirK5": 10.0})
    (run / "eval" / "measure_dirK5_trained.json").write_text(text)
    assert measures.main(["--variant", f"a={run}", "--measures", "dirK5", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{run / 'eval' / 'measure_dirK5_trained.json'}: not a probe result" in err


def test_a_missing_basketball_folder_is_refused_before_any_probe(tmp_path, capsys, monkeypatch):
    run = fake_run(tmp_path, "r", {})
    monkeypatch.setitem(measures.MEASURES, "bbres", (str(tmp_path / "nope"), []))  # as PREDNET2_BASKETBALL=nope
    assert measures.main(["--variant", f"a={run}", "--measures", "dirK5,bbres", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"bbres: {tmp_path / 'nope'} not found (set PREDNET2_BASKETBALL" in err
    monkeypatch.setitem(measures.MEASURES, "bbK5", (str(tmp_path / "nope"), []))
    assert measures.main(["--variant", f"a={run}", "--measures", "bbK5", "--out", str(tmp_path / "o")]) == 2
    assert "--measures bbK5: " in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, says", [(["--jobs", "0"], "--jobs"), (["--json", "{f}/x.json"], "--json")])
def test_bad_options_are_refused_before_any_probe(tmp_path, capsys, argv, says):
    run = fake_run(tmp_path, "r", {})
    (tmp_path / "f").write_text("a file, not a folder")
    argv = [x.replace("{f}", str(tmp_path / "f")) for x in argv]
    with pytest.raises(SystemExit) as e:
        measures.main(["--variant", f"a={run}", *argv])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "r" / "eval").exists()  # nothing was probed


def test_probes_run_once_per_checkpoint_with_the_measures_arguments_and_rerun_when_it_changes(tmp_path, monkeypatch):
    """The probe commands (faked: each writes its --out), each checkpoint's own files, and a stale file read again."""
    import os

    calls = []

    def fake(self, args, log, budget_s=None):
        calls.append(args)
        out = Path(args[args.index("--out") + 1])
        out.write_text(json.dumps({"top1": 0.5 if "--random-init" in args else 0.6}))
        return 0

    monkeypatch.setattr(measures.Runner, "run", fake)
    run = fake_run(tmp_path, "r", {})
    step = run / "checkpoints" / "step_250.pt"
    step.write_bytes(b"x")
    argv = ["--variant", f"a={run}", "--variant", f"b={step}", "--variant", f"c={run}", "--ref", "a"]
    argv += ["--measures", "bbres,dirK5", "--out", str(tmp_path / "o"), "--quiet"]
    assert measures.main(argv) == 0
    # a and c are the same run: 2 checkpoints x 2 measures x (trained, random init) = 8 probes, not 12
    assert len(calls) == 8
    bb = next(a for a in calls if "--resplit" in a and "--random-init" not in a and str(step) in a)
    assert bb[bb.index("--seeds") + 1] == "10" and bb[bb.index("--clip-len") + 1] == "6"
    k5 = next(a for a in calls if "synthetic:shapes:direction" in a)
    assert k5[k5.index("--shots") + 1] == "5" and k5[k5.index("--n-train") + 1] == "512"
    assert (run / "eval" / "measure_dirK5_trained.json").is_file()
    assert (run / "eval" / "measure_dirK5_trained_step_250.json").is_file()
    assert measures.main(argv) == 0 and len(calls) == 8  # everything cached: nothing runs again
    later = (run / "eval" / "measure_dirK5_trained.json").stat().st_mtime + 10
    os.utime(run / "checkpoints" / "last.pt", (later, later))  # last.pt rewritten after its probes
    assert measures.main(argv) == 0 and len(calls) == 12  # its four files are read again, step_250's are not


def test_a_probe_that_refuses_its_checkpoint_is_bad_input_with_the_probes_own_line(tmp_path, capsys):
    """A file that is no checkpoint reaches the probe (the table reads no checkpoint itself): eval.linear_probe's
    one-line refusal is repeated, exit 2, not "failed (exit 2); see the log"."""
    run = fake_run(tmp_path, "r", {})
    rc = measures.main(["--variant", f"a={run}", "--measures", "dirK5", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"dirK5 on {run / 'checkpoints' / 'last.pt'} (trained): " in err[0] and "last.pt" in err[0].split("): ")[1]
    assert "(log: " in err[0] and "Traceback" not in err[0] and "error: " not in err[0].split("(trained): ")[1]


def test_measure_sets_expand_and_the_default_is_the_seven():
    assert measures.parse_measures(measures.build_parser().parse_args(["--variant", "a=x"]).measures) == list(
        measures.SEVEN
    )
    held = measures.parse_measures("heldout")
    assert held == ["spin", "accel", "loom", "count", "spinK5", "accelK5", "loomK5", "countK5"]
    assert measures.MEASURES["loomK5"] == ("synthetic:heldout:loom", [*measures._FEW, "--shots", "5"])
    assert measures.parse_measures("dirK5,heldout")[:2] == ["dirK5", "spin"]
    held2 = measures.parse_measures("heldout2")
    assert held2 == ["collide", "occlude", "follow", "collideK5", "occludeK5", "followK5"]
    assert measures.MEASURES["followK5"] == ("synthetic:heldout2:follow", [*measures._FEW, "--shots", "5"])
    assert measures.parse_measures("heldout,heldout2") == held + held2
    # the few-label basketball measure is in no set: asked for by name only
    assert all("bbK5" not in ms for ms in measures.SETS.values())
    assert measures.parse_measures("bbK5") == ["bbK5"]
    assert measures.MEASURES["bbK5"][1] == ["--seeds", "10", "--clip-len", "6", "--shots", "5"]
    with pytest.raises(measures.StudyError, match="or the sets seven, heldout, heldout2"):
        measures.parse_measures("heldot")
    with pytest.raises(measures.StudyError, match="spin given twice"):
        measures.parse_measures("heldout,spin")


def test_variants_with_one_model_data_and_motion_config_share_one_random_init(tmp_path, monkeypatch):
    calls = []

    def fake(self, args, log, budget_s=None):
        calls.append(args)
        Path(args[args.index("--out") + 1]).write_text(json.dumps({"top1": 0.5}))
        return 0

    monkeypatch.setattr(measures.Runner, "run", fake)
    base = {"model": {"preset": "tiny"}, "data": {"clip_len": 20}, "motion": {"enabled": True}, "train": {"lr": 0.003}}
    runs = {}
    for name, over in (("a", {}), ("b", {"train": {"lr": 0.001}}), ("c", {"model": {"preset": "small"}})):
        runs[name] = fake_run(tmp_path, name, {})
        (runs[name] / "config.yaml").write_text(json.dumps({**base, **over}))  # JSON is YAML
    argv = [x for n, r in runs.items() for x in ("--variant", f"{n}={r}")]
    assert measures.main([*argv, "--measures", "dirK5", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    ri = sorted(a[a.index("--checkpoint") + 1] for a in calls if "--random-init" in a)
    # b differs from a in train.* only: a's random init stands for both; c's model differs: its own
    assert ri == [str(runs["a"] / "checkpoints" / "last.pt"), str(runs["c"] / "checkpoints" / "last.pt")]
    assert len(calls) == 5  # 3 trained + 2 random init


def test_a_run_stored_before_a_key_existed_shares_the_random_init_of_one_that_states_its_old_value(tmp_path):
    """config.yaml read as the library loads it: a key added later (model.flow_horizon) absent in one run and at its
    value of that time in another is the same model; another value, or a config that does not load, is not."""
    base = {"model": {"preset": "tiny"}, "data": {"clip_len": 20}, "motion": {"enabled": True}}
    keys = {}
    models = {"old": {}, "new": {"flow_horizon": 1}, "ahead": {"flow_horizon": 2}, "bad": {"nope": 1}}
    for name, model in models.items():
        run = fake_run(tmp_path, name, {})
        (run / "config.yaml").write_text(json.dumps({**base, "model": {"preset": "tiny", **model}}))
        keys[name] = measures.random_init_key(run / "checkpoints" / "last.pt")
    assert keys["old"] == keys["new"] != keys["ahead"]
    assert keys["bad"] == str((tmp_path / "bad" / "checkpoints" / "last.pt").resolve())  # shares with no other


def test_readout_reads_one_variants_runs_on_other_parts_in_files_of_their_own(tmp_path, monkeypatch):
    """The same runs under two variants, one with --readout: each probed twice (once per readout), paired."""
    calls = []

    def fake(self, args, log, budget_s=None):
        calls.append(args)
        top1 = (0.5 if "--random-init" in args else 0.6) + (0.1 if "--readout" in args else 0.0)
        Path(args[args.index("--out") + 1]).write_text(json.dumps({"top1": top1}))
        return 0

    monkeypatch.setattr(measures.Runner, "run", fake)
    r0, r1 = fake_run(tmp_path, "r0", {}), fake_run(tmp_path, "r1", {})
    argv = ["--variant", f"a={r0},{r1}", "--variant", f"b={r0},{r1}", "--readout", "b=a, r,fo"]
    argv += ["--measures", "dirK5", "--out", str(tmp_path / "o"), "--quiet", "--json", str(tmp_path / "m.json")]
    assert measures.main(argv) == 0
    assert len(calls) == 6  # 2 runs x 2 readouts trained, and each readout's random init
    other = [a for a in calls if "--readout" in a]
    assert len(other) == 3 and all(a[a.index("--readout") + 1] == "a,r,fo" for a in other)
    assert (r0 / "eval" / "measure_dirK5_trained_rpa-r-fo.json").is_file()
    assert (r0 / "eval" / "measure_dirK5_random_init_rpa-r-fo.json").is_file()
    assert (r0 / "eval" / "measure_dirK5_trained.json").is_file()  # the run's own readout, apart
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["readouts"] == {"a": None, "b": "a,r,fo"}
    assert res["summary"]["b"]["mean"]["dirK5"] == pytest.approx(70.0)
    assert res["summary"]["b"]["vs_ref"]["per_seed"]["seven"] == [pytest.approx(10.0)] * 2
    assert measures.main(argv) == 0 and len(calls) == 6  # cached


@pytest.mark.parametrize(
    "readout, says",
    [
        ("b=a,r", "--readout 'b=a,r': 'b' is not a --variant"),
        ("a", "--readout 'a': expected NAME=PARTS"),
        ("a=", "--readout 'a=': expected NAME=PARTS"),
        ("a=a,x", "--readout a: 'a,x' is not a comma-separated list of"),
    ],
)
def test_bad_readout_is_one_line_and_exit_2(tmp_path, capsys, readout, says):
    run = fake_run(tmp_path, "r", {})
    argv = ["--variant", f"a={run}", "--readout", readout, "--out", str(tmp_path / "o")]
    assert measures.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_variants_readout_given_twice_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path, "r", {})
    argv = ["--variant", f"a={run}", "--readout", "a=a,r", "--readout", "a=a,fo", "--out", str(tmp_path / "o")]
    assert measures.main(argv) == 2
    assert "--readout 'a' given twice" in capsys.readouterr().err


def test_a_measure_in_no_set_has_no_per_set_line(tmp_path, capsys):
    a0 = fake_run(tmp_path, "a_s0", {"bbK5": 30.0}, {"bbK5": 26.0})
    b0 = fake_run(tmp_path, "b_s0", {"bbK5": 31.0}, {"bbK5": 26.0})
    argv = ["--variant", f"a={a0}", "--variant", f"b={b0}", "--measures", "bbK5", "--out", str(tmp_path / "o")]
    assert measures.main([*argv, "--quiet", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "| b − a, paired (1) | +1.00 | +1.00 |" in out and "each set's mean" not in out
    assert json.loads((tmp_path / "m.json").read_text())["summary"]["b"]["vs_ref"]["per_seed"] == {}


def test_pixels_are_read_once_on_the_reference_and_tabulated(tmp_path, capsys):
    a0 = fake_run(tmp_path, "a_s0", {"dirK5": 20.0, "bbK5": 30.0}, {"dirK5": 10.0, "bbK5": 26.0})
    b0 = fake_run(tmp_path, "b_s0", {"dirK5": 24.0, "bbK5": 31.0}, {"dirK5": 11.0, "bbK5": 25.0})
    for m, v in (("dirK5", 15.0), ("bbK5", 27.0)):  # only the reference's first run holds pixel readings
        (a0 / "eval" / f"measure_{m}_pixels.json").write_text(json.dumps({"top1": v / 100}))
    argv = ["--variant", f"a={a0}", "--variant", f"b={b0}", "--measures", "dirK5,bbK5", "--pixels"]
    assert measures.main([*argv, "--out", str(tmp_path / "o"), "--quiet", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "| pooled pixels | 15.0 | 27.0 | 21.00 |" in out
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["pixels"] == {"dirK5": pytest.approx(15.0), "bbK5": pytest.approx(27.0)}
    assert res["summary"]["b"]["gain_over_pixels"] == {"dirK5": pytest.approx(9.0), "bbK5": pytest.approx(4.0)}
    assert not (b0 / "eval" / "measure_dirK5_pixels.json").exists()  # b's pixels are a's: not probed again
    # without --pixels: no row, no key
    assert measures.main([*argv[:-1], "--out", str(tmp_path / "o"), "--quiet", "--json", str(tmp_path / "n.json")]) == 0
    assert "pooled pixels" not in capsys.readouterr().out
    assert json.loads((tmp_path / "n.json").read_text())["pixels"] is None
