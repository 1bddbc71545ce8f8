"""prednet2.config: frozen dataclasses, presets, YAML and --set overrides with key-naming errors."""

import dataclasses
import pathlib

import pytest

from prednet2.config import Config, ConfigError, given_keys, parse_set


def test_defaults_are_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]


def test_set_overrides_and_types():
    cfg = Config.from_yaml(None, ["train.lr=1e-2", "data.size=[32, 48]", "model.channels=[8, 16]", "train.steps=7"])
    assert cfg.train.lr == pytest.approx(0.01)
    assert cfg.data.size == (32, 48)
    assert cfg.model.channels == (8, 16)
    assert cfg.train.steps == 7


def test_motion_off_shortcut():
    assert Config.from_yaml(None, ["motion=off"]).motion.enabled is False
    assert Config.from_yaml(None, ["motion=on"]).motion.enabled is True
    with pytest.raises(ConfigError, match="motion"):
        Config.from_yaml(None, ["motion=sideways"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lrr=1", "train.lrr"),
        ("nosection.x=1", "nosection"),
        ("train.steps=abc", "train.steps"),
        ("train.amp=3", "train.amp"),
        ("data.size=[1,2,3]", "data.size"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.from_yaml(None, [override])


def test_an_anchor_that_undoes_every_update_is_refused_with_both_keys():
    """lr x anchor_weight above 1 would be capped at a full pull back to init: nothing learned, so it is an error."""
    with pytest.raises(ConfigError, match=r"train\.anchor_weight=1e\+09 with train\.lr=0\.003.*below 1 / lr"):
        Config.from_yaml(None, ["train.anchor_weight=1e9"])
    with pytest.raises(ConfigError, match=r"train\.lr=5"):
        Config.from_yaml(None, ["train.lr=5"])  # the default anchor 0.3 at a rate of 5
    assert Config.from_yaml(None, ["train.lr=1e-2", "train.anchor_weight=100"]).train.anchor_weight == 100  # = 1
    assert Config.from_yaml(None, ["train.lr=5", "train.anchor_weight=0"]).train.lr == 5  # the anchor off


@pytest.mark.parametrize(
    "sets, msg",
    [
        (["model=small"], "model: expected a mapping of model keys, got 'small'; a preset is model.preset=small"),
        (["train=fast", "train.lr=1"], "train: given both a value ('fast') and keys below it (train.lr)"),
        (["data.n_synthetic=16", "data=5"], "data: given both a value (5) and keys below it (data.n_synthetic)"),
        (["data.size=[32,32]", "data.size.x=1"], "data.size: given both a value ([32, 32]) and keys below it"),
    ],
)
def test_a_value_and_a_section_under_one_key_is_an_error_not_a_silent_drop(sets, msg):
    with pytest.raises(ConfigError) as e:
        Config.from_yaml(None, sets)
    assert msg in str(e.value)


def test_motion_off_survives_a_later_motion_key():
    """`--set motion=off` is the shortcut for motion.enabled=false; a motion.* key after it must not turn it on."""
    for sets in (["motion=off", "motion.backend=farneback"], ["motion.backend=farneback", "motion=off"]):
        cfg = Config.from_yaml(None, sets)
        assert (cfg.motion.enabled, cfg.motion.backend) == (False, "farneback"), sets
    assert not Config().replace(["motion=off", "motion.backend=farneback"]).motion.enabled


def test_set_needs_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set("train.lr")


def test_yaml_roundtrip(tmp_path):
    cfg = Config.from_yaml(None, ["train.lr=0.5", "model.cell=lstm"])
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml(extra={"git_commit": "abc"}))
    # Extra top-level keys (git commit) are metadata, not config: strip them on reload.
    import yaml

    d = yaml.safe_load(p.read_text())
    d.pop("git_commit")
    assert Config.from_dict(d) == cfg


def test_yaml_unknown_key_names_it(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"train\.stepz"):
        Config.from_yaml(p)


def test_a_key_given_twice_in_the_yaml_names_it_and_both_lines(tmp_path):
    # PyYAML kept the last of two: a second train: section pasted below the first replaced it without a word.
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 1.0e-3\nmodel:\n  cell: gru\ntrain:\n  steps: 5\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: not valid YAML \(line 5, column 1: 'train' given twice \(first on line 1\)\)"
    ):
        Config.from_yaml(p)
    p.write_text("train:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    with pytest.raises(ConfigError, match=r"line 3, column 3: 'lr' given twice \(first on line 2\)"):
        Config.from_yaml(p)
    p.write_text("train:\n  lr: 1.0e-3\nmodel:\n  channels: [4, 8]\n")  # the same key in two sections is fine
    assert Config.from_yaml(p).train.lr == 1e-3


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.from_yaml(tmp_path / "nope.yaml")


def test_a_folder_or_binary_file_as_the_yaml_names_it(tmp_path):
    with pytest.raises(ConfigError, match=f"config {tmp_path} is a folder; give a YAML file"):
        Config.from_yaml(tmp_path)
    (tmp_path / "tiny.yaml").write_text("model: {preset: tiny}\n")  # a folder of configs (configs/) names them
    with pytest.raises(ConfigError, match=f"is a folder; give a YAML file, e.g. {tmp_path / 'tiny.yaml'}$"):
        Config.from_yaml(tmp_path)
    (tmp_path / "config.yaml").write_text("model: {preset: tiny}\n")  # a run folder names its own config
    with pytest.raises(ConfigError, match=f"is a folder; give a YAML file, e.g. {tmp_path / 'config.yaml'}$"):
        Config.from_yaml(tmp_path)
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04\x80\xff\x00binary")  # a checkpoint given as --config
    with pytest.raises(ConfigError, match="last.pt: a binary file, not a YAML config"):  # was UnicodeDecodeError
        Config.from_yaml(tmp_path / "last.pt")


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="tiny"):
        Config.from_yaml(None, ["model.preset=enormous"])


def test_replace_keeps_other_fields():
    cfg = Config.from_yaml(None, ["train.lr=0.5"])
    cfg2 = cfg.replace(["train.steps=3"])
    assert cfg2.train.lr == 0.5 and cfg2.train.steps == 3


def test_from_stored_gives_missing_keys_their_old_meaning(monkeypatch):
    """A config stored before a key existed gets the key's old value (STORED_BEFORE), not today's default, so an old
    checkpoint keeps the L1 error at weight 1 and a constant rate; a complete stored config is read as it is."""
    from prednet2.config import STORED_BEFORE

    assert Config.from_stored(Config().to_dict()) == Config()
    d = Config().to_dict()
    for section, old in STORED_BEFORE.items():
        for key in old:
            del d[section][key]
    cfg = Config.from_stored(d)
    assert (cfg.model.error_loss, cfg.model.error_weight) == ("l1", 1.0)
    assert (cfg.train.lr_schedule, cfg.train.decay_start) == ("constant", 0)
    # as if the default had changed since the config was stored
    monkeypatch.setitem(STORED_BEFORE, "model", {**STORED_BEFORE["model"], "error_weight": 0.5})
    assert Config.from_stored(d).model.error_weight == 0.5
    assert Config.from_dict(d).model.error_weight == Config().model.error_weight  # from_dict: today's default
    assert Config.from_stored(d).replace(["model.error_loss=l2"]).model.error_loss == "l2"  # --set still wins


def test_plausible_api_mistakes_are_named():
    """A string where a list of --set strings goes, a list where a dict goes, and a ModelConfig that names a preset
    without holding its fields (only from_dict/from_yaml apply presets) are refused saying what to pass instead."""
    import prednet2
    from prednet2.config import ModelConfig

    with pytest.raises(ConfigError, match=r"got the string 'motion=off'; pass \['motion=off'\]"):
        Config.from_yaml(None, "motion=off")
    with pytest.raises(ConfigError, match="Config.replace: sets must be a list"):
        Config().replace("train.lr=1e-3")
    with pytest.raises(ConfigError, match=r"expected a dict .* use Config.from_yaml\(None, \[...\]\)"):
        Config.from_dict(["motion=off"])
    small = Config.from_yaml(None, ["model.preset=small", "model.channels=[8,8,8]"]).model
    assert prednet2.build_model(small).cfg.channels == (8, 8, 8)  # a preset applied, then changed: fine
    # a preset applied and every field it sets changed back to the defaults is a valid config too (a check that
    # refused ModelConfig(preset="small") by its values, which equal these, was dropped for refusing this one)
    back = ["model.preset=small", "model.channels=[16,32,64]", "model.input_kernel=1"]
    assert prednet2.build_model(Config.from_yaml(None, back).model).cfg.preset == "small"
    assert prednet2.build_model(ModelConfig(preset="tiny")).num_layers == 3


def test_the_dynamics_config_is_the_default_written_out_and_trains_its_flow_heads():
    from prednet2 import build_model
    from prednet2.stack_checks import flow_weights_of
    from prednet2.train_data import resolve_config

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "dynamics.yaml"
    cfg = resolve_config(Config.from_yaml(path))
    assert flow_weights_of(cfg.model) == (1.0, 0.0, 1.0) and cfg.model.readout == "a,r,da,f" and cfg.motion.flow
    assert cfg.train.anchor_weight == 1.0 and cfg.motion.enabled and cfg.train.steps == 600
    model = build_model(cfg.model)
    assert [u.flow_head is not None for u in model.units] == [True, False, True]
    base = resolve_config(Config.from_yaml(path, ["model.preset=base"]))  # a placement: it fits four units too
    assert flow_weights_of(base.model) == (1.0, 0.0, 0.0, 1.0) and base.motion.flow
    default = resolve_config(Config.from_yaml(None, ["train.steps=600"]))  # the default since round 152
    assert default.model == cfg.model and default.train.anchor_weight == cfg.train.anchor_weight


def test_the_appearance_config_is_the_default_before_round_152():
    from prednet2 import build_model
    from prednet2.train_data import resolve_config

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "appearance.yaml"
    cfg = resolve_config(Config.from_yaml(path))
    assert cfg.model.flow_weight == 0 and cfg.model.readout == "a,r,da" and not cfg.motion.flow
    assert cfg.train.anchor_weight == 0.3 and cfg.motion.enabled
    assert all(u.flow_head is None for u in build_model(cfg.model).units)


def test_given_keys_are_the_dotted_keys_set_by_hand():
    cfg = Config.from_yaml(None, ["train.lr=1e-3", "motion=off"])
    assert given_keys(cfg) == {"train.lr", "motion.enabled"}
    assert given_keys(cfg.replace({"model": {"preset": "small"}})) == {"train.lr", "motion.enabled", "model.preset"}
    assert given_keys(Config.from_dict({"data": {"clip_len": 8}})) == {"data.clip_len"}
    assert given_keys(Config()) == frozenset()
    assert cfg == Config.from_dict(cfg.to_dict())  # not a field: equality and to_dict leave it out
