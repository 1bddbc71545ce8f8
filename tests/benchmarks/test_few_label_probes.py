"""benchmarks/few_label_probes.py: every probe's row on one feature set, `base` equal to eval.linear_probe's own
few-label figure, bad options refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import few_label_probes  # noqa: E402
from prednet2.eval.linear_probe import main as probe_main  # noqa: E402

from prednet2 import build_model  # noqa: E402
from prednet2.checkpoint import save_checkpoint  # noqa: E402
from prednet2.config import Config  # noqa: E402

DATA = ["--data", "synthetic:shapes:direction", "--n-train", "128", "--n-test", "24", "--seeds", "2",
        "--device", "cpu", "--baseline", "pixels"]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    cfg = Config.from_dict({"model": {"channels": [4, 8]}, "data": {"size": [32, 32], "clip_len": 6},
                            "motion": {"enabled": False}})  # fmt: skip
    ck = tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt"
    save_checkpoint(ck, model=build_model(cfg.model), optimizer=None, config=cfg, step=1)
    return ck


def test_prints_each_probe_and_base_matches_the_linear_probe(checkpoint, tmp_path, capsys):
    out = tmp_path / "fl.json"
    argv = ["--checkpoint", str(checkpoint), *DATA, "--shots", "5", "--probes", "base,pool,pca8,ncm"]
    assert few_label_probes.main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(f"  {n} " in text for n in ("base", "pool", "pca8", "ncm"))
    got = json.loads(out.read_text())
    assert list(got["probes"]) == ["base", "pool", "pca8", "ncm"] and got["shots"] == 5 and got["n_pool"] == 128
    assert all(len(r["per_seed"]) == 2 and 0 <= r["top1"] <= 1 for r in got["probes"].values())
    ref = tmp_path / "probe.json"
    assert probe_main(["--checkpoint", str(checkpoint), *DATA, "--shots", "5", "--out", str(ref)]) == 0
    assert got["probes"]["base"]["top1"] == pytest.approx(json.loads(ref.read_text())["top1"])


BAD = [(["--probes", "base,lda"], "lda"), ([], "give --shots K, a number of labelled videos"),
       (["--shots", "all"], "--shots all: this script compares few-label"),
       (["--shots", "5", "--probes", "base,pool,base"], "base given twice"),
       (["--shots", "1"], "--shots 1: these probes pick C by 5-fold cross-validation"),
       (["--shots", "5", "--probes", "pool,pca200"], "--probes pca200: the pool of 128 train videos")]  # fmt: skip


@pytest.mark.parametrize(("extra", "words"), BAD)
def test_bad_options_are_one_line_and_exit_2(checkpoint, extra, words, capsys):
    with pytest.raises(SystemExit) as e:
        few_label_probes.main(["--checkpoint", str(checkpoint), *DATA, *extra])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and words in err


def test_ctrl_c_is_one_line_and_130():
    """Ctrl-C is one line naming the script, not the studies' line (it keeps no runs or probes to resume)."""
    code = ("import runpy, sys\n"
            "import prednet2.eval.featureset as f\n"
            "def stop(*a, **k):\n"
            "    raise KeyboardInterrupt\n"
            "f.FeatureSource = stop\n"
            "sys.argv = ['few_label_probes.py', '--checkpoint', 'x.pt', '--data', 'synthetic:shapes:direction',"
            " '--shots', '5']\n"
            f"runpy.run_path({str(ROOT / 'benchmarks' / 'few_label_probes.py')!r}, run_name='__main__')\n")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 130
    assert p.stderr.strip().splitlines() == ["few_label_probes.py: interrupted (Ctrl-C)"]
