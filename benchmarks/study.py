"""Shared machinery of the training studies (``peers.py``, ``curve.py``): train runs, probe them, tabulate.

Every run is a subprocess (``train.py``, ``python -m eval.linear_probe``), so a wall-clock budget is a SIGTERM
(the trainer saves a checkpoint and writes summary.json on it) and runs can go side by side (``jobs``), one
thread each. Finished runs and probes are reused when their files exist, so a study can be resumed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prednet2.interrupt import EXIT_INTERRUPTED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_probe import Probe, readout_args, readout_given, readout_note, readout_parts, readout_tag  # noqa: E402, F401

ROOT = Path(__file__).resolve().parent.parent
BASKETBALL = os.environ.get("PREDNET2_BASKETBALL", str(ROOT.parent / "shared" / "data" / "basketball_actions"))

# task name -> (labelled spec, extra probe arguments)
TASKS: dict[str, tuple[str, list[str]]] = {
    "direction": ("synthetic:shapes:direction", []),
    "speed": ("synthetic:shapes:speed", []),
    "kind": ("synthetic:trajectories:kind", []),
    "digit": ("synthetic:moving_mnist:digit", []),
    "basketball": (BASKETBALL, ["--clip-len", "6"]),
}

# variant name -> --set overrides on top of the default config
PEERS: dict[str, list[str]] = {
    "default": [],
    "end_to_end": ["train.mode=end_to_end"],
    "prednet": ["model.preset=prednet"],
    "infonce": ["model.anti_collapse=infonce"],
}


class StudyError(ValueError):
    """A bad option of a study script (one line, exit 2)."""


class StudyFailure(RuntimeError):
    """A run or probe of the study failed (one line naming its log, exit 1)."""


def last_line(log: Path) -> str:
    """The last non-empty line of a log (what the failed command said), or '' when there is none."""
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= 300 else lines[-1][:297] + "..."  # its head says what failed


def check_data(spec: str, prefix: str) -> None:
    """A StudyError before anything trains when ``spec`` (``--data``, or a variant's ``data=``) is no training data
    (datasets.check_spec: a bad ``+`` mixture, an unknown ``synthetic:`` name, a path that does not exist); the
    message is ``prefix`` (``"--data "``, ``"variant 'x': data="``) followed by check_spec's, which names the spec."""
    from prednet2.datasets import DataError, check_spec

    try:
        check_spec(spec)
    except DataError as e:
        raise StudyError(f"{prefix}{e}") from None


def parse_variants(
    names: str, extra: list[str], common: list[str] = (), *, data: str | None = None, owned: dict | None = None
) -> dict[str, list[str]]:
    """``--variants default,prednet`` plus ``--variant 'name=key=v;key=v'`` -> {name: [sets]}.

    ``data=SPEC`` among a variant's settings trains that variant on other data (e.g. ``data=synthetic:mix``).
    Every variant's settings, with the ``common`` ones (``--set``) first, must make a valid config, its data
    (``data=`` or else ``data``) must exist, and no setting may set a key the script sets itself (``owned``: key ->
    the option that sets it): each is a StudyError here, before anything trains.
    """
    out: dict[str, list[str]] = {}
    for n in [x.strip() for x in names.split(",") if x.strip()]:
        if n not in PEERS:
            raise StudyError(
                f"--variants: unknown variant {n!r}; known: {', '.join(PEERS)} (or define one with --variant)"
            )
        out[n] = list(PEERS[n])
    for spec in extra:
        name, sep, sets = spec.partition("=")
        if not sep or not name.strip():
            raise StudyError(f"--variant {spec!r}: expected NAME=key=value;key=value")
        out[name.strip()] = [s.strip() for s in sets.split(";") if s.strip()]
    if not out:
        raise StudyError("no variants: pass --variants and/or --variant")
    from prednet2.config import Config, ConfigError

    owned = owned or {}
    for x in common:
        if x.partition("=")[0].strip() in owned:
            raise StudyError(f"--set {x}: {owned[x.partition('=')[0].strip()]} sets it for every run; drop the --set")
    if data is not None:
        check_data(data, "--data ")
    for name, sets in out.items():
        for x in sets:
            if x.partition("=")[0].strip() in owned:
                raise StudyError(f"variant {name!r}: {x}: {owned[x.partition('=')[0].strip()]} sets it; drop it")
            if x.startswith("data="):
                check_data(x[5:], f"variant {name!r}: data=")
        try:
            Config.from_yaml(None, [*common, *[x for x in sets if not x.startswith("data=")]])
        except ConfigError as e:
            where = f"variant {name!r}" + (f" (with --set {' '.join(common)})" if common else "")
            raise StudyError(f"{where}: {e}") from None
    return out


def parse_probe(args, tasks: list[str] = ()) -> Probe:
    """--seeds, --n-train, --n-test as a Probe, checked before anything trains (--resplit against ``tasks``)."""
    clip_len = getattr(args, "probe_clip_len", None)
    for opt, v in (("--seeds", args.seeds), ("--n-train", args.n_train), ("--n-test", args.n_test)):
        if v < 1:
            raise StudyError(f"{opt} {v}: need at least 1")
    if clip_len is not None and clip_len < 2:
        raise StudyError(f"--probe-clip-len {clip_len}: need at least 2 frames")
    bins, whole = getattr(args, "readout_bins", None), getattr(args, "readout_whole", None)
    trend = getattr(args, "readout_trend", None)
    if bins is not None and bins < 1:
        raise StudyError(f"--readout-bins {bins}: need at least 1 (1: one mean over the clip)")
    resplit = getattr(args, "resplit", 0) or 0
    if resplit < 0:
        raise StudyError(f"--resplit {resplit}: need 0 (one fixed split) or a number of splits")
    if resplit and tasks and all(TASKS[t][0].startswith("synthetic:") for t in tasks):  # it would change nothing
        raise StudyError(f"--resplit {resplit} draws splits of folder tasks (basketball); --tasks {','.join(tasks)} "
                         "has none")  # fmt: skip
    parts = getattr(args, "readout", None)
    if parts is not None:
        try:
            parts = readout_parts(parts, "--readout")
        except ValueError as e:
            raise StudyError(str(e)) from None
    return Probe(args.seeds, args.n_train, args.n_test, clip_len, resplit, bins, whole, trend, parts)


def add_study_args(p, *, tasks: str, out: str) -> None:
    """The options every study script shares: variants, data, probe sizes, jobs, output. ``p``: an ArgumentParser."""
    from prednet2.cli import out_file, out_folder

    p.add_argument("--variant", action="append", default=[], metavar="NAME=K=V;K=V", help="a custom variant")
    p.add_argument("--tasks", default=tasks, help=f"probe tasks (default {tasks}; known: {', '.join(TASKS)})")
    p.add_argument("--data", default="synthetic:shapes", help="training data (default synthetic:shapes)")
    p.add_argument("--set", action="append", default=[], dest="sets", help="override applied to every variant")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds (default 3)")
    p.add_argument("--n-train", type=int, default=1024, help="synthetic probe train clips (default 1024)")
    p.add_argument("--n-test", type=int, default=512, help="synthetic probe test clips (default 512)")
    p.add_argument("--probe-clip-len", type=int, metavar="T",
                   help="frames per clip of the synthetic probes (default: each checkpoint's data.clip_len); "
                   "compares variants trained on other clip lengths at one readout")  # fmt: skip
    p.add_argument("--resplit", type=int, default=0, metavar="N",
                   help="folder tasks (basketball): probe N stratified train/test splits, one per probe seed, "
                   "instead of one fixed split (default 0: the fixed 226/57 split)")  # fmt: skip
    p.add_argument("--readout", metavar="PARTS",
                   help="probe every stack checkpoint on these readout parts (eval --readout, e.g. a,r,da,fo; "
                   "default: each checkpoint's model.readout). The faithful PredNet keeps its fixed "
                   "readout")  # fmt: skip
    p.add_argument("--readout-bins", type=int, metavar="N",
                   help="probe every stack checkpoint with N time bins (eval --readout-bins; default: each "
                   "checkpoint's model.readout_bins); reads older checkpoints on today's readout. The faithful "
                   "PredNet keeps its fixed readout")  # fmt: skip
    p.add_argument("--readout-whole", action=argparse.BooleanOptionalAction, default=None,
                   help="with the bins, the whole clip's mean too (eval --readout-whole; default: each "
                   "checkpoint's model.readout_whole)")  # fmt: skip
    p.add_argument("--readout-trend", action=argparse.BooleanOptionalAction, default=None,
                   help="with the bins, the whole clip's mean and the bins' change in place of their means (eval "
                   "--readout-trend; default: each checkpoint's model.readout_trend)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each (default 1)")
    p.add_argument("--out", type=out_folder, default=out, help=f"study folder (default {out})")
    p.add_argument("--json", type=out_file, help="write the figures here")


def parse_tasks(names: str) -> list[str]:
    tasks = [x.strip() for x in names.split(",") if x.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise StudyError(f"--tasks: unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    if "basketball" in tasks and not Path(TASKS["basketball"][0]).is_dir():
        raise StudyError(f"--tasks basketball: {TASKS['basketball'][0]} not found (set PREDNET2_BASKETBALL)")
    return tasks


@dataclass
class Runner:
    """Runs subprocesses, ``jobs`` at a time, one CPU thread each; logs go to ``out/logs``."""

    out: Path
    python: str = sys.executable
    jobs: int = 1
    verbose: bool = True
    budget_clock: str = "cpu"  # "cpu" (the run's CPU seconds) | "wall"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **self.env}

    def say(self, msg: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def run(self, args: list[str], log: str, budget_s: float | None = None) -> int:
        """Run ``python args...``; past ``budget_s`` seconds SIGTERM it (train.py saves and exits on it).

        ``budget_clock`` "cpu" counts the process's own CPU seconds (fair when other jobs share the cores: every
        variant gets the same compute; with one thread it equals wall time on an idle machine); "wall" counts
        wall-clock seconds.
        """
        with open(self.out / "logs" / f"{log}.log", "w") as f:
            p = subprocess.Popen([self.python, *args], cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT)
            try:
                if budget_s is None:
                    return p.wait()
                t0 = time.time()
                while p.poll() is None:
                    used = _cpu_seconds(p.pid) if self.budget_clock == "cpu" else time.time() - t0
                    if used is not None and used >= budget_s:
                        p.send_signal(signal.SIGTERM)
                        return p.wait()
                    time.sleep(0.5)
                return p.returncode
            except KeyboardInterrupt:  # Ctrl-C: stop the child too (a budget run would go on) and let it exit first
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                p.wait()
                raise

    def map(self, fn, items: list) -> list:
        if self.jobs <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.jobs) as ex:
            return list(ex.map(fn, items))

    # ---- training -----------------------------------------------------------------------------------------
    def train(
        self,
        name: str,
        sets: list[str],
        *,
        data: str,
        steps: int | None,
        budget_s: float | None,
        seed: int,
        extra_sets: list[str] = (),
        may_differ: tuple[str, ...] = (),
    ) -> dict:
        """Train one run into ``out/name`` (reused when its summary.json exists and was trained as asked, apart from
        the request keys or ``--set`` keys in ``may_differ``); returns the summary."""
        run = self.out / name
        summary = run / "summary.json"
        # a variant may train on other data: the pseudo-setting data=SPEC (e.g. data=synthetic:mix)
        own = next((x.split("=", 1)[1] for x in sets if x.startswith("data=")), None)
        data = own or data
        sets = [x for x in sets if not x.startswith("data=")]
        all_sets = [f"train.seed={seed}", "train.threads=1", *extra_sets, *sets]
        request = {"data": data, "steps": steps, "budget_s": budget_s, "sets": all_sets}
        if summary.is_file():
            _check_same_request(run, request, may_differ)
            self.say(f"{name}: already trained")
            return json.loads(summary.read_text())
        if run.exists() and any(run.iterdir()):
            raise StudyError(f"{run} holds an unfinished run (no summary.json): remove it, or let it finish first")
        if budget_s:  # fill the data's caches first, untimed: the budget then buys training, whichever run is first
            self.say(f"prepare {name}: filling the data's caches, outside the budget")
            self._prepare(name, data, all_sets)
        run.mkdir(parents=True, exist_ok=True)
        (run / REQUEST).write_text(json.dumps(request, indent=1))  # what a later call must ask to reuse the run
        total = steps if steps else 10**7  # a budget run stops on SIGTERM, not on a step count
        args = ["train.py", "--data", data, "--out", str(run), "--steps", str(total), "--no-progress"]
        for s in all_sets:
            args += ["--set", s]
        what = " ".join(sets) or "(default)"
        what += f" on {own}" if own else ""
        self.say(f"train {name}: {what}" + (f", {budget_s:.0f} s" if budget_s else ""))
        t0 = time.time()
        try:
            rc = self.run(args, f"train_{name}", budget_s=budget_s)
        except KeyboardInterrupt:
            rc = EXIT_INTERRUPTED
        if rc in (EXIT_INTERRUPTED, -signal.SIGINT):  # Ctrl-C cut it short of its steps or budget, yet train.py
            shutil.rmtree(run, ignore_errors=True)  # wrote a summary: drop it, or a rerun would reuse it as finished
            raise KeyboardInterrupt
        if not summary.is_file():
            log = self.out / "logs" / f"train_{name}.log"
            if budget_s and rc == -signal.SIGTERM:  # stopped before train.py could catch it: nothing saved, nothing to
                shutil.rmtree(run, ignore_errors=True)  # resume, and a left folder would block the rerun
                raise StudyError(f"--budget-s {budget_s:g}: training {name} was stopped before train.py had started "
                                 "(starting takes a few CPU seconds); give a larger budget, or --steps")  # fmt: skip
            raise StudyFailure(f"training {name} failed (exit {rc}): {last_line(log)} (log: {log})")
        s = json.loads(summary.read_text())
        self.say(f"{name}: {s['steps']} steps in {time.time() - t0:.0f} s ({s['frames_per_s']:.0f} frames/s)")
        return s

    def _prepare(self, name: str, data: str, sets: list[str]) -> None:
        """``train.py --prepare`` with a budget run's data and settings (its caches: motion masks and flow of every
        clip), so that no run pays inside its budget for a cache that the runs after it read for free."""
        args = ["train.py", "--prepare", "--data", data, "--no-progress", *[x for s in sets for x in ("--set", s)]]
        rc = self.run(args, f"prepare_{name}")
        if rc in (EXIT_INTERRUPTED, -signal.SIGINT):
            raise KeyboardInterrupt
        if rc != 0:
            log = self.out / "logs" / f"prepare_{name}.log"
            raise StudyFailure(f"preparing the data of {name} failed (exit {rc}): {last_line(log)} (log: {log})")

    # ---- probing ------------------------------------------------------------------------------------------
    def probe(self, ckpt: Path, task: str, variant: str, probe: Probe, tag: str) -> dict:
        """One linear probe (trained | random_init | pixels) of ``ckpt`` on ``task``; cached as JSON."""
        spec, extra = TASKS[task]
        tag = f"{tag}_n{probe.n_train}x{probe.seeds}"  # probes of other sizes are other files
        if probe.clip_len is not None and "--clip-len" not in extra:  # basketball keeps its own clip length
            extra = ["--clip-len", str(probe.clip_len)]
            tag += f"_T{probe.clip_len}"
        if variant != "pixels" and readout_given(probe) and not _is_prednet(ckpt):  # PredNet's readout is fixed
            extra = [*extra, *readout_args(probe)]
            tag += readout_tag(probe)
        seeds = probe.seeds
        if probe.resplit and not spec.startswith("synthetic:"):  # a folder task: N splits, one per seed
            seeds, extra = probe.resplit, [*extra, "--resplit"]
            tag = f"{tag}_rs{probe.resplit}"
        out = ckpt.parent.parent / "eval" / f"probe_{task}_{tag}_{variant}.json"
        if out.is_file():
            return json.loads(out.read_text())
        out.parent.mkdir(parents=True, exist_ok=True)
        args = ["-m", "eval.linear_probe", "--checkpoint", str(ckpt), "--data", spec, "--out", str(out)]
        args += ["--seeds", str(seeds), "--n-train", str(probe.n_train), "--n-test", str(probe.n_test)]
        args += ["--threads", "1", "--no-progress", *extra]
        if variant == "random_init":
            args.append("--random-init")
        elif variant == "pixels":
            args += ["--baseline", "pixels"]
        log = f"probe_{ckpt.parent.parent.name}_{tag}_{task}_{variant}"
        t0 = time.time()
        rc = self.run(args, log)
        if rc != 0 or not out.is_file():
            log_path = self.out / "logs" / f"{log}.log"
            raise StudyFailure(
                f"probe of {ckpt} on {task} ({variant}) failed (exit {rc}): {last_line(log_path)} (log: {log_path})"
            )
        res = json.loads(out.read_text())
        # a study probes for an hour or more: say each probe as it lands, so a long run shows where it is
        self.say(f"probe {ckpt.parent.parent.name} on {task} ({variant}): top-1 {100 * res['top1']:.1f} "
                 f"in {time.time() - t0:.0f} s")  # fmt: skip
        return res


REQUEST = "study_request.json"  # in each run folder: the data, step count or budget and settings it was trained with


def _check_same_request(run: Path, request: dict, may_differ: tuple[str, ...] = ()) -> None:
    """Raise StudyError (one line) when the finished run in ``run`` was trained otherwise than ``request`` asks, so
    a study never reports an old run as the one asked for. ``may_differ``: request keys (``steps``) and ``--set``
    keys left out of the comparison. Runs from before the record are reused unchecked."""
    try:
        old = json.loads((run / REQUEST).read_text())
    except (OSError, ValueError):
        return
    keys = [k for k in ("data", "steps", "budget_s") if k not in may_differ]
    diffs = [f"{k} {old.get(k)} (asked {request[k]})" for k in keys if old.get(k) != request[k]]

    def compared(sets: list[str]) -> list[str]:
        return [x for x in sets if x.partition("=")[0] not in may_differ]

    had, want = compared(old.get("sets", [])), compared(request["sets"])
    diffs += [f"--set {x} (not asked)" for x in had if x not in want]
    diffs += [f"no --set {x} (asked)" for x in want if x not in had]
    if diffs:
        raise StudyError(
            f"{run} was trained with other settings: {'; '.join(diffs)}; remove that run folder or give another --out"
        )


@functools.lru_cache(maxsize=256)
def _is_prednet(ckpt: Path) -> bool:
    """Whether a checkpoint holds the faithful PredNet (model.preset=prednet), whose readout has no options.

    Read once per path (a run folder's preset does not change within a study); an unreadable checkpoint is a
    StudyFailure naming it."""
    from prednet2.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(ckpt)["config"].get("model", {}).get("preset") == "prednet"
    except CheckpointError as e:
        raise StudyFailure(str(e)) from None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc); None when unreadable (then wall time is used)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main_guard(fn, *, resumes: bool = True) -> int:
    """Run a study main: a StudyError (bad option) is one line on stderr and exit 2; a StudyFailure (a run or
    probe failed; finished runs and probes are kept, so rerunning resumes) one line and exit 1; Ctrl-C one line and
    exit 130 (saying that a rerun resumes only for a script that keeps runs and probes, ``resumes``)."""
    try:
        return fn()
    except (StudyError, StudyFailure) as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, StudyError) else 1
    except KeyboardInterrupt:  # a training run cut short is dropped (a rerun trains it); probes are written whole
        kept = "; finished runs and probes are kept, so rerunning resumes" if resumes else ""
        print(f"{Path(sys.argv[0]).name}: interrupted (Ctrl-C){kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
