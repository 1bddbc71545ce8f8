"""model.flow_weight: each unit's state predicts the motion vectors of the next frame (local terms, end to end)."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from prednet2.eval.common import input_motion

from prednet2 import Config, ModelConfig, build_model
from prednet2.config import ConfigError, given_keys
from prednet2.stack_checks import flow_weights_of
from prednet2.train_data import resolve_config
from prednet2.trainer import train
from tests.train_helpers import tiny_config

SMALL = dict(channels=(4, 6, 8), stem=2, motion_channels=2)


def make(**over):
    torch.manual_seed(0)
    cfg = {**SMALL, "flow_weight": 1.0, "flow_units": "all", **over}  # a head on every unit unless a test says
    if "flow_units" not in over and (cfg.get("flow_weights") or cfg["flow_weight"] == 0):
        del cfg["flow_units"]  # a list, or no target: the placement would go unread
    return build_model(dataclasses.replace(ModelConfig(), **cfg))


def inputs(b=2, t=4, h=16, w=16):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, t, 3, h, w, generator=g)
    mask = (torch.rand(b, t, 1, h, w, generator=g) > 0.5).float()
    flow = torch.randn(b, t, 2, h, w, generator=g)
    return x, mask, flow


def test_head_on_unit_0_only_and_its_term_is_added_to_unit_0s_loss():
    m0, m1 = make(flow_weight=0.0), make(flow_weights=(0.5, 0.0, 0.0))
    assert all(u.flow_head is None for u in m0.units)
    assert m1.units[0].flow_head is not None and all(u.flow_head is None for u in m1.units[1:])
    x, mask, flow = inputs()
    out0, out1 = m0(x, mask), m1(x, mask, flow=flow)
    assert "flow/0" not in out0.stats and "flow/0" in out1.stats and out1.stats["flow/0"] > 0
    # The same weights at another flow_weight: unit 0's loss moves by exactly the weight's change times the term,
    # and no other unit's loss moves.
    m2 = copy.deepcopy(m1)
    m2.flow_weights = (2.0, 0.0, 0.0)
    out2 = m2(x, mask, flow=flow)
    torch.testing.assert_close(out2.losses[0] - out1.losses[0], 1.5 * out1.stats["flow/0"])
    for l in (1, 2):
        torch.testing.assert_close(out2.losses[l], out1.losses[l])


def test_term_is_the_squared_error_on_unit_0s_grid_and_absent_at_the_first_frame():
    m = make(flow_weight=1.0)
    x, mask, flow = inputs(t=3)
    out = m(x, mask, flow=flow)
    head = m.units[0].flow_head
    want = torch.stack(
        [((head(out.states[0][:, t]) - torch.nn.functional.avg_pool2d(flow[:, t], 2)) ** 2).mean() for t in (1, 2)]
    ).mean()  # the head reads r(t), made before frame t; the first frame has nothing before it
    torch.testing.assert_close(out.stats["flow/0"], want)
    assert m(x[:, :1], mask[:, :1], flow=flow[:, :1]).stats["flow/0"] == 0


def test_the_weight_puts_a_head_on_every_unit_of_a_model_with_the_motion_stream():
    assert all(u.flow_head is not None for u in make().units)  # flow_weight=1: every unit
    assert all(u.flow_head is None for u in make(motion_channels=0).units)  # no motion stream, no flow target
    assert all(u.flow_head is None for u in make(flow_weight=0.0).units)
    default = dataclasses.replace(ModelConfig(), **SMALL)  # the default since round 152: 1 at the first and last unit
    assert default.flow_weight == 1 and [u.flow_head is not None for u in build_model(default).units] == [1, 0, 1]


def test_each_units_term_trains_that_unit_only():
    m = make()
    x, mask, flow = inputs()
    for l in range(3):
        m.zero_grad(set_to_none=True)
        m(x, mask, flow=flow).losses[l].backward()
        for k, u in enumerate(m.units):
            grads = [p.grad for p in u.parameters() if p.requires_grad]
            if k == l:
                assert any(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None or torch.all(g == 0) for g in grads), f"loss {l} leaked into unit {k}"
        assert m.units[l].flow_head.weight.grad.abs().sum() > 0


def test_without_flow_the_term_is_left_out():
    m = make()
    x, mask, flow = inputs()
    out, with_flow = m(x, mask), m(x, mask, flow=flow)  # streaming and evaluation pass no flow
    assert not any(k.startswith("flow/") for k in out.stats)
    for l in range(3):
        torch.testing.assert_close(with_flow.losses[l] - out.losses[l], with_flow.stats[f"flow/{l}"])


def test_the_state_learns_which_way_a_square_moves():
    """A square moving right or left (1 px/frame): after some steps the head's error is well below its start."""
    torch.manual_seed(0)
    m = make(flow_weights=(1.0, 0.0, 0.0))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    B, T = 4, 6
    x = torch.zeros(B, T, 3, 16, 16)
    mask = torch.zeros(B, T, 1, 16, 16)
    flow = torch.zeros(B, T, 2, 16, 16)
    for b in range(B):
        d = 1 if b % 2 == 0 else -1
        for t in range(T):
            c = 5 + d * t if d > 0 else 10 + d * t
            x[b, t, :, 6:10, c : c + 4] = 1.0
            mask[b, t, :, 6:10, c : c + 4] = 1.0
            flow[b, t, 0, 6:10, c : c + 4] = float(d)
    first = None
    for _ in range(60):
        out = m(x, mask, flow=flow)
        first = out.stats["flow/0"].item() if first is None else first
        opt.zero_grad()
        sum(out.losses).backward()
        opt.step()
    assert m(x, mask, flow=flow).stats["flow/0"].item() < 0.5 * first


def test_config_sets_the_data_option_and_refuses_what_cannot_work():
    default = resolve_config(Config.from_yaml(None, []))
    assert default.model.flow_weight == 1 and default.motion.flow is True  # on by default: the data carries the flow
    # Where no head can be built the default target is off, and config.yaml says so; the readout then leaves f out.
    for where in (["motion=off"], ["model.preset=prednet"]):
        off = resolve_config(Config.from_yaml(None, where))
        assert off.model.flow_weight == 0 and off.motion.flow is False
    assert resolve_config(Config.from_yaml(None, ["motion=off"])).model.readout == "a,r,da"  # what the stack reads
    cfg = Config.from_yaml(None, ["model.flow_weight=2"])  # a weight set away from the default
    on = resolve_config(cfg)
    assert on.motion.flow is True  # heads, so the data carries the flow
    with pytest.raises(ConfigError, match="model.flow_weight=2.0 needs the stack with motion on.*motion is off"):
        resolve_config(cfg.replace(["motion=off"]))
    with pytest.raises(ConfigError, match="PredNet baseline has no flow head"):
        resolve_config(Config.from_yaml(None, ["model.preset=prednet", "model.flow_weight=1"]))  # the preset's is 0
    sample = {"video": torch.zeros(4, 3, 16, 16, dtype=torch.uint8), "mask": torch.zeros(4, 1, 16, 16)}
    quiet = resolve_config(default, sample)  # masks and no flow (a dataset of one's own): the default goes off
    assert quiet.model.flow_weight == 0 and quiet.motion.flow is False
    with pytest.raises(ConfigError, match='yields no "flow" for the flow target; set motion.flow=true'):
        resolve_config(cfg, sample)
    with pytest.raises(ConfigError, match='yields no "flow".*a dataset or wrapper of your own must pass'):
        resolve_config(on, sample)  # motion.flow on (as the trainer sets it) and still no flow: the data dropped it
    # Evaluation data never computes the flow target.
    assert input_motion(on).flow is False and input_motion(on).enabled
    assert input_motion(resolve_config(cfg.replace(["model.flow_weight=0", "motion=off"]))) is None
    with pytest.raises(ConfigError, match=r"model.flow_weight=2.0 and model.flow_weights=\[1.0, 0.0, 0.0\]: the list"):
        resolve_config(cfg.replace(["model.flow_weights=[1,0,0]"]))  # set beside a list, it would go unread
    listed = resolve_config(Config.from_yaml(None, ["model.flow_weights=[1,0,0]"]))  # the default beside a list: 0
    assert listed.model.flow_weight == 0 and flow_weights_of(listed.model) == (1.0, 0.0, 0.0)


def test_configs_stored_before_the_key_load_without_the_flow_target():
    stored = {"model": {"preset": "tiny", "error_loss": "l2"}, "motion": {"enabled": True}}
    assert Config.from_stored(stored).model.flow_weight == 0.0  # trained before round 104: no flow heads
    assert Config.from_stored({"model": {"flow_weight": 1.0}}).model.flow_weight == 1.0


def test_a_training_run_learns_with_the_flow_term(tmp_path):
    cfg = tiny_config("motion.enabled=true", "model.flow_weight=1", f"data.cache_dir={tmp_path / 'cache'}", steps=4)
    summary = train(cfg, "synthetic:shapes", tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == saved["steps"] == 4
    run_cfg = Config.from_yaml(tmp_path / "run" / "config.yaml", [])
    assert run_cfg.model.flow_weight == 1 and run_cfg.motion.flow is True  # config.yaml states what ran


def test_per_unit_weights_put_a_head_on_each_unit_named():
    m = make(flow_weights=(0.0, 1.0, 2.0))
    assert m.units[0].flow_head is None and m.units[1].flow_head is not None and m.units[2].flow_head is not None
    x, mask, flow = inputs()
    out = m(x, mask, flow=flow)
    assert "flow/0" not in out.stats and out.stats["flow/1"] > 0 and out.stats["flow/2"] > 0
    head = m.units[2].flow_head  # unit 2 at stem 2 * 2^2 = 8: the target is averaged onto its 2x2 grid
    want = torch.stack(
        [((head(out.states[2][:, t]) - torch.nn.functional.avg_pool2d(flow[:, t], 8)) ** 2).mean() for t in (1, 2, 3)]
    ).mean()
    torch.testing.assert_close(out.stats["flow/2"], want)
    with pytest.raises(ValueError, match="model.flow_weights: 2 entries for 3 units"):
        make(flow_weights=(1.0, 1.0))
    cfg = Config.from_yaml(None, ["model.flow_weights=[0,1,0]"])
    assert resolve_config(cfg).motion.flow is True
    with pytest.raises(ConfigError, match=r"model.flow_weights=\[0.0, 1.0, 0.0\] needs"):
        resolve_config(cfg.replace(["motion=off"]))
    with pytest.raises(ConfigError, match=r"model.flow_weight=2.0 and model.flow_weights=\[0.0, 1.0, 0.0\]: the list"):
        resolve_config(cfg.replace(["model.flow_weight=2"]))  # one of them would go unread


def test_a_hidden_flow_head_is_nonlinear_and_trains_the_state_below_it():
    m = make(flow_weights=(1.0, 0.0, 1.0), flow_head_hidden=5)
    head = m.units[0].flow_head
    assert [type(x).__name__ for x in head] == ["Conv2d", "ReLU", "Conv2d"] and head[0].out_channels == 5
    assert m.units[1].flow_head is None and isinstance(m.units[2].flow_head, torch.nn.Sequential)
    x, mask, flow = inputs()
    out = m(x, mask, flow=flow)
    want = torch.stack(
        [((head(out.states[0][:, t]) - torch.nn.functional.avg_pool2d(flow[:, t], 2)) ** 2).mean() for t in (1, 2, 3)]
    ).mean()
    torch.testing.assert_close(out.stats["flow/0"], want)
    step, state = m.step(x[:, 0], None, mask[:, 0], flow=flow[:, 0])
    step, _ = m.step(x[:, 1], state, mask[:, 1], flow=flow[:, 1])
    step.terms["flow/0"].backward()  # the term reaches the unit's own recurrent cell, through the hidden layer
    assert head[0].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.units[0].cell.parameters())
    with pytest.raises(ValueError, match="model.flow_head_hidden shapes the flow heads, but this model has none"):
        make(flow_weight=0.0, flow_head_hidden=8)
    with pytest.raises(ConfigError, match="model.flow_head_hidden"):
        Config.from_yaml(None, ["model.flow_head_hidden=-1"])


def test_a_flow_head_share_reads_the_last_channels_of_the_state_only():
    m = make(flow_weights=(1.0, 0.0, 1.0), flow_head_share=0.5)
    assert [m.units[l].flow_inputs for l in (0, 2)] == [2, 4]  # ceil(0.5 * 4), ceil(0.5 * 8)
    assert m.units[0].flow_head.in_channels == 2 and m.units[2].flow_head.in_channels == 4
    x, mask, flow = inputs()
    out = m(x, mask, flow=flow)
    head = m.units[0].flow_head
    want = torch.stack(
        [((head(out.states[0][:, t, 2:]) - F.avg_pool2d(flow[:, t], 2)) ** 2).mean() for t in (1, 2, 3)]
    ).mean()
    torch.testing.assert_close(out.stats["flow/0"], want)
    # The flow term's gradient reaches the state only through the channels the head reads.
    r = out.states[0][:, 1].detach().requires_grad_(True)
    m.units[0].predict_flow(r).pow(2).sum().backward()
    assert r.grad[:, :2].abs().sum() == 0 and r.grad[:, 2:].abs().sum() > 0
    assert make(flow_weights=(1.0, 0.0, 1.0), flow_head_share=0.01).units[0].flow_inputs == 1  # at least one
    assert make(flow_weights=(1.0, 0.0, 1.0)).units[2].flow_inputs == 8  # the default reads every channel
    with pytest.raises(ValueError, match="model.flow_head_share says what the flow heads read, but this model has no"):
        make(flow_weight=0.0, flow_head_share=0.5)
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="model.flow_head_share"):
            Config.from_yaml(None, [f"model.flow_head_share={bad}"])


def test_a_flow_head_on_the_representation_reads_a():
    m = make(flow_weights=(0.0, 1.0, 1.0), flow_head_input="repr")
    assert m.units[0].flow_head is None and m.units[2].flow_head.in_channels == m.units[2].target_channels
    x, mask, flow = inputs()
    out = m(x, mask, flow=flow)
    head = m.units[1].flow_head
    want = torch.stack(
        [((head(out.targets[1][:, t]) - F.avg_pool2d(flow[:, t], 4)) ** 2).mean() for t in (1, 2, 3)]
    ).mean()
    torch.testing.assert_close(out.stats["flow/1"], want)  # the head reads a (the target, the same values)
    state_head = make(flow_weights=(0.0, 1.0, 1.0))  # the default reads the state: the same model as before
    assert state_head.units[2].flow_head.in_channels == state_head.units[2].hidden_channels
    with pytest.raises(ValueError, match="model.flow_head_input says what the flow heads read"):
        make(flow_weight=0.0, flow_head_input="repr")
    with pytest.raises(ConfigError, match="model.flow_head_input"):
        Config.from_yaml(None, ["model.flow_head_input=pixels"])
    mixed = make(flow_weight=1.0, flow_head_input="mixed")  # unit 0 reads its state, the units above their a
    assert mixed.units[0].flow_head.in_channels == mixed.units[0].hidden_channels
    assert [mixed.units[l].flow_head.in_channels for l in (1, 2)] == [mixed.units[l].target_channels for l in (1, 2)]
    assert not mixed.units[0].flow_reads_repr and mixed.units[1].flow_reads_repr and mixed.units[2].flow_reads_repr


@pytest.mark.parametrize(
    "units, L, want",
    [("all", 3, (2.0, 2.0, 2.0)), ("ends", 3, (2.0, 0.0, 2.0)), ("ends", 4, (2.0, 0.0, 0.0, 2.0)), ("ends", 1, (2.0,)),
     ("first", 4, (2.0, 0.0, 0.0, 0.0)), ("last", 2, (0.0, 2.0))],
)  # fmt: skip
def test_flow_units_places_flow_weight_on_the_units_it_names(units, L, want):
    from prednet2.stack_checks import flow_weights_of

    channels = tuple(8 * 2**i for i in range(L))
    cfg = ModelConfig(preset="tiny", channels=channels, motion_channels=1, flow_weight=2.0, flow_units=units)
    assert flow_weights_of(cfg) == want
    model = build_model(cfg)
    assert [u.flow_head is not None for u in model.units] == [w > 0 for w in want]


def test_flow_units_refuses_what_it_would_leave_unread():
    with pytest.raises(ValueError, match="model.flow_units=all places model.flow_weight, but model.flow_weights"):
        make(flow_weights=(1.0, 0.0, 1.0), flow_units="all")
    with pytest.raises(ValueError, match="model.flow_units=last places model.flow_weight, which is 0"):
        make(flow_weight=0.0, flow_units="last")
    with pytest.raises(ConfigError, match=r"model.flow_units: unknown value 'middle'; choose one of \['ends', 'all'"):
        Config.from_yaml(None, ["model.flow_units=middle"])
    cfg = Config.from_yaml(None, ["model.flow_weight=2", "model.flow_units=last", "motion=off"])
    with pytest.raises(ConfigError, match=r"model.flow_weight=2.0 needs the stack with motion on"):
        resolve_config(cfg)


def test_the_default_weight_given_by_hand_is_refused_where_no_head_can_be_built():
    # Left at its default the target goes off quietly; asked for by hand (a YAML file, --set, replace) it is refused.
    for where in (["model.flow_weight=1", "motion=off"], ["model.flow_weight=1", "model.preset=prednet"]):
        with pytest.raises(ConfigError, match=r"model.flow_weight=1.0 needs the stack with motion on"):
            resolve_config(Config.from_yaml(None, where))
    with pytest.raises(ConfigError, match=r"model.flow_weight=1.0 needs the stack with motion on.*motion is off"):
        resolve_config(Config.from_yaml(None, ["model.flow_weight=1"]).replace(["motion=off"]))
    with pytest.raises(ConfigError, match=r"model.readout=a,r,da,f reads the flow heads' prediction \(f\), but motion"):
        resolve_config(Config.from_yaml(None, ["model.readout=a,r,da,f", "motion=off"]))
    sample = {"video": torch.zeros(4, 3, 16, 16, dtype=torch.uint8), "mask": torch.zeros(4, 1, 16, 16)}
    with pytest.raises(ConfigError, match=r'model.readout=a,r,da,f .*but the dataset yields no "flow"'):
        resolve_config(Config.from_yaml(None, ["model.readout=a,r,da,f"]), sample)
    with pytest.raises(ConfigError, match=r'model.flow_weight=1.0: the dataset yields no "flow"'):
        resolve_config(Config.from_yaml(None, ["model.flow_weight=1"]), sample)
    # configs/dynamics.yaml gives both by hand: with motion off it says so instead of training something else
    with pytest.raises(ConfigError, match=r"model.flow_weight=1.0 needs the stack with motion on"):
        resolve_config(Config.from_yaml(Path(__file__).parents[1] / "configs" / "dynamics.yaml", ["motion=off"]))
    # a stored config (a checkpoint's) is as trained: nothing in it counts as asked for
    stored = Config.from_stored(Config.from_yaml(None, ["model.flow_weight=1"]).to_dict())
    assert given_keys(stored) == frozenset()
    assert resolve_config(stored.replace(["motion=off"])).model.flow_weight == 0
