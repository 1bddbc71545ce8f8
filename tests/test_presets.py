import pytest
import torch

from prednet2 import Config, build_model
from prednet2.config import preset_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_runs_forward(name):
    # Like timm's test over its registry: every preset builds, runs a short clip, and gives finite outputs.
    cfg = Config.from_dict({"model": {"preset": name}})
    torch.manual_seed(0)
    m = build_model(cfg.model)
    s = m.stride
    x = torch.rand(1, 2, cfg.model.in_channels, 2 * s, 2 * s)
    out = m(x)
    assert len(out.losses) >= 1 and all(torch.isfinite(v) for v in out.losses)
    assert len(out.preds) == m.num_layers
    for p in out.preds + out.errors + out.states:
        assert p.shape[:2] == (1, 2) and torch.isfinite(p).all()
    feats = m.extract_features(x)
    assert sorted(feats) == list(range(m.num_layers))
    assert all(f.shape[0] == 1 and torch.isfinite(f).all() for f in feats.values())


def test_registry_has_the_documented_presets():
    assert {"tiny", "small", "base"} <= set(preset_names())


def test_tiny_preset_is_the_dataclass_default():
    from prednet2.config import ModelConfig

    assert Config.from_dict({"model": {"preset": "tiny"}}).model == ModelConfig()
