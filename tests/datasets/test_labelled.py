import collections
import random
from pathlib import Path

import pytest
from prednet2.datasets.errors import DataError
from prednet2.datasets.labelled import LabelledVideoFolder, read_split_file, stratified_split

BASKETBALL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "basketball_actions"
CLASSES = {"Archery": 5, "BabyCrawling": 6, "Walk": 4}


@pytest.fixture
def ucf(vt, tmp_path):
    """UCF101 layout with 3 classes, plus a loose file and a folder without videos (neither is a class)."""
    root = tmp_path / "ucf"
    for c, (name, n) in enumerate(CLASSES.items()):
        for i in range(n):
            vt.write_video(
                root / name / f"v_{name}_g{i:02d}_c01.avi", vt.coded_frames(5, 8, 8, video_id=c), codec="mpeg4"
            )
    (root / "labels.csv").write_text("video,label\n")
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("no videos here")
    return root


def _labels_by_name(ds):
    return {Path(v).name: ds.classes[lab] for v, lab in zip(ds.videos, ds.video_labels, strict=True)}


def test_classes_and_labels(vt, ucf, tmp_path):
    ds = LabelledVideoFolder(ucf, split="all", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    assert ds.classes == sorted(CLASSES) and ds.num_classes == 3
    assert len(ds) == sum(CLASSES.values())  # one (centre) clip per video
    for i in range(len(ds)):
        item = ds[i]
        vid, _ = vt.decode_id(item["video"].permute(0, 2, 3, 1).numpy())
        assert item["label"].item() == vid[0]  # the label is the class the video was written for
    assert all(name.split("_")[1] == cls for name, cls in _labels_by_name(ds).items())


def test_stratified_split_deterministic_and_disjoint(ucf, tmp_path):
    kw = dict(clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    train = LabelledVideoFolder(ucf, split="train", **kw)
    test = LabelledVideoFolder(ucf, split="test", **kw)
    assert set(train.videos).isdisjoint(test.videos) and len(train.videos) + len(test.videos) == 15
    per_class = collections.Counter(test.classes[lab] for lab in test.video_labels)
    assert per_class == {c: max(1, round(0.2 * n)) for c, n in CLASSES.items()}  # stratified: every class in test
    assert LabelledVideoFolder(ucf, split="test", **kw).videos == test.videos  # deterministic
    other_seed = LabelledVideoFolder(ucf, split="test", seed=1, **kw)
    assert collections.Counter(other_seed.video_labels) == collections.Counter(test.video_labels)


def test_stratified_split_ignores_order():
    by_class = {"a": [f"a/{i}.mp4" for i in range(10)], "b": [f"b/{i}.mp4" for i in range(7)], "c": ["c/0.mp4"]}
    first = stratified_split(by_class, test_fraction=0.2, seed=0)
    shuffled = {k: random.Random(3).sample(v, len(v)) for k, v in reversed(by_class.items())}
    assert stratified_split(shuffled, test_fraction=0.2, seed=0) == first
    assert sum(r.startswith("a/") for r in first) == 2 and sum(r.startswith("b/") for r in first) == 1
    assert "c/0.mp4" not in first  # a one-video class stays in train


def test_split_files_honoured(ucf, tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    train = ["Archery/v_Archery_g00_c01.avi 1", "Walk/v_Walk_g01_c01.avi 3", ""]
    (splits / "trainlist02.txt").write_text("\n".join(train))
    (splits / "testlist02.txt").write_text("BabyCrawling/v_BabyCrawling_g03_c01.avi\n")
    kw = dict(splits_dir=splits, fold=2, clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    ds = LabelledVideoFolder(ucf, split="train", **kw)
    assert _labels_by_name(ds) == {"v_Archery_g00_c01.avi": "Archery", "v_Walk_g01_c01.avi": "Walk"}
    assert ds.num_classes == 3  # classes come from the folder, not from the split
    ds = LabelledVideoFolder(ucf, split="test", **kw)
    assert _labels_by_name(ds) == {"v_BabyCrawling_g03_c01.avi": "BabyCrawling"}
    with pytest.raises(DataError, match="split file not found: .*trainlist01.txt"):
        LabelledVideoFolder(ucf, split="train", **{**kw, "fold": 1})
    (splits / "testlist02.txt").write_text("Walk/missing.avi 3\n")
    with pytest.raises(DataError, match="testlist02.txt: 1 listed video.*missing.avi"):
        LabelledVideoFolder(ucf, split="test", **kw)


def test_read_split_file_formats(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("A/x y.avi 3\r\nB/z.avi\n\n# comment\n./C/w.mp4 12\n")
    assert read_split_file(p) == ["A/x y.avi", "B/z.avi", "C/w.mp4"]


def test_not_a_labelled_layout(vt, tmp_path):
    vt.write_video(tmp_path / "flat" / "a.mkv", vt.coded_frames(4, 8, 8))
    with pytest.raises(DataError, match="root/<class>/<video>"):
        LabelledVideoFolder(tmp_path / "flat", cache_dir=tmp_path / "c")


def test_an_empty_test_split_says_why(vt, tmp_path):
    # One video per class: the stratified split keeps each for train, and the error said only "holds no video".
    for name in ("a", "b"):
        vt.write_video(tmp_path / "one_each" / name / "v.mkv", vt.coded_frames(4, 8, 8))
    kw = dict(clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(
        DataError, match=r"holds no video: each of its 2 class folder\(s\) holds a single video.*--splits"
    ):
        LabelledVideoFolder(tmp_path / "one_each", split="test", **kw)
    assert len(LabelledVideoFolder(tmp_path / "one_each", split="train", **kw)) == 2
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "trainlist01.txt").write_text("# nothing listed yet\n")
    with pytest.raises(DataError, match=r"holds no video: .*trainlist01.txt lists none$"):
        LabelledVideoFolder(tmp_path / "one_each", split="train", splits_dir=tmp_path / "lists", **kw)


@pytest.mark.skipif(not BASKETBALL.is_dir(), reason="../shared/data/basketball_actions not present")
def test_basketball_actions_loads(tmp_path):
    kw = dict(clip_len=6, size=(32, 32), cache_dir=tmp_path / "c", progress=False)
    ds = LabelledVideoFolder(BASKETBALL, split="all", **kw)
    assert ds.num_classes == 5 and len(ds) == 283 and ds.n_skipped == 0
    assert collections.Counter(ds.classes[i] for i in ds.video_labels) == {
        "dribbling": 68,
        "passing": 65,
        "defense": 64,
        "nothing": 57,
        "shooting": 29,
    }
    assert ds[0]["video"].shape == (6, 3, 32, 32)
    test = LabelledVideoFolder(BASKETBALL, split="test", **kw)
    assert len(test) == 57  # the 226/57 split the source quotes


@pytest.fixture
def flat(vt, tmp_path):
    """A flat folder of videos (15, ids 0-2 coding the class) and a labels table beside them."""
    root = tmp_path / "flat"
    rows = []
    for c, (name, n) in enumerate(CLASSES.items()):
        for i in range(n):
            f = f"clip_{c}{i}.avi" if i % 2 else f"sub/clip_{c}{i}.avi"  # some in a sub-folder: any layout works
            vt.write_video(root / f, vt.coded_frames(5, 8, 8, video_id=c), codec="mpeg4")
            rows.append((f, name))
    return root, rows


def _table(path: Path, rows, header="video,label,frames", sep=","):
    lines = ([header] if header else []) + [sep.join((f, c, "5")) for f, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header,name", [("video,label,frames", "labels.csv"), ("Path,Class,n", "l.csv"),
                                         (None, "nohead.csv"), ("file\tcategory\tn", "t.tsv"),
                                         ("video;label;n", "semi.csv")])  # fmt: skip
def test_labels_file_gives_the_classes(vt, flat, tmp_path, header, name):
    root, rows = flat
    table = _table(root / name, rows, header, "\t" if name.endswith(".tsv") else ";" if "semi" in name else ",")
    kw = dict(clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    ds = LabelledVideoFolder(table, split="all", **kw)
    assert ds.classes == sorted(CLASSES) and len(ds) == 15 and ds.root == root and ds.labels_file == table
    for i in range(len(ds)):
        vid, _ = vt.decode_id(ds[i]["video"].permute(0, 2, 3, 1).numpy())
        assert ds.classes[ds[i]["label"].item()] == list(CLASSES)[vid[0]]
    train, test = (LabelledVideoFolder(table, split=s, **kw) for s in ("train", "test"))
    assert set(train.videos).isdisjoint(test.videos) and len(train.videos) + len(test.videos) == 15
    assert collections.Counter(test.classes[lab] for lab in test.video_labels) == {
        c: max(1, round(0.2 * n)) for c, n in CLASSES.items()
    }


def test_labels_file_problems_name_the_row(flat, tmp_path):
    root, rows = flat
    kw = dict(split="all", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    cases = [
        (rows + [("gone.avi", "Walk")], "1 listed video(s) not found", "'gone.avi'"),
        (rows + [(rows[0][0], "Walk")], f"line {len(rows) + 2}", "listed as 'Archery' and 'Walk'"),
        (rows + [("", "Walk")], f"line {len(rows) + 2}", "need a video path and a class"),
    ]
    for bad, *said in cases:
        with pytest.raises(DataError) as e:
            LabelledVideoFolder(_table(root / "bad.csv", bad), **kw)
        assert all(s in str(e.value) for s in said) and "bad.csv" in str(e.value), e.value
    (root / "half.csv").write_text("video,frames\na.avi,5\n")
    with pytest.raises(DataError, match="names a path column but no class column"):
        LabelledVideoFolder(root / "half.csv", **kw)
    (root / "empty.csv").write_text("\n")
    with pytest.raises(DataError, match="is empty"):
        LabelledVideoFolder(root / "empty.csv", **kw)


def test_labels_file_through_build_dataset(vt, flat, tmp_path):
    from prednet2.datasets import build_dataset

    from prednet2.config import DataConfig

    root, rows = flat
    table = _table(root / "labels.csv", rows)
    cfg = DataConfig(clip_len=4, size=(8, 8), cache_dir=str(tmp_path / "c"))
    assert build_dataset(table, cfg=cfg, split="test", labelled=True, progress=False).num_classes == 3
    with pytest.raises(DataError, match="labels file names a labelled set for probes"):
        build_dataset(table, cfg=cfg, labelled=False, progress=False)
    vt.write_video(tmp_path / "loose" / "a.avi", vt.coded_frames(5, 8, 8), codec="mpeg4")
    with pytest.raises(DataError, match="or give a labels file"):  # a flat folder has no class folders
        build_dataset(tmp_path / "loose", cfg=cfg, split="test", labelled=True, progress=False)


def test_a_flat_folder_reads_the_labels_file_beside_its_videos(flat, tmp_path, caplog):
    root, rows = flat
    kw = dict(split="all", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    loose = [(f, c) for f, c in rows if "/" not in f]  # only the loose videos: no class folder at all
    for f, _ in rows:
        if "/" in f:
            (root / f).unlink()
    (root / "sub").rmdir()
    _table(root / "labels.csv", loose)
    with caplog.at_level("WARNING", logger="prednet2.datasets"):
        ds = LabelledVideoFolder(root, **kw)
    assert ds.labels_file == root / "labels.csv" and len(ds) == len(loose) and ds.num_classes == 3
    assert "has no class folders: reading the classes from labels.csv" in caplog.text
