"""Labels tables (``--data FOLDER/labels.csv``): rows that name the same video twice, separators, encodings."""

from pathlib import Path

import pytest
from prednet2.datasets.errors import DataError
from prednet2.datasets.labelled import LabelledVideoFolder, read_labels_file


@pytest.fixture
def clips(vt, tmp_path):
    root = tmp_path / "flat"
    for name in ("a.avi", "b.avi", "c.avi", "d.avi"):
        vt.write_video(root / "clips" / name, vt.coded_frames(4, 8, 8), codec="mpeg4")
    return root


def test_one_video_under_two_spellings_is_one_video(clips):
    # an absolute path or a ../ detour names the same file as its relative path: it must not count twice
    table = clips / "labels.csv"
    table.write_text(f"clips/a.avi,jump\n{clips}/clips/b.avi,run\n../flat/clips/c.avi,run\nclips/x/../d.avi,jump\n")
    assert read_labels_file(table) == {"clips/a.avi": "jump", "clips/b.avi": "run", "clips/c.avi": "run",
                                       "clips/d.avi": "jump"}  # fmt: skip
    table.write_text(f"clips/a.avi,jump\n{clips}/clips/a.avi,run\nclips/b.avi,run\n")
    with pytest.raises(DataError, match="line 2: clips/a.avi is listed as 'jump' and 'run'"):
        read_labels_file(table)
    table.write_text("clips/a.avi,jump\n../flat/clips/./a.avi,run\nclips/b.avi,run\n")
    with pytest.raises(DataError, match="line 2: clips/a.avi is listed as 'jump' and 'run'"):
        LabelledVideoFolder(table, split="all", clip_len=4, size=(8, 8), progress=False)


def test_a_semicolon_export_whose_paths_hold_commas(clips):
    # a path with a comma in the first row of a headerless ;-export: the rows together tell the separator
    (clips / "clips" / "a.avi").rename(clips / "clips" / "a, take 2.avi")
    table = clips / "labels.csv"
    for text in ("clips/a, take 2.avi;jump\nclips/b.avi;run\n", "clips/b.avi;run\nclips/a, take 2.avi;jump\n"):
        table.write_text(text)
        assert read_labels_file(table) == {"clips/a, take 2.avi": "jump", "clips/b.avi": "run"}
    table.write_text("video,label\nclips/b;1.avi,run\n")  # a ;-free header: a comma table, whatever the paths hold
    assert read_labels_file(table) == {"clips/b;1.avi": "run"}


def test_a_table_that_is_not_utf8_or_lists_nothing_says_what_to_do(clips):
    table = clips / "labels.csv"
    table.write_bytes("video,label\nclips/a.avi,saut\u00e9\n".encode("cp1252"))  # a spreadsheet's legacy export
    with pytest.raises(DataError, match=r"labels.csv is not UTF-8 text .*save it as UTF-8"):
        read_labels_file(table)
    table.write_text("video,label\n\n")
    with pytest.raises(DataError, match=r"labels file .*labels.csv lists no video under its header"):
        LabelledVideoFolder(table, split="all", clip_len=4, size=(8, 8), progress=False)


def test_a_folder_whose_labels_csv_disagrees_with_its_sub_folders(vt, clips, tmp_path, caplog):
    # videos in one sub-folder (clips/) and their classes in labels.csv: the sub-folder is not a class, the table is
    kw = dict(split="all", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    (clips / "labels.csv").write_text("video,label\nclips/a.avi,jump\nclips/b.avi,run\nclips/c.avi,jump\n")
    with caplog.at_level("WARNING", logger="prednet2.datasets"):
        ds = LabelledVideoFolder(clips, **kw)
    assert ds.classes == ["jump", "run"] and ds.labels_file == clips / "labels.csv"
    assert "reading the table" in caplog.text
    assert LabelledVideoFolder(clips / "labels.csv", **kw).classes == ["jump", "run"]
    # several class folders and a table that groups their videos otherwise: the folders, and a warning naming it
    for name in ("a", "b"):
        vt.write_video(tmp_path / "two" / "x" / f"{name}.avi", vt.coded_frames(4, 8, 8), codec="mpeg4")
        vt.write_video(tmp_path / "two" / "y" / f"{name}.avi", vt.coded_frames(4, 8, 8), codec="mpeg4")
    (tmp_path / "two" / "labels.csv").write_text("x/a.avi,coarse\nx/b.avi,coarse\ny/a.avi,coarse\n")
    caplog.clear()
    with caplog.at_level("WARNING", logger="prednet2.datasets"):
        ds = LabelledVideoFolder(tmp_path / "two", **kw)
    assert ds.classes == ["x", "y"] and ds.labels_file is None and "give --data" in caplog.text
    # a table that agrees with the class folders (as basketball_actions ships), names or numbers: the folders
    for name in ("a", "b"):
        vt.write_video(tmp_path / "ucf" / "jump" / f"{name}.avi", vt.coded_frames(4, 8, 8), codec="mpeg4")
        vt.write_video(tmp_path / "ucf" / "run" / f"{name}.avi", vt.coded_frames(4, 8, 8), codec="mpeg4")
    for table in ("jump/a.avi,jump\nrun/a.avi,run\n", "jump/a.avi,0\njump/b.avi,0\nrun/b.avi,1\n"):
        (tmp_path / "ucf" / "labels.csv").write_text(table)
        ds = LabelledVideoFolder(tmp_path / "ucf", **kw)
        assert ds.classes == ["jump", "run"] and len(ds) == 4 and ds.labels_file is None


def test_split_lists_spell_paths_as_the_table_does(clips, tmp_path):
    # a table of absolute paths and split lists copied from it: both name the same videos
    table = clips / "labels.csv"
    table.write_text("".join(f"{clips}/clips/{n}.avi,{c}\n" for n, c in zip("abcd", ["jump", "run"] * 2)))
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "trainlist01.txt").write_text(f"{clips}/clips/a.avi\n./clips/b.avi\n")
    (tmp_path / "sp" / "testlist01.txt").write_text(f"{clips}/clips/c.avi\nclips/x/../d.avi\n")
    kw = dict(splits_dir=tmp_path / "sp", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    train, test = (LabelledVideoFolder(table, split=s, **kw) for s in ("train", "test"))
    assert [Path(p).name for p in train.videos] == ["a.avi", "b.avi"]
    assert [Path(p).name for p in test.videos] == ["c.avi", "d.avi"]


def test_videos_beside_the_tables_folder_split_alike_wherever_the_data_lies(vt, tmp_path):
    # the stratified split hashes the row keys: ../videos/x.avi must stay relative, not become /somewhere/videos/x.avi
    splits = []
    for where in ("one", "two/deeper"):
        base = tmp_path / where
        for i in range(6):
            vt.write_video(base / "videos" / f"v{i}.avi", vt.coded_frames(4, 8, 8), codec="mpeg4")
        (base / "tables").mkdir()
        table = base / "tables" / "labels.csv"
        table.write_text("".join(f"../videos/v{i}.avi,{'ab'[i % 2]}\n" for i in range(6)))
        assert sorted(read_labels_file(table)) == [f"../videos/v{i}.avi" for i in range(6)]
        ds = LabelledVideoFolder(table, split="test", clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
        splits.append(sorted(Path(p).name for p in ds.videos))
    assert splits[0] == splits[1]


def test_a_missing_labels_file_is_not_called_a_folder(tmp_path):
    from prednet2.datasets import build_dataset

    from prednet2.config import DataConfig

    with pytest.raises(DataError) as e:
        build_dataset(tmp_path / "labels.csv", cfg=DataConfig(), split="test", labelled=True, progress=False)
    assert "labels.csv: no such labels file" in str(e.value) and "folder" not in str(e.value).split(";")[0], e.value


def test_a_labels_file_under_home_given_with_a_tilde(clips, monkeypatch):
    monkeypatch.setenv("HOME", str(clips.parent))
    (clips / "labels.csv").write_text("clips/a.avi,jump\nclips/b.avi,run\n")
    ds = LabelledVideoFolder("~/flat/labels.csv", split="all", clip_len=4, size=(8, 8), progress=False)
    assert ds.classes == ["jump", "run"] and ds.labels_file == clips / "labels.csv"


def test_a_stray_quote_in_a_long_table_is_one_line(clips):
    # an unclosed quote makes the rest of the file one field; past csv's field limit that raised csv.Error
    table = clips / "labels.csv"
    table.write_text('video,label\n"clips/a.avi,jump\n' + "".join(f"clips/b{i}.avi,run\n" for i in range(12000)))
    with pytest.raises(DataError, match=r"labels file .*labels.csv line 2: .*field larger than field limit"):
        read_labels_file(table)


def test_a_path_too_long_for_the_file_system_is_a_missing_video(clips):
    table = clips / "labels.csv"
    table.write_text(f"clips/{'x' * 300}.avi,jump\nclips/b.avi,run\n")  # (a row run together: one long "path")
    with pytest.raises(DataError, match=r"labels.csv: 1 listed video\(s\) not found .*xxx"):
        LabelledVideoFolder(table, split="all", clip_len=4, size=(8, 8), progress=False)
    ds = LabelledVideoFolder(clips, split="all", clip_len=4, size=(8, 8), progress=False)  # beside class folders
    assert ds.classes == ["clips"]  # the one readable row agrees with the folder: the folders are read


def test_a_split_list_that_is_not_utf8_names_itself(tmp_path):
    from prednet2.datasets.labelled import read_split_file

    (tmp_path / "trainlist01.txt").write_bytes("clips/caf\u00e9.avi\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"trainlist01.txt is not UTF-8 text .*save it as UTF-8"):
        read_split_file(tmp_path / "trainlist01.txt")
