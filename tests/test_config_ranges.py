"""prednet2.config_ranges: ranges declared on config fields, checked with errors that name key, value and range."""

import dataclasses

import pytest

from prednet2.config import Config, ConfigError
from prednet2.config_ranges import _one_of, _r, check_ranges, describe_range


@dataclasses.dataclass(frozen=True)
class _Inner:
    rate: float = _r(0.5, gt=0, lt=1)
    sizes: tuple[int, ...] = _r((1, 2), ge=1, min_len=1)
    span: tuple[float, float] = _r((1.0, 2.0), gt=0, ordered=True)


@dataclasses.dataclass(frozen=True)
class _Outer:
    kind: str = _one_of("a", "b")
    free: int = -7  # no metadata: any int passes
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_check_ranges_on_a_plain_dataclass_recurses_and_names_the_dotted_key():
    check_ranges(_Outer())
    with pytest.raises(ConfigError, match=r"^x\.kind: unknown value 'c'; choose one of \['a', 'b'\]$"):
        check_ranges(_Outer(kind="c"), "x.")
    with pytest.raises(ConfigError, match=r"^inner\.rate=1\.0 is out of range; expected > 0 and < 1$"):
        check_ranges(_Outer(inner=_Inner(rate=1.0)))
    with pytest.raises(ConfigError, match=r"inner\.sizes=\[1, 0\] \(entry 1: 0\)"):
        check_ranges(_Outer(inner=_Inner(sizes=(1, 0))))
    with pytest.raises(ConfigError, match="has 0 entries; expected at least 1"):
        check_ranges(_Outer(inner=_Inner(sizes=())))
    check_ranges(_Outer(inner=_Inner(span=(2.0, 2.0))))  # equal ends are a range
    with pytest.raises(ConfigError, match=r"^inner\.span: \[2\.0, 1\.0\] is not a \[low, high\] range"):
        check_ranges(_Outer(inner=_Inner(span=(2.0, 1.0))))


def test_describe_range():
    assert describe_range({"ge": 0, "lt": 1}) == ">= 0 and < 1"
    assert describe_range({"gt": 0.25}) == "> 0.25"


@pytest.mark.parametrize(
    "override, expect",
    [
        ("train.lr=-1", "train.lr=-1.0 is out of range; expected > 0"),
        ("data.batch_size=0", "data.batch_size=0 is out of range; expected >= 1"),
        ("train.window=0", "train.window=0 is out of range; expected >= 1"),
        ("data.fps=-5", "data.fps=-5.0 is out of range; expected >= 0"),
        ("data.clip_len=1", "data.clip_len=1 is out of range; expected >= 2"),
        ("data.size=[0,32]", "data.size=[0, 32] (entry 0: 0)"),
        ("model.var_weight=-0.1", "model.var_weight=-0.1 is out of range; expected >= 0"),
        ("model.ema_momentum=1.5", "expected >= 0 and <= 1"),
        ("model.channels=[]", "model.channels: [] has 0 entries"),
        ("model.cell=rnn", "model.cell: unknown value 'rnn'; choose one of ['gru', 'lstm']"),
        ("train.mode=sideways", "train.mode: unknown value"),
        ("motion.backend=magic", "motion.backend: unknown value"),
        ("data.synthetic_speed=[2,1]", "data.synthetic_speed: [2.0, 1.0] is not a [low, high] range"),
        ("data.synthetic_speed=[0,1]", "data.synthetic_speed=[0.0, 1.0] (entry 0: 0.0)"),
        ("data.synthetic_deform=2", "data.synthetic_deform=2.0 is out of range; expected >= 0 and <= 1"),
        ("train.lr=.inf", "train.lr=inf is not a finite number; expected > 0"),
        ("model.cov_weight=nan", "model.cov_weight=nan is not a finite number"),
        ("data.synthetic_speed=[1,.inf]", "data.synthetic_speed=[1.0, inf] (entry 1: inf) is not a finite number"),
    ],
)
def test_declared_ranges_name_key_value_and_range(override, expect):
    with pytest.raises(ConfigError) as e:
        Config.from_yaml(None, [override])
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_every_default_and_preset_is_in_range():
    from prednet2.config import preset_names

    check_ranges(Config())
    for name in preset_names():
        Config.from_yaml(None, [f"model.preset={name}"])


def test_fields_without_metadata_pass_and_ranges_are_metadata():
    """The validator reads field metadata only: a field with none accepts any value of its type."""
    from prednet2.config import TrainConfig

    meta = {f.name: dict(f.metadata) for f in dataclasses.fields(TrainConfig)}
    assert meta["lr"] == {"range": {"gt": 0}} and meta["mode"]["choices"] == ("local", "end_to_end")
    assert meta["device"] == {} and Config.from_yaml(None, ["train.device=cuda:3"]).train.device == "cuda:3"


def test_dataclasses_built_directly_get_named_errors_not_type_errors():
    """A config dataclass built by hand skips from_dict's type coercion; check_ranges still names the key (a list
    where a tuple is declared is read as one)."""
    from prednet2.config import DataConfig, ModelConfig

    with pytest.raises(ConfigError, match=r"data.size: expected a tuple such as \(64, 64\), got int 32"):
        check_ranges(DataConfig(size=32), "data.")
    with pytest.raises(ConfigError, match=r"model.channels=\[16, '32'\] \(entry 1: '32'\) is not a number"):
        check_ranges(ModelConfig(channels=(16, "32")), "model.")
    with pytest.raises(ConfigError, match=r"model.channels=\[8, 0\] \(entry 1: 0\) is out of range"):
        check_ranges(ModelConfig(channels=[8, 0]), "model.")
    check_ranges(ModelConfig(channels=[8, 16]), "model.")
