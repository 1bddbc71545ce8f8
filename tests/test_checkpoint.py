"""prednet2.checkpoint: atomic saves, weights_only loading, strict loading with a readable mismatch error."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from train_helpers import tiny_config

from prednet2 import build_model
from prednet2.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    get_rng_state,
    load_checkpoint,
    load_model,
    load_model_state,
    resolve_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from prednet2.config import Config
from prednet2.trainer import build_optimizer


def _model_opt(cfg: Config):
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt, sched = build_optimizer(model, cfg)
    return model, opt, sched


def test_save_load_roundtrip(tmp_path):
    cfg = tiny_config()
    model, opt, sched = _model_opt(cfg)
    path = save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=sched, config=cfg, step=7,
                           extra={"epoch": 1})  # fmt: skip
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["extra"] == {"epoch": 1}
    assert Config.from_dict(ckpt["config"]) == cfg
    assert isinstance(ckpt["git_commit"], str) and ckpt["prednet2_version"]
    loaded, cfg2 = load_model(path)
    assert cfg2 == cfg and not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_old_checkpoint_loads_with_the_loss_it_was_trained_with(tmp_path, monkeypatch):
    """A checkpoint whose config predates model.error_loss / error_weight (and train.decay_start) loads with their
    old meaning (config.STORED_BEFORE), whatever today's defaults are, so its losses are those it was trained with."""
    from prednet2 import config

    monkeypatch.setitem(config.STORED_BEFORE, "model", {"error_loss": "l1", "error_weight": 0.5})
    cfg = tiny_config()
    model, opt, sched = _model_opt(cfg)
    path = save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=sched, config=cfg, step=1)
    ckpt = load_checkpoint(path)
    for key in ("error_loss", "error_weight"):
        del ckpt["config"]["model"][key]
    del ckpt["config"]["train"]["decay_start"]
    atomic_torch_save(ckpt, path)
    loaded, cfg2 = load_model(path)
    assert (cfg2.model.error_loss, cfg2.model.error_weight, cfg2.train.decay_start) == ("l1", 0.5, 0)
    assert loaded.layer_weights == (0.5,) * loaded.num_layers


def test_atomic_save_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"model": {"w": torch.ones(3)}, "config": {}}, path)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial garbage")  # half a file, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"model": {"w": torch.zeros(3)}, "config": {}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_weights_only_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a prednet2 checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_resolve_checkpoint_takes_a_file_or_a_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.pt"
    torch.save({"model": {}, "config": {}}, last)
    assert resolve_checkpoint(last) == last
    assert resolve_checkpoint(run) == last  # the run folder train.py wrote
    with pytest.raises(CheckpointError, match="x.pt: no such file"):
        resolve_checkpoint(tmp_path / "x.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: a folder without checkpoints/last.pt"):
        resolve_checkpoint(tmp_path / "empty")


def test_text_file_is_named_as_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.pt: not a checkpoint \(torch.save writes a zip archive"):
        load_checkpoint(tmp_path / "notes.pt")


def test_truncated_checkpoint_is_named_as_truncated(tmp_path):
    """A copy cut short: torch.load only says "Invalid argument"; the error says what happened and what to do."""
    full = tmp_path / "full.pt"
    torch.save({"model": {"w": torch.randn(64, 64)}, "config": {}}, full)
    (tmp_path / "cut.pt").write_bytes(full.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match=r"cut.pt: truncated or damaged checkpoint .*checkpoints/best.pt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_strict_mismatch_names_keys_shapes_and_config(tmp_path):
    cfg_a = tiny_config()
    cfg_b = tiny_config("model.channels=[4,6]")
    a, opt, _ = _model_opt(cfg_a)
    path = save_checkpoint(tmp_path / "a.pt", model=a, optimizer=opt, config=cfg_a, step=1)
    b = build_model(cfg_b.model)
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError) as e:
        load_model_state(b, ckpt["model"], source=path, ckpt_config=ckpt["config"], model_config=cfg_b.to_dict())
    msg = str(e.value)
    assert "a.pt" in msg and "shape mismatch" in msg
    assert "units.1." in msg and "checkpoint (8," in msg and "model (6," in msg  # a key, both shapes
    assert "model.channels: [4, 8] -> [4, 6]" in msg
    # A deeper model: keys missing from the checkpoint are named too.
    c = build_model(tiny_config("model.channels=[4,8,8]").model)
    with pytest.raises(CheckpointError, match=r"missing in checkpoint units\.2\."):
        load_model_state(c, ckpt["model"], source=path)


def test_rng_state_roundtrip_is_weights_only_safe(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    state = get_rng_state()
    atomic_torch_save({"rng": state}, tmp_path / "r.pt")
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_a_folder_and_a_config_section_are_named(tmp_path):
    """load_model(RUN) says where a run folder's checkpoint is (it said 'not found' of a folder that exists);
    save_checkpoint with cfg.model or a dict says to pass the whole Config (an AttributeError before)."""
    cfg = tiny_config()
    model = build_model(cfg.model)
    with pytest.raises(CheckpointError, match=r"a folder, not a checkpoint file; .*checkpoints/last.pt"):
        load_model(tmp_path)
    for wrong in (cfg.model, cfg.to_dict()):
        with pytest.raises(TypeError, match="config must be the run's prednet2.config.Config"):
            save_checkpoint(tmp_path / "x.pt", model=model, optimizer=None, config=wrong, step=1)
    assert not (tmp_path / "x.pt").exists()
