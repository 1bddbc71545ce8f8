import torch

from prednet2.units import Encoder, PredictiveUnit


def test_unit_encode_predict_shapes():
    u = PredictiveUnit(in_channels=6, channels=4, hidden_channels=5, td_channels=7)
    x = torch.rand(2, 6, 8, 8)
    a, target = u.encode(x)
    assert a.shape == target.shape == (2, 4, 8, 8)
    assert a.requires_grad and not target.requires_grad  # stop-gradient target
    a_hat, r, state = u.predict(a, torch.zeros(2, 8, 8, 8), torch.zeros(2, 7, 8, 8), None)
    assert a_hat.shape == (2, 4, 8, 8) and r.shape == (2, 5, 8, 8)


def test_pixel_unit_target_is_input_and_prediction_in_unit_range():
    u = PredictiveUnit(in_channels=3, channels=99, hidden_channels=4, td_channels=0, pixel=True)
    x = torch.rand(1, 3, 4, 4)
    a, target = u.encode(x)
    assert u.enc is None and torch.equal(a, x)
    a_hat, _, _ = u.predict(a, torch.zeros(1, 6, 4, 4), None, None)
    assert a_hat.shape == (1, 3, 4, 4) and a_hat.min() >= 0 and a_hat.max() <= 1


def test_motion_unit_concatenates_streams_and_projects():
    u = PredictiveUnit(in_channels=3, channels=4, hidden_channels=4, td_channels=0, motion_channels=2)
    a, _ = u.encode(torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4))
    assert a.shape == (2, 6, 4, 4)
    p_rgb, p_mot = u.bind_projections(a)
    assert p_rgb.shape == p_mot.shape == (2, 32)


def test_encoder_group_norm_option():
    e = Encoder(3, 16, norm="group")
    assert e(torch.rand(2, 3, 4, 4)).shape == (2, 16, 4, 4)
