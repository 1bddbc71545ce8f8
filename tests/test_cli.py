"""prednet2.cli: the ``prednet2`` console script lists its subcommands and each runs its module's own main."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_SETS

from prednet2 import cli

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_subcommand(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for name in ("train", "inspect", "probe", "next-step", "surprise", "stream", "report"):
        assert f"\n  {name} " in out


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_subcommand_names_itself_in_its_usage(name, capsys):
    code, out, _ = _run([name, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: prednet2 {name} ")
    assert cli.prog_name("python -m x") == "python -m x"  # outside a subcommand, a module keeps its own name


def test_every_command_resolves_to_a_main():
    for name, (module, _) in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_subcommand_help_is_the_module_parser(name, capsys):
    code, out, _ = _run([name, "--help"], capsys)
    assert code == 0 and "usage:" in out and "--" in out


def test_unknown_or_missing_command_exits_2(capsys):
    code, _, err = _run(["nope"], capsys)
    assert code == 2 and err.strip() == (
        "prednet2: error: unknown command 'nope'; choose one of " + ", ".join(cli.COMMANDS)
    )
    code, _, err = _run([], capsys)
    assert code == 2 and "usage: prednet2 COMMAND" in err


def test_train_subcommand_names_itself_in_errors(capsys):
    code, _, err = _run(["train", "--out", "x"], capsys)
    assert code == 2 and err.startswith("prednet2 train: error: ") and len(err.strip().splitlines()) == 1


def test_prednet2_train_equals_train_py(tmp_path, capsys):
    """The same arguments through ``prednet2 train`` and through train.py's main give identical weights."""
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--data", "synthetic:shapes", "--steps", "3", "--no-progress"]
    args += [a for s in TINY_SETS for a in ("--set", s)]
    assert script.main(args + ["--out", str(tmp_path / "a")]) == 0
    code, out, _ = _run(["train", *args, "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "done: 3 steps" in out
    a = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_console_script_installed():
    """The installed entry point (setup.py console_scripts) answers --help (one subprocess)."""
    exe = Path(sys.executable).with_name("prednet2")
    if not exe.exists():
        pytest.skip("prednet2 console script not installed in this environment (pip install -e .)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "next-step" in p.stdout


def test_out_file_and_out_folder_refuse_the_other_kind(tmp_path):
    (tmp_path / "f").write_text("a file")
    assert cli.out_file(str(tmp_path / "new.json")) and cli.out_folder(str(tmp_path / "new_dir"))
    for check, path, msg in (
        (cli.out_file, tmp_path, "is a folder; give the path of a file"),
        (cli.out_folder, tmp_path / "f", "is a file, not a folder"),
        (cli.out_file, tmp_path / "f" / "x.json", "which is a file, not a folder"),
        (cli.out_folder, tmp_path / "f" / "sub", "which is a file, not a folder"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=msg):
            check(str(path))


def test_python_m_prednet2_cli_names_the_subcommand_in_errors():
    """``python -m prednet2.cli CMD`` runs cli.py as __main__; its errors still name ``prednet2 CMD``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "prednet2.cli", "inspect", "/no/such/folder"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("prednet2 inspect: error:"), p.stderr
    assert "Traceback" not in p.stderr


def test_a_value_starting_with_a_dash_gets_the_equals_form_hint(capsys):
    p = cli.OneLineParser(prog="tool")
    p.add_argument("--points")
    p.add_argument("--out")
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--points", "-2,2"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "expected one argument (a value starting with '-' is written --points=-2,2)" in err
    assert p.parse_args(["--points=-2,2"]).points == "-2,2"
    for argv in (["--points"], ["--points", "--out", "x"]):  # a value missing, or another option next: no hint
        with pytest.raises(SystemExit):
            p.parse_args(argv)
        assert "written" not in capsys.readouterr().err


def test_a_tilde_after_equals_is_the_home_folder_not_a_folder_named_tilde(tmp_path, monkeypatch):
    # The shell expands only a word that starts with ~: --out=~/runs/x reached prednet2 as written, and training
    # made ./~/runs/x in the working folder.
    from prednet2.checkpoint import resolve_checkpoint
    from prednet2.train_cli import parse_args

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    args = parse_args(["--data", "synthetic:shapes", "--out=~/runs/x", "--config=~/c.yaml"])
    assert (args.out, args.config) == (str(tmp_path / "runs/x"), str(tmp_path / "c.yaml"))
    assert cli.out_file("~/p.json") == str(tmp_path / "p.json") and cli.out_folder("~/d") == str(tmp_path / "d")
    (tmp_path / "r/checkpoints").mkdir(parents=True)
    (tmp_path / "r/checkpoints/last.pt").write_bytes(b"")
    assert resolve_checkpoint("~/r") == tmp_path / "r/checkpoints/last.pt"
    assert not (tmp_path / "~").exists()
