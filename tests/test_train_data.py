"""prednet2.train_data.resolve_config: what follows from the data, and what the data contradicts."""

import pytest
import torch

from prednet2.config import Config, ConfigError
from prednet2.train_data import resolve_config


def _sample(channels: int) -> dict:
    return {"video": torch.zeros(4, channels, 16, 16, dtype=torch.uint8), "mask": torch.zeros(4, 1, 16, 16)}


def test_in_channels_follows_the_data_from_its_default():
    cfg = Config.from_yaml(None, [])
    assert resolve_config(cfg, _sample(1)).model.in_channels == 1  # grayscale / MNIST
    assert resolve_config(cfg, _sample(3)).model.in_channels == 3
    gray = Config.from_yaml(None, ["model.in_channels=1"])
    assert resolve_config(gray, _sample(1)).model.in_channels == 1  # a grayscale run's own config, resumed


@pytest.mark.parametrize(
    "value,channels,needle",
    [(4, 3, "leave model.in_channels out"), (1, 3, "data.grayscale=true"), (2, 1, "has 1 channel")],
)
def test_an_in_channels_the_data_contradicts_is_refused(value, channels, needle):
    cfg = Config.from_yaml(None, [f"model.in_channels={value}"])
    with pytest.raises(ConfigError, match=rf"^model\.in_channels={value} but the data .*{needle}"):
        resolve_config(cfg, _sample(channels))


def test_prepare_train_data_reads_every_clip_once_into_the_cache(tmp_path):
    from prednet2.train_data import prepare_train_data

    sets = ["model.channels=[4,8]", "data.size=[16,16]", "data.clip_len=4", "data.n_synthetic=5",
            f"data.cache_dir={tmp_path}"]  # fmt: skip
    got = prepare_train_data(Config.from_yaml(None, sets), "synthetic:shapes", progress=False)
    assert got == {"clips": 5, "motion": True, "computed": 5}
    assert prepare_train_data(Config.from_yaml(None, sets), "synthetic:shapes", progress=False)["computed"] == 0
    mix = prepare_train_data(Config.from_yaml(None, sets), "synthetic:shapes+synthetic:trajectories", progress=False)
    assert mix["motion"] and mix["computed"] == 5  # the mixture's parts counted: trajectories' clips are new
