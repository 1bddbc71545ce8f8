import pytest
import torch

from prednet2.cells import ConvGRUCell, ConvLSTMCell, StatelessCell, build_cell, upsample2


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_cell_shapes_and_state(kind):
    cell = build_cell(kind, lateral=True, in_channels=5, hidden_channels=7, kernel_size=3, input_kernel=1)
    x = torch.randn(2, 5, 8, 6)
    h, state = cell(x, None)
    assert h.shape == (2, 7, 8, 6)
    assert len(state) == (1 if kind == "gru" else 2)
    h2, _ = cell(x, state)
    assert h2.shape == h.shape
    assert not torch.allclose(h, h2)  # the state matters


@pytest.mark.parametrize("cls", [ConvGRUCell, ConvLSTMCell])
def test_none_state_equals_zero_state(cls):
    torch.manual_seed(0)
    cell = cls(in_channels=3, hidden_channels=4, kernel_size=3)
    x = torch.randn(2, 3, 5, 5)
    h0, _ = cell(x, None)
    zeros = torch.zeros(2, 4, 5, 5)
    state = (zeros,) if cls is ConvGRUCell else (zeros, zeros)
    h1, _ = cell(x, state)
    torch.testing.assert_close(h0, h1)


def test_stateless_cell_ignores_state():
    cell = build_cell("gru", lateral=False, in_channels=3, hidden_channels=4, kernel_size=3)
    assert isinstance(cell, StatelessCell)
    x = torch.randn(1, 3, 4, 4)
    h, state = cell(x, None)
    assert state == ()
    torch.testing.assert_close(cell(x, (torch.randn_like(h),))[0], h)


def test_bad_cell_kind():
    with pytest.raises(ValueError, match="model.cell"):
        build_cell("rnn", lateral=True, in_channels=1, hidden_channels=1, kernel_size=3)


def test_upsample2():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    y = upsample2(x)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 1, 1] == 0 and y[0, 0, 3, 3] == 3
