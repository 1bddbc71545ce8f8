"""What every probe of a study shares (``Probe``: sizes, seeds, the readout options) and how those readout options
become eval flags, file-name tags and the note under a study's table (benchmarks/study.py's Runner uses them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Probe:
    """Probe sizes shared by every probe of a study."""

    seeds: int = 3
    n_train: int = 1024
    n_test: int = 512
    clip_len: int | None = None  # synthetic probes' frames per clip; None: the checkpoint's data.clip_len
    resplit: int = 0  # folder tasks: this many stratified splits, one per probe seed (eval --resplit); 0: one split
    readout_bins: int | None = None  # eval --readout-bins for stack checkpoints; None: the checkpoint's own
    readout_whole: bool | None = None  # eval --readout-whole / --no-readout-whole; None: the checkpoint's own
    readout_trend: bool | None = None  # eval --readout-trend / --no-readout-trend; None: the checkpoint's own
    readout: str | None = None  # eval --readout PARTS (e.g. "a,r,da,fo"); None: the checkpoint's model.readout


def readout_parts(spec: str, opt: str) -> str:
    """``spec`` as eval's --readout takes it (``"a, r"`` -> ``"a,r"``); a ValueError naming ``opt`` when it is not a
    list of readout parts (prednet2.readout.PARTS), each once."""
    from prednet2.readout import parse_parts

    try:
        return ",".join(parse_parts(spec))
    except ValueError as e:
        raise ValueError(str(e).replace("model.readout", opt, 1)) from None


def readout_note(probe: Probe) -> str | None:
    """The line printed under a study's table when its probes read another readout than the checkpoints' own."""
    if not readout_given(probe):
        return None
    what = [f"parts {probe.readout}"] if probe.readout is not None else []
    what += [f"{probe.readout_bins} time bin(s)"] if probe.readout_bins is not None else []
    if probe.readout_whole is not None:
        what.append(("with" if probe.readout_whole else "without") + " the whole clip's mean")
    if probe.readout_trend is not None:
        what.append("as the whole clip's mean and the bins' change" if probe.readout_trend else "not as a trend")
    return f"readout: {', '.join(what)} for every stack checkpoint (pixels and the faithful PredNet as they are)"


_READOUT_SWITCHES = (("readout_whole", "w"), ("readout_trend", "t"))  # the on/off readout options and their tag


def readout_given(probe: Probe) -> bool:
    return (
        probe.readout is not None
        or probe.readout_bins is not None
        or any(getattr(probe, k) is not None for k, _ in _READOUT_SWITCHES)
    )


def readout_args(probe: Probe) -> list[str]:
    out = ["--readout", probe.readout] if probe.readout is not None else []
    out += ["--readout-bins", str(probe.readout_bins)] if probe.readout_bins is not None else []
    for k, _ in _READOUT_SWITCHES:
        if (v := getattr(probe, k)) is not None:
            out.append(("--" if v else "--no-") + k.replace("_", "-"))
    return out


def readout_tag(probe: Probe) -> str:
    """The probe file's name part for a readout other than the checkpoint's own: _rb2w, _rb1, _rnw, _rb2t,
    _rpa-r-da-fo (parts a,r,da,fo)..."""
    tag = "_r" + (f"p{probe.readout.replace(',', '-').replace('@', 'g')}" if probe.readout is not None else "")
    tag += f"b{probe.readout_bins}" if probe.readout_bins is not None else ""
    for k, letter in _READOUT_SWITCHES:
        if (v := getattr(probe, k)) is not None:
            tag += letter if v else "n" + letter
    return tag
