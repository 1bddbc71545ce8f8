"""``python -m datasets.inspect DATA [--clip-len T] [--json]``: what a video folder yields, and what was skipped.

Scans (and caches) every video under DATA the way training will, then prints the number of usable videos, the
number of clips, and each skipped file with its reason. ``--json`` prints
``{"n_videos", "n_clips", "n_skipped", "skipped": [{"path", "reason"}], "n_truncated", "truncated": [{"path",
"frames"}]}`` (``truncated``: usable videos cut short or damaged partway, read up to it), plus
``"classes"`` (usable videos per
class) when DATA is a labels file (``FOLDER/labels.csv``) or with ``--labelled`` (read as the probes read it: class
folders or a table). Exit status: 0 when at least one video is usable, 2 when none is (or DATA/an option is bad).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

from prednet2.cli import OneLineParser, prog_name
from prednet2.interrupt import run_cli


def main(argv: list[str] | None = None) -> int:
    # Imported here, inside run_cli's guard: a Ctrl-C while yaml, av or numpy load is one line, not a traceback.
    from prednet2.config import DataConfig

    from .errors import DataError
    from .folder import VideoFolder
    from .labelled import LabelledVideoFolder, is_labels_file

    d = DataConfig()
    p = OneLineParser(prog=prog_name("python -m datasets.inspect"), description=__doc__.split("\n\n")[0])
    p.add_argument(
        "data", metavar="DATA", help="a folder of videos (searched recursively), one video, or a labels file (.csv)"
    )
    p.add_argument("--clip-len", type=int, default=d.clip_len, help=f"frames per clip (default {d.clip_len})")
    p.add_argument("--stride", type=int, default=d.stride, help=f"frame step inside a clip (default {d.stride})")
    p.add_argument("--size", type=int, nargs=2, default=list(d.size), metavar=("H", "W"), help="frame size")
    p.add_argument("--fps", type=float, default=d.fps, help="resample to this frame rate (0 = native)")
    p.add_argument("--grayscale", action="store_true")
    p.add_argument("--cache-dir", default=d.cache_dir or None, help="decode cache (default: see docs/data.md)")
    p.add_argument("--labelled", action="store_true",
                   help="read DATA as the probes do (class folders root/<class>/<video>, or a labels file) and report "
                   "usable videos per class")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args(argv)
    if a.clip_len < 2:  # as training's data.clip_len: a prediction needs two frames
        p.error(f"--clip-len {a.clip_len}: must be >= 2")
    if a.stride < 1:
        p.error(f"--stride {a.stride}: must be >= 1")
    if min(a.size) < 1 or a.fps < 0:
        p.error("--size must be positive and --fps >= 0")
    if a.data.startswith("synthetic:"):
        p.error(f"DATA {a.data}: built-in synthetic video has no files to inspect; give a folder of videos or a video")
    if not Path(a.data).exists():
        p.error(f"DATA not found: {a.data}")
    # Skip warnings go to the report below; keep stderr for real errors.
    logging.getLogger("prednet2.datasets").setLevel(logging.ERROR)
    labelled = a.labelled or (is_labels_file(a.data) and Path(a.data).is_file())  # the probes' reading
    try:
        ds = (LabelledVideoFolder if labelled else VideoFolder)(
            a.data,
            **({"split": "all"} if labelled else {}),  # as the probes read it: a centre clip, short videos padded
            clip_len=a.clip_len,
            stride=a.stride,
            size=tuple(a.size),
            fps=a.fps,
            grayscale=a.grayscale,
            cache_dir=a.cache_dir,
            progress=not a.json and sys.stderr.isatty(),
        )
        n_videos, n_clips, skipped, cut = len(ds.videos), len(ds), ds.skipped, ds.truncated
        clips_of = Counter(v for v, _ in ds.clips)
        per_video = [(v, ds.num_frames(i), clips_of[i]) for i, v in enumerate(ds.videos)]
        error = None
    except DataError as e:  # no usable video: still report what was skipped and why
        skipped = getattr(e, "skipped", [])
        n_videos, n_clips, per_video, cut, error = 0, 0, [], [], str(e)
    report = {
        "n_videos": n_videos,
        "n_clips": n_clips,
        "n_skipped": len(skipped),
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "n_truncated": len(cut),
        "truncated": [{"path": c.path, "frames": c.frames} for c in cut],
    }
    if labelled and error is None:  # the probes' view: how many usable videos each class keeps
        per_class = Counter(ds.classes[lab] for lab in ds.video_labels)
        report["classes"] = {c: per_class.get(c, 0) for c in ds.classes}
    if a.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_table(a.data, per_video, report)
    if error:
        print(f"{p.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _print_table(data: str, per_video: list[tuple[str, int, int]], report: dict) -> None:
    cut = f", {report['n_truncated']} cut short or damaged" if report["n_truncated"] else ""
    print(
        f"{data}: {report['n_videos']} usable video(s), {report['n_clips']} clip(s), {report['n_skipped']} skipped"
        + cut
    )
    if per_video:
        w = max(len(v) for v, _, _ in per_video)
        print(f"\n{'video':<{w}}  {'frames':>7}  {'clips':>6}")
        for v, n, c in per_video:
            print(f"{v:<{w}}  {n:>7}  {c:>6}")
    if report.get("classes"):
        w = max(len(c) for c in report["classes"])
        print(f"\n{'class':<{w}}  {'videos':>6}")
        for c, n in report["classes"].items():
            print(f"{c:<{w}}  {n:>6}")
    if report["skipped"]:
        w = max(len(s["path"]) for s in report["skipped"])
        print(f"\n{'skipped':<{w}}  reason")
        for s in report["skipped"]:
            print(f"{s['path']:<{w}}  {s['reason']}")
    if report["truncated"]:  # named up to the loaders' cap on warning lines; --json lists them all
        from .folder import _MAX_SKIP_LINES  # loaded already: the report comes from a VideoFolder

        shown = report["truncated"][:_MAX_SKIP_LINES]
        print("\ntruncated or damaged (cut short or a decode error partway; the frames before it are used):")
        for t in shown:
            print(f"{t['path']}  {t['frames']} frames")
        if len(report["truncated"]) > len(shown):
            print(f"... and {len(report['truncated']) - len(shown)} more (--json lists every one)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
