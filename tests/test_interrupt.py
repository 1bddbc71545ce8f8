"""prednet2.interrupt: Ctrl-C in a tool is one line and exit 130; a stream's first Ctrl-C asks to stop, the second
aborts; every tool's entry point goes through one of the two guards."""

import os
import re
import signal
import sys
from pathlib import Path

import pytest

from prednet2 import cli
from prednet2.interrupt import EXIT_INTERRUPTED, run_cli, stop_on_sigint

ROOT = Path(__file__).resolve().parents[1]


def test_run_cli_turns_ctrl_c_into_one_line_and_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert run_cli(interrupted, prog="tool") == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.strip().splitlines() == ["tool: interrupted (Ctrl-C)"]
    assert run_cli(lambda: None) == 0 and run_cli(lambda: 2) == 2
    with pytest.raises(ValueError):  # anything else is not swallowed
        run_cli(lambda: int("x"))


def test_stop_on_sigint_first_sets_the_flag_second_aborts(capsys):
    before = signal.getsignal(signal.SIGINT)
    with stop_on_sigint() as flag:
        assert not flag.stop
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.stop and "Ctrl-C again aborts" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_the_prednet2_command_turns_ctrl_c_into_130(monkeypatch, capsys):
    mod = type(sys)("fake_tool")

    def main(argv):
        raise KeyboardInterrupt

    mod.main = main
    monkeypatch.setitem(sys.modules, "fake_tool", mod)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_tool", "a tool interrupted at once"))
    assert cli.main(["fake"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["prednet2 fake: interrupted (Ctrl-C)"]
    assert cli._running is None


def test_the_console_script_loads_nothing_heavy_before_its_guard():
    """The installed `prednet2` script runs `from prednet2.cli import main` before any guard: that import must not
    load torch (seconds, where a Ctrl-C was a traceback); the package's names still import on first use."""
    import subprocess

    code = (
        "import sys, prednet2.cli; print(sorted(m for m in ('torch', 'yaml', 'numpy') if m in sys.modules)); "
        "from prednet2 import PredictiveStack, build_model; import prednet2; print('torch' in sys.modules, "
        "'PredictiveStack' in dir(prednet2))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True True"]
    with pytest.raises(AttributeError, match="module 'prednet2' has no attribute 'nope'"):
        import prednet2

        prednet2.nope  # noqa: B018


def test_every_tool_entry_point_is_guarded():
    """Each runnable module's `__main__` block exits through run_cli or the studies' main_guard (which catches
    Ctrl-C too), so no tool prints a traceback on Ctrl-C."""
    files = [*ROOT.glob("eval/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("datasets/*.py"),
             ROOT / "prednet2" / "stream.py"]  # fmt: skip
    unguarded = []
    for f in files:
        text = f.read_text()
        if 'if __name__ == "__main__":' not in text:
            continue
        tail = text.split('if __name__ == "__main__":', 1)[1]
        if not re.search(r"sys\.exit\((run_cli|main_guard)\(main\)\)", tail):
            unguarded.append(f.relative_to(ROOT).as_posix())
    assert unguarded == []
    study = (ROOT / "benchmarks" / "study.py").read_text()
    assert "except KeyboardInterrupt" in study.split("def main_guard", 1)[1]


def test_main_guard_says_a_rerun_resumes_only_where_it_does(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from study import main_guard

    def interrupted():
        raise KeyboardInterrupt

    assert main_guard(interrupted) == 130
    assert "rerunning resumes" in capsys.readouterr().err
    assert main_guard(interrupted, resumes=False) == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith("interrupted (Ctrl-C)") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, prog",
    [
        (["train.py", "--data", "synthetic:shapes", "--out", "OUT"], "train.py: "),
        (["-m", "datasets.inspect", "synthetic:shapes"], ""),
        (["-m", "prednet2.stream", "x.mp4", "--checkpoint", "x.pt"], ""),
        (["-m", "eval.linear_probe", "--checkpoint", "x.pt", "--data", "synthetic:shapes:direction"], ""),
    ],
)
def test_ctrl_c_while_torch_loads_is_one_line(tmp_path, argv, prog):
    """A Ctrl-C in the first seconds, while torch loads (here: a torch whose import is interrupted), is one line and
    130 for the documented commands, not a traceback (train.py loads torch while checking --data, outside any guard;
    `-m datasets.inspect` and `-m prednet2.stream` at import)."""
    import subprocess

    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    argv = [a.replace("OUT", str(tmp_path / "run")) for a in argv]
    p = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 130 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == [f"{prog}interrupted (Ctrl-C)" + ("" if prog else " while loading")]


BENCHMARK_SCRIPTS = sorted(
    f.name for f in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in f.read_text()
)


@pytest.mark.parametrize("script", BENCHMARK_SCRIPTS)
def test_ctrl_c_while_a_benchmark_loads_is_one_line(tmp_path, script):
    """`python benchmarks/X.py` loads torch, numpy or cv2 at import, before main's run_cli guard: a Ctrl-C then (here:
    each of them interrupted as it is imported) is one line and 130 (prednet2.interrupt.quiet_loading), not a
    traceback. A script that loads none of them before parsing answers --help."""
    import subprocess

    fake = tmp_path / "fake"
    for name in ("torch", "numpy", "cv2"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--help"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    if p.returncode == 0:  # nothing heavy before the parser
        assert "usage:" in p.stdout
    else:
        assert p.returncode == 130
        lines = p.stderr.strip().splitlines()  # "while loading" before main, run_cli's line inside it
        assert len(lines) == 1 and lines[0] in (f"{script}: interrupted (Ctrl-C){s}" for s in (" while loading", ""))
