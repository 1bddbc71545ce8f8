"""prednet2/outputs.py: detach_state cuts the graph; StackOutput stacks steps over time on first access."""

import torch

from prednet2 import ModelConfig, PredictiveStack, detach_state


def test_detach_state_cuts_the_graph_and_keeps_values():
    m = PredictiveStack(ModelConfig(channels=(4, 8)))
    out = m(torch.rand(2, 3, 3, 16, 16))
    s = out.state
    assert any(x.requires_grad for x in s.r if x is not None)
    d = detach_state(s)
    assert d.t == s.t == 3
    for a, b in zip(s.r + s.a + s.e, d.r + d.a + d.e):
        assert not b.requires_grad and torch.equal(a, b)
    assert detach_state(None) is None


def test_stack_output_stacks_over_time_lazily():
    m = PredictiveStack(ModelConfig(channels=(4, 8)))
    out = m(torch.rand(2, 5, 3, 16, 16))
    assert out._cache == {}
    preds = out.preds
    assert [p.shape[:2] for p in preds] == [(2, 5), (2, 5)]
    torch.testing.assert_close(preds[1][:, 3], out.steps[3].preds[1])
    assert out.preds is preds  # cached, not stacked twice
    assert out.frame_errors[0].shape == (2, 5)
