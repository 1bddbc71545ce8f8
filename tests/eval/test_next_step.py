"""eval.next_step: the error accumulators on constructed sequences, pixel metrics, and the CLI end to end."""

import json
import math

import pytest
import torch
from prednet2.eval.next_step import LayerErrors, PixelMetrics, main, psnr, ssim, to_frames

from prednet2 import build_model
from prednet2.checkpoint import save_checkpoint
from prednet2.config import Config


def test_perfect_prediction_and_copy_last_ratios():
    torch.manual_seed(0)
    target = torch.rand(3, 5, 4, 6, 6)  # (B, T, C, H, W)
    perfect = LayerErrors()
    perfect.add(target.clone(), target)
    assert perfect.summary()["ratio"] == 0.0 and perfect.summary()["ratio_mean"] == 0.0
    copy = LayerErrors()
    pred = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)  # â(t) = a(t-1)
    copy.add(pred, target)
    s = copy.summary()
    assert s["ratio"] == pytest.approx(1.0) and s["ratio_mae"] == pytest.approx(1.0)
    assert s["arrow"] == pytest.approx(s["arrow_copy_last"]) and s["arrow"] > math.log(2) + 0.5  # â = the negative
    mid = LayerErrors()  # as near to the future as to the past
    mid.add(torch.cat([target[:, :1], 0.5 * (target[:, 1:] + target[:, :-1])], dim=1), target)
    assert abs(mid.summary()["arrow"] - math.log(2)) < 0.2
    assert perfect.summary()["arrow"] < math.log(2) - 0.1  # the true future points forward


def test_channel_mean_predictor_is_the_variance():
    # Channel c is constant c at every frame except noise: predicting the channel mean is near perfect.
    torch.manual_seed(1)
    target = torch.arange(3.0).view(1, 1, 3, 1, 1).expand(4, 6, 3, 5, 5) + 0.1 * torch.randn(4, 6, 3, 5, 5)
    acc = LayerErrors()
    acc.add(torch.zeros_like(target), target)  # predicting black
    s = acc.summary()
    assert s["mean_mse"] == pytest.approx(0.01, rel=0.15)  # noise variance
    assert s["model_mse"] == pytest.approx((0 + 1 + 4) / 3 + 0.01, rel=0.05)
    assert s["ratio_mean"] > 100  # black is far worse than the channel mean here


def test_change_ratio_of_still_and_white_noise_channels():
    """Channel 0 never changes; channel 1 is fresh noise every frame (RMS change = sqrt(2) std); channel 2 is
    constant everywhere (no std: left out). The change ratio is per channel, then the median."""
    torch.manual_seed(2)
    still = torch.randn(8, 1, 1, 6, 6).expand(8, 7, 1, 6, 6)
    noise = torch.randn(8, 7, 1, 6, 6)
    target = torch.cat([still, noise, torch.ones(8, 7, 1, 6, 6)], dim=2)
    acc = LayerErrors()
    acc.add(target, target)
    s = acc.summary()
    assert s["change_min"] == pytest.approx(0.0, abs=1e-6)
    assert s["change_max"] == pytest.approx(math.sqrt(2), rel=0.1)
    assert s["change_min"] <= s["change"] <= s["change_max"]


def test_pixel_metrics():
    x = torch.full((2, 3, 16, 16), 0.5)
    assert psnr(x, torch.zeros_like(x)) == pytest.approx(torch.full((2,), 10 * math.log10(4)), rel=1e-5)
    assert torch.allclose(
        ssim(x + 0.1 * torch.rand_like(x), x + 0.1 * torch.rand_like(x)).clamp(max=1), ssim(x, x), atol=1.0
    )
    frames = torch.rand(2, 4, 3, 16, 16)
    pm = PixelMetrics()
    pm.add(frames.clone(), frames)  # the model predicts every frame exactly
    s = pm.summary()
    assert s["model"]["mse"] == 0 and s["model"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert s["copy_last"]["mse"] > 0 and s["black"]["mse"] > s["model"]["mse"]
    assert pm.count == 2 * 3  # frames t >= 1


def test_to_frames_undoes_the_space_to_depth_stem():
    x = torch.rand(2, 3, 3, 8, 8)  # (B, T, C, H, W)
    packed = torch.nn.functional.pixel_unshuffle(x.flatten(0, 1), 2).unflatten(0, (2, 3))  # (B, T, 12, 4, 4)
    assert torch.equal(to_frames(packed, 2), x)
    assert to_frames(x, 1) is x


def test_cli_repr_mode(tiny_run, tmp_path, capsys):
    out = tmp_path / "next.json"
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    assert main(["--checkpoint", ckpt, "--data", "synthetic:shapes", "--out", str(out), "--n-clips", "4",
                 "--device", "cpu"]) == 0  # fmt: skip
    assert "next-step:" in capsys.readouterr().err  # the progress bar (off with --no-progress, below)
    r = json.loads(out.read_text())
    assert set(r["per_layer_ratio"]) == {"0", "1"} and set(r["per_layer_ratio_mean"]) == {"0", "1"}
    assert all(v > 0 for v in r["per_layer_ratio"].values())
    assert set(r["per_layer_change"]) == {"0", "1"} and all(0 <= v < 2 for v in r["per_layer_change"].values())
    assert set(r["per_layer_arrow"]) == {"0", "1"} and all(0 < v < 20 for v in r["per_layer_arrow"].values())
    assert r["n_clips"] == 4 and r["pixel_mode"] is False and "pixel" not in r


def test_cli_pixel_mode(tmp_path, capsys):
    cfg = Config.from_dict({"model": {"channels": [3, 8], "target": "pixel"}, "data": {"size": [32, 32], "clip_len": 4},
                            "motion": {"enabled": False}})  # fmt: skip
    ckpt = tmp_path / "px" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, model=build_model(cfg.model), optimizer=None, config=cfg, step=1)
    out = tmp_path / "next.json"
    # The run folder stands for its checkpoints/last.pt; --no-progress leaves stderr without a bar.
    assert main(["--checkpoint", str(tmp_path / "px"), "--data", "synthetic:shapes", "--out", str(out), "--n-clips",
                 "3", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    assert "next-step:" not in capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["pixel_mode"] is True
    assert set(r["pixel"]) == {"model", "copy_last", "black"}
    assert set(r["pixel"]["model"]) == {"mse", "psnr", "ssim"}


def test_cli_bad_checkpoint_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            ["--checkpoint", str(tmp_path / "nope.pt"), "--data", "synthetic:shapes", "--out", str(tmp_path / "n.json")]
        )
    assert e.value.code == 2 and "nope.pt" in capsys.readouterr().err


def test_a_corrupt_file_is_skipped_and_counted(tiny_run, videos_and_a_corrupt_file, tmp_path, capsys):
    out = tmp_path / "next.json"
    assert main(["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--out", str(out),
                 "--n-clips", "2", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    r = json.loads(out.read_text())
    assert r["n_skipped"] == 1 and r["skipped"][0]["path"].endswith("notes.mkv") and r["n_clips"] == 2
    assert "; 1 unusable file(s) skipped ->" in capsys.readouterr().out


def test_a_video_cut_by_a_decode_error_is_counted(tiny_run, tmp_path):
    from tests.eval.conftest import _video_helpers

    root = tmp_path / "v"
    _video_helpers().write_broken_mp4(root / "broken.mp4")  # about half of its 24 frames decode
    out = tmp_path / "next.json"
    assert main(["--checkpoint", str(tiny_run), "--data", str(root), "--out", str(out), "--n-clips", "1",
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    r = json.loads(out.read_text())
    assert r["n_truncated"] == 1 and r["truncated"][0]["path"].endswith("broken.mp4") and r["n_skipped"] == 0
