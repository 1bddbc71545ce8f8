"""LabelledVideoFolder: a UCF101-layout folder ``root/<class>/<video>`` as labelled clips, with a train/test split.

- **Classes** are the sub-folders of ``root`` that hold at least one video (searched recursively inside the class
  folder), sorted by name; the label is the index in that sorted list. Loose files in ``root`` (``labels.csv``, a
  README) and folders without video are not classes.
- **Split files** (``splits_dir``): ``DIR/trainlistKK.txt`` and ``DIR/testlistKK.txt`` for fold ``K`` (zero-padded
  to two digits, as UCF101's ``trainlist01.txt``), lines ``class/video.avi [label]`` relative to ``root``. The
  optional label column is ignored: the class is the first path component (UCF101's 1-based labels follow the
  same alphabetical order, so they agree). A listed file that is missing is an error, not a silent skip.
- **Without split files**: a deterministic stratified split. Inside each class, files are ordered by
  ``sha1(f"{seed}:{relative path}")`` and the first ``round(test_fraction * n)`` go to test (at least one test
  and one train video when the class has two or more). It depends only on file names, so it is the same on every
  machine, in any scan order, and does not shift when a file fails to decode. With the default 0.2 it gives the
  226/57 split that ``basketball_actions`` quotes.
- **Labels file** (``root`` is a ``.csv`` or ``.tsv`` file, e.g. ``labels.csv`` beside the videos): one row per
  video, its path relative to the file's folder and its class name; the videos may lie anywhere under that folder
  (a flat folder is fine). A header row names the columns (path: ``video``, ``path``, ``file``, ``filename`` or
  ``clip``; class: ``label``, ``class``, ``category`` or ``action``; other columns are ignored); without one, the
  first two columns are path and class (a ``;``-separated export is read as such). A listed file that is missing,
  an empty class, or one video given two classes is an error naming the row. A folder with no class folders and a
  ``labels.csv`` (or ``labels.tsv``) in it reads that file, with one warning line; one beside class folders that
  groups the videos otherwise is read when the videos all lie in one sub-folder, and otherwise ignored with a
  warning that names it (the folders are the classes).
- **Clips**: by default one clip per video from its centre (``clips_per_video="centre"``, the probe's norm), and
  videos shorter than a clip are padded by repeating their last frame (``pad_short=True``), so every labelled
  video counts once. ``clips_per_video="all"`` gives every clip.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from pathlib import Path

from prednet2.config import DataConfig

from .decode import _SKIP_DIRS, scan_videos
from .errors import DataError
from .folder import VideoFolder

SPLITS = ("train", "test", "all")
LABEL_FILE_EXTENSIONS = (".csv", ".tsv")
DEFAULT_LABEL_FILES = ("labels.csv", "labels.tsv")  # read from a flat folder (no class folders) given as --data
log = logging.getLogger("prednet2.datasets")
_PATH_COLUMNS = ("video", "path", "file", "filename", "clip")
_LABEL_COLUMNS = ("label", "class", "category", "action")


def is_labels_file(path: str | os.PathLike) -> bool:
    """True when ``path`` names a labels table (``.csv``/``.tsv``) rather than a class-folder root."""
    return str(path).lower().endswith(LABEL_FILE_EXTENSIONS)


def read_labels_file(path: str | os.PathLike) -> dict[str, str]:
    """``{relative video path: class name}`` from a labels table (see the module docstring); DataError naming the
    file and row on anything it cannot use."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from a spreadsheet export is not part of the header
    except UnicodeDecodeError as e:
        raise DataError(
            f"labels file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it as "
            "UTF-8 (a spreadsheet's 'CSV UTF-8' export)"
        ) from None
    except OSError as e:
        raise DataError(f"labels file {path}: cannot read it ({e})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    semi = lines and all(";" in line for line in lines) and not all("," in line for line in lines)  # a ;-export
    sep = "\t" if path.suffix.lower() == ".tsv" else ";" if semi else ","  # (all rows: a path may hold a comma)
    reader, rows = csv.reader(text.splitlines(), delimiter=sep), []
    while True:
        start = reader.line_num + 1  # where the row begins (a quoted field may run over many lines)
        try:
            rows.append(next(reader))
        except StopIteration:
            break
        except csv.Error as e:  # e.g. an unclosed quote that runs to the end of a long file
            raise DataError(f"labels file {path} line {start}: {e} (an unclosed quote?)") from None
    rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"labels file {path} is empty; give one row per video: path,class")
    head = [c.lower() for c in rows[0][1]]
    p_col = next((head.index(c) for c in _PATH_COLUMNS if c in head), None)
    l_col = next((head.index(c) for c in _LABEL_COLUMNS if c in head), None)
    if p_col is not None and l_col is not None:
        rows = rows[1:]
        if not rows:
            raise DataError(f"labels file {path} lists no video under its header; give one row per video: path,class")
    elif p_col is not None or l_col is not None:
        raise DataError(
            f"labels file {path}: its header {rows[0][1]} names a {'path' if l_col is None else 'class'} column but "
            f"no {'class' if l_col is None else 'path'} column; name them {'/'.join(_PATH_COLUMNS)} and "
            f"{'/'.join(_LABEL_COLUMNS)}"
        )
    else:
        p_col, l_col = 0, 1
    labels: dict[str, str] = {}
    base = os.path.abspath(path.parent)
    for line, r in rows:
        if len(r) <= max(p_col, l_col) or not r[p_col] or not r[l_col]:
            raise DataError(f"labels file {path} line {line}: need a video path and a class, got {r}")
        rel = _table_path(r[p_col], base)
        if labels.setdefault(rel, r[l_col]) != r[l_col]:
            raise DataError(f"labels file {path} line {line}: {rel} is listed as {labels[rel]!r} and {r[l_col]!r}")
    return labels


def _table_path(cell: str, base: str) -> str:
    """A table's path cell as one spelling per file, relative to ``base`` (the table's folder): ``./a.mp4``,
    ``x/../a.mp4`` and ``BASE/a.mp4`` are the same row key, and a file beside ``base`` stays ``../videos/a.mp4`` (the
    stratified split hashes the key: it must not depend on where the data lies)."""
    full = os.path.normpath(os.path.join(base, cell.replace("\\", "/")))
    try:
        return Path(os.path.relpath(full, base)).as_posix()
    except ValueError:  # another drive (Windows): no relative path
        return full


def _is_file(p: Path) -> bool:
    """``p.is_file()``, False for a name the file system cannot hold (too long: a row run together) rather than
    OSError."""
    try:
        return p.is_file()
    except OSError:
        return False


def split_file_paths(splits_dir: str | os.PathLike, fold: int) -> tuple[Path, Path]:
    """``(DIR/trainlistKK.txt, DIR/testlistKK.txt)`` for fold ``K``."""
    d = Path(splits_dir)
    return d / f"trainlist{fold:02d}.txt", d / f"testlist{fold:02d}.txt"


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Relative video paths listed in a UCF101-style split file (``class/video.avi [label]`` per line)."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"split file {path} is not UTF-8 text (byte offset {e.start}); save it as UTF-8") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():  # a trailing label column (ignored)
            line = parts[0]
        rel = line.replace("\\", "/")
        out.append(rel[2:] if rel.startswith("./") else rel)
    return out


def stratified_split(rel_paths_by_class: dict[str, list[str]], *, test_fraction: float, seed: int) -> set[str]:
    """The relative paths that go to test: per class, the first ``round(test_fraction * n)`` by salted name hash."""
    test: set[str] = set()
    for files in rel_paths_by_class.values():
        n = len(files)
        k = int(round(test_fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        ranked = sorted(files, key=lambda r: hashlib.sha1(f"{seed}:{r}".encode()).hexdigest())
        test.update(ranked[:k])
    return test


class LabelledVideoFolder(VideoFolder):
    """Labelled clips from ``root/<class>/<video>``; items carry ``"label"`` (the sorted class index).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        root: the class-folder root, or a labels file (``.csv``/``.tsv``) whose folder is the root.
        splits_dir, fold: read ``trainlistKK.txt``/``testlistKK.txt`` from ``splits_dir`` instead of the
            stratified split.
        test_fraction, seed: the stratified split (used without ``splits_dir``).
        clips_per_video, pad_short, and the rest: as ``VideoFolder`` (defaults here: ``"centre"`` and True).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        cfg: DataConfig | None = None,
        *,
        split: str = "train",
        splits_dir: str | os.PathLike | None = None,
        fold: int = 1,
        test_fraction: float = 0.2,
        seed: int = 0,
        clips_per_video: str = "centre",
        pad_short: bool = True,
        **kwargs,
    ):
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= test_fraction < 1.0:
            raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
        self.split = split
        self.splits_dir = Path(splits_dir) if splits_dir else None
        self.fold = int(fold)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        table = Path(root).expanduser()  # (~ expanded before the test: ~/x/labels.csv is a table too)
        self.labels_file = table if is_labels_file(table) and table.is_file() else None
        if self.labels_file is not None:
            root = self.labels_file.parent
        super().__init__(root, cfg, clips_per_video=clips_per_video, pad_short=pad_short, **kwargs)

    def _find_files(self) -> list[Path]:
        beside = [] if self.labels_file else [self.root / n for n in DEFAULT_LABEL_FILES if (self.root / n).is_file()]
        if beside and self.root.is_dir():
            if not self._class_dirs():
                self.labels_file = beside[0]  # a flat folder with its labels beside the videos: read them
                log.warning("%s has no class folders: reading the classes from %s", self.root, self.labels_file.name)
            else:
                self._table_beside_folders(beside[0])
        by_class = self._classes_from_file() if self.labels_file else self._classes_from_folders()
        self.classes: list[str] = sorted(by_class)
        self._by_class = by_class
        class_of = {r: c for c, files in by_class.items() for r in files}
        chosen = self._select(by_class)
        if not chosen:
            raise DataError(f"split {self.split!r} of {self._where()} holds no video{self._why_empty(by_class)}")
        self._rel_labels = [self.classes.index(class_of[r]) for r in chosen]
        return [self.root / r for r in chosen]

    def _where(self) -> Path:
        return self.labels_file or self.root

    def _classes_from_folders(self) -> dict[str, list[str]]:
        if not self.root.is_dir():
            raise DataError(
                f"a labelled dataset must be a folder root/<class>/<video> or a labels file (.csv), got {self.root}"
            )
        by_class = self._class_dirs()
        if not by_class:
            raise DataError(
                f"no class folders with videos in {self.root}; expected the layout root/<class>/<video> (UCF101), "
                "or give a labels file (--data FOLDER/labels.csv: path,class per video)"
            )
        return by_class

    def _class_dirs(self) -> dict[str, list[str]]:
        """``{class: [class/video, ...]}`` for the sub-folders of root that hold a video (scanned once)."""
        if getattr(self, "_dirs", None) is None:
            self._dirs: dict[str, list[str]] = {}
            for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
                if d.name in _SKIP_DIRS or d.name.startswith("."):
                    continue
                files = [f"{d.name}/{f.relative_to(d).as_posix()}" for f in scan_videos(d)]
                if files:
                    self._dirs[d.name] = files
        return self._dirs

    def _table_beside_folders(self, table: Path) -> None:
        """Class folders with a labels table beside them (as ``basketball_actions`` ships): the folders, unless the
        table groups their videos otherwise. Then, with all the videos in one sub-folder (``clips/``), the table
        is read; with several class folders, the folders are (as the documented layout), one warning line each."""
        try:
            labels = read_labels_file(table)
        except DataError:
            return  # not a table this reader can use: the folders are the layout, as before
        folder_of = {r: c for c, files in self._class_dirs().items() for r in files}
        by_folder: dict[str, str] = {}
        by_class: dict[str, str | None] = {}
        for r, c in labels.items():
            f = folder_of.get(r)
            if f is None and not _is_file(self.root / r):
                continue  # a row for a missing video: the folders are read, not the table
            if f is None or by_folder.setdefault(f, c) != c or by_class.setdefault(c, f) != f:
                if len(self._class_dirs()) == 1:  # one folder of videos is no set of classes: the table is
                    self.labels_file = table
                    log.warning("%s: its one sub-folder holds the videos that %s classes: reading the table",
                                self.root, table.name)  # fmt: skip
                else:
                    log.warning("%s groups the videos otherwise than the class folders beside it (%s is %r in it, in "
                                "folder %r): reading the folders; give --data %s to read the table",
                                table, r, c, f or "(none)", table)  # fmt: skip
                return

    def _classes_from_file(self) -> dict[str, list[str]]:
        labels = read_labels_file(self.labels_file)
        missing = [r for r in labels if not _is_file(self.root / r)]
        if missing:
            raise DataError(
                f"labels file {self.labels_file}: {len(missing)} listed video(s) not found (paths are relative to "
                f"{self.root}), e.g. {missing[0]!r}"
            )
        by_class: dict[str, list[str]] = {}
        for rel in sorted(labels):
            by_class.setdefault(labels[rel], []).append(rel)
        return by_class

    def _select(self, by_class: dict[str, list[str]]) -> list[str]:
        everything = sorted(r for files in by_class.values() for r in files)
        if self.split == "all":
            return everything
        if self.splits_dir is None:
            test = self.test_paths(self.seed)
            return [r for r in everything if (r in test) == (self.split == "test")]
        path = split_file_paths(self.splits_dir, self.fold)[0 if self.split == "train" else 1]
        if not path.is_file():
            raise DataError(f"split file not found: {path} (expected trainlist{self.fold:02d}.txt/testlist..)")
        base = os.path.abspath(self.root)
        listed = [_table_path(r, base) for r in read_split_file(path)]  # spelled as the table's rows are
        known = set(everything)
        missing = [r for r in listed if r not in known]
        if missing:
            what = "in the labels file" if self.labels_file else "as a class-folder video"
            raise DataError(
                f"{path}: {len(missing)} listed video(s) not found under {self.root} {what}, e.g. {missing[0]!r}"
            )
        return sorted(set(listed))

    def _why_empty(self, by_class: dict[str, list[str]]) -> str:
        """Why a split came out empty, and what to do (appended to the error)."""
        if self.splits_dir is not None:
            name = split_file_paths(self.splits_dir, self.fold)[0 if self.split == "train" else 1].name
            return f": {self.splits_dir / name} lists none"
        if self.split == "test" and all(len(f) < 2 for f in by_class.values()):
            what = "class(es)" if self.labels_file else "class folder(s)"
            return (
                f": each of its {len(by_class)} {what} holds a single video, and the stratified split keeps "
                "a class's only video for train; put 2 or more videos in each class, or give split lists "
                "(--splits DIR --fold K)"
            )
        return f" (test_fraction={self.test_fraction})"

    def test_paths(self, seed: int) -> set[str]:
        """The relative paths (``class/video``) the stratified split sends to test with salt ``seed``.

        Every scanned file counts, decodable or not, so the split of ``LabelledVideoFolder(seed=s)`` is
        ``test_paths(s)`` whichever ``split`` this instance holds (``eval --resplit`` draws from ``"all"``)."""
        return stratified_split(self._by_class, test_fraction=self.test_fraction, seed=seed)

    def _load(self, files: list[Path]) -> None:
        super()._load(files)
        self.video_labels: list[int] = [self._rel_labels[i] for i in self._file_index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def label_of(self, video_idx: int) -> int:
        return self.video_labels[video_idx]
