"""``prednet2 COMMAND [options]``: one command for every prednet2 tool (the installed console script).

Each subcommand hands its arguments to the ``main(argv)`` of the module that also runs on its own, so
``prednet2 train ...`` is ``python train.py ...`` and ``prednet2 probe ...`` is ``python -m eval.linear_probe ...``:
the same parser, the same options, the same exit status. A new tool is one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

# name -> (module whose main(argv) runs it, one line for `prednet2 --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("prednet2.train_cli", "train a stack on a video folder or a synthetic set (python train.py)"),
    "inspect": ("prednet2.datasets.inspect", "what a video folder yields, and what was skipped and why"),
    "probe": ("prednet2.eval.linear_probe", "linear probe of frozen features on a labelled set"),
    "knn": ("prednet2.eval.knn", "cosine k-NN top-1 of frozen features (no fitting) on a labelled set"),
    "embed": ("prednet2.eval.embed", "write one embedding per video (or clip) of a folder to an .npz"),
    "search": ("prednet2.eval.search", "nearest videos to a query video in an embeddings file"),
    "cluster": ("prednet2.eval.cluster", "k-means on embeddings; NMI/ARI against labels when present"),
    "next-step": ("prednet2.eval.next_step", "next-step prediction error against copy-last and the mean"),
    "flow-probe": ("prednet2.eval.flow_probe", "how much of the coming optical flow each unit's state holds"),
    "surprise": ("prednet2.eval.surprise", "per-frame surprise and its AUROC on the anomaly set"),
    "stream": ("prednet2.stream", "run a checkpoint on a video, folder or camera, optionally learning online"),
    "report": ("prednet2.eval.report", "Markdown tables and a chart from runs and result JSON files"),
}


_running: str | None = None  # "prednet2 NAME" while a subcommand runs through main()


_last_prog = ""  # prog of the last OneLineParser that parsed: the tool running in this process


def error_prefix() -> str:
    """``"PROG: error: "`` for the tool whose options were parsed last (``"error: "`` before any): how a tool's
    later one-line errors start, as its parser's own do."""
    return f"{_last_prog}: error: " if _last_prog else "error: "


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: error: MSG (see PROG --help)``, exit 2 (argparse alone
    prints its usage block first). Every prednet2 tool's parser is one."""

    _argv: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        global _last_prog
        self._argv = list(sys.argv[1:] if args is None else args)
        _last_prog = self.prog  # the tool now running: its later one-line errors (eval.common.fail) start with it
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        if message.endswith("expected one argument"):  # e.g. --points -2,2: argparse took the value for an option
            opts = message.split(":", 1)[0].removeprefix("argument ").split("/")
            given = [v for o, v in zip(self._argv, self._argv[1:]) if o in [x.strip() for x in opts]]
            if given and given[-1].startswith("-") and given[-1] not in self._option_string_actions:
                message += f" (a value starting with '-' is written {opts[-1].strip()}={given[-1]})"
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def int_at_least(lo: int):
    """An argparse ``type``: an integer >= ``lo``; anything else is the parser's one-line error (exit 2)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v}: need at least {lo}")
        return v

    return parse


def user_path(text: str) -> str:
    """An argparse ``type``: a path with a leading ``~`` expanded. The shell leaves ``--out=~/runs/x`` alone (only a
    word that starts with ``~`` is expanded), which made a folder named ``~`` in the working folder."""
    return os.path.expanduser(text)


def out_file(text: str) -> str:
    """An argparse ``type``: a file to write (``~`` expanded). A folder, or a path inside a file, is the parser's
    one-line error (exit 2) before any work is done, not a traceback when the result is written."""
    text = user_path(text)
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the path of a file to write")
    _not_inside_a_file(text)
    return text


def out_folder(text: str) -> str:
    """An argparse ``type``: a folder to write into, created when missing (``~`` expanded). A file, or a path inside a
    file, is the parser's one-line error (exit 2) before any work is done, not a traceback when the folder is made."""
    text = user_path(text)
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; give a folder (it is created when missing)")
    _not_inside_a_file(text)
    return text


def _not_inside_a_file(text: str) -> None:
    inside = next((q for q in Path(text).parents if q.exists()), None)
    if inside is not None and not inside.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is inside {inside}, which is a file, not a folder")


def json_files(
    paths: list[str], error: type[Exception], *, folders: tuple[str, ...] = ("",), expected: str
) -> list[Path]:
    """Files named in ``paths``, a folder standing for the ``*.json`` in it (and in its ``folders`` subfolders), in
    order, each once. A path that is neither, or a folder with no JSON, raises ``error`` naming it (``expected``:
    what the folder should have held)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [f for sub in folders for f in sorted((p / sub).glob("*.json"))]
            if not found:
                raise error(f"{p}: a folder with no *.json ({expected})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise error(f"{p}: no such file or folder")
    return list(dict.fromkeys(files))


def prog_name(default: str) -> str:
    """A tool parser's ``prog``: ``prednet2 NAME`` when run as a subcommand, else its own ``default``."""
    return _running or default


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        "usage: prednet2 COMMAND [options]   (prednet2 COMMAND --help for a command's options)\n\n"
        f"Self-supervised video representation learning by predictive coding.\n\ncommands:\n{rows}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command; returns its exit status (2: bad command)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from prednet2.runinfo import prednet2_version

        print(f"prednet2 {prednet2_version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"prednet2: error: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from prednet2.interrupt import run_cli

    def command() -> int | None:
        global _running
        main = importlib.import_module(COMMANDS[name][0]).main
        _running = f"prednet2 {name}"  # what each command's parser reads through prog_name()
        try:
            return main(rest)
        finally:
            _running = None

    return run_cli(command, prog=f"prednet2 {name}")  # Ctrl-C while loading or running: one line, 128 + SIGINT


if __name__ == "__main__":  # python -m prednet2.cli: dispatch through the imported module, whose _running the
    from prednet2.cli import main as _main  # commands read (this file runs as __main__, another module object)

    sys.exit(_main())
