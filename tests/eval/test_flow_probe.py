"""eval.flow_probe: the ridge probe on constructed states, and the CLI end to end (a motion-off checkpoint too)."""

import json
from types import SimpleNamespace

import pytest
import torch
from prednet2.eval.flow_probe import fit, main, score

from prednet2 import build_model
from prednet2.checkpoint import save_checkpoint
from prednet2.config import Config


class Oracle:
    """A stand-in stack of two units on a 1x1-stem grid: unit 0's state at step t is the flow frame t brings (it
    knows the future), unit 1's is noise. ``step`` mirrors PredictiveStack.step's return."""

    def __init__(self, flow: torch.Tensor):
        self.flow, self.g = flow, torch.Generator().manual_seed(3)

    def step(self, x, state, mask, compute_losses=False):
        t = 0 if state is None else state
        noise = torch.randn(self.flow[:, t].shape, generator=self.g)
        return SimpleNamespace(states=[self.flow[:, t], noise]), t + 1


def loader(seed: int):
    g = torch.Generator().manual_seed(seed)
    flow = torch.randn(4, 6, 2, 8, 8, generator=g)
    return flow, [{"video": torch.zeros(4, 6, 3, 8, 8, dtype=torch.uint8), "flow": flow}]


def test_a_state_that_holds_the_coming_flow_reads_r2_1_and_noise_reads_0():
    train_flow, train = loader(0)
    test_flow, test = loader(1)
    m = Oracle(train_flow)
    fits = fit(m, train, "cpu", False, ridge=1e-6)
    m.flow = test_flow
    res = score(m, test, "cpu", False, fits)
    assert res["0"]["r2"] == pytest.approx(1.0, abs=1e-4) and res["0"]["ratio_copy_last"] < 1e-4
    assert abs(res["1"]["r2"]) < 0.1  # noise: nothing of the flow, held out
    # copy-last flow on white-noise flow is twice the variance: the ratio of the mean predictor to it is about 1/2
    assert res["1"]["mse_copy_last"] == pytest.approx(2 * res["1"]["mse_mean"], rel=0.15)
    torch.testing.assert_close(fits[0][0][:2], torch.eye(2, dtype=torch.float64), atol=1e-4, rtol=0)


def test_target_last_asks_for_the_flow_the_state_has_seen():
    train_flow, train = loader(0)
    test_flow, test = loader(1)

    class Seen(Oracle):  # unit 0's state at step t is the flow frame t-1 brought: seen, not anticipated
        def step(self, x, state, mask, compute_losses=False):
            out, t = super().step(x, state, mask)
            out.states[0] = self.flow[:, max(t - 2, 0)]
            return out, t

    m = Seen(train_flow)
    fits = {k: fit(m, train, "cpu", False, 1e-6, target=k) for k in ("next", "last")}
    m.flow = test_flow
    last = score(m, test, "cpu", False, fits["last"], target="last")
    nxt = score(m, test, "cpu", False, fits["next"], target="next")
    assert last["0"]["r2"] == pytest.approx(1.0, abs=1e-4) and abs(nxt["0"]["r2"]) < 0.1


def test_cli_on_a_motion_off_checkpoint_and_at_random_init(tiny_run, tmp_path, capsys):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    common = ["--data", "synthetic:shapes", "--n-train", "4", "--n-test", "4", "--batch-size", "4", "--no-progress"]
    out = tmp_path / "f.json"
    assert main(["--checkpoint", ckpt, "--out", str(out), *common]) == 0
    res = json.loads(out.read_text())
    assert set(res["per_unit_r2"]) == {"0", "1"} and res["n_train"] == 4 and res["n_test"] == 4
    assert all(u["mse_mean"] > 0 and u["mse_copy_last"] > 0 for u in res["per_unit"].values())
    assert "flow probe R²" in capsys.readouterr().out
    assert main(["--checkpoint", ckpt, "--out", str(out), "--target", "last", *common]) == 0
    assert json.loads(out.read_text())["target"] == "last" and "the last frame's motion" in capsys.readouterr().out
    ri = tmp_path / "ri.json"
    assert main(["--checkpoint", ckpt, "--out", str(ri), "--random-init", *common]) == 0
    assert json.loads(ri.read_text())["random_init"] is True


def test_cli_refuses_what_it_cannot_probe(tiny_run, tmp_path, capsys):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", ckpt, "--data", "synthetic:shapes", "--out", str(tmp_path / "x.json"), "--clip-len", "2"])
    assert e.value.code == 2 and "--clip-len 2: the probe scores frames 2 on" in capsys.readouterr().err
    cfg = Config.from_dict({"model": {"preset": "prednet"}, "data": {"size": [32, 32]}, "motion": {"enabled": False}})
    save_checkpoint(tmp_path / "pn.pt", model=build_model(cfg.model), optimizer=None, config=cfg, step=1)
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tmp_path / "pn.pt"), "--data", "synthetic:shapes", "--out", str(tmp_path / "y.json")])
    assert e.value.code == 2 and "has no unit states to probe" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", ckpt, "--data", "synthetic:shapes", "--out", str(tmp_path / "z.json"), "--ridge", "-1"])
    assert e.value.code == 2 and "--ridge -1.0: expected a number >= 0" in capsys.readouterr().err


def test_a_folder_fits_its_first_clips_and_scores_the_next_and_counts_a_corrupt_file(
    tiny_run, videos_and_a_corrupt_file, tmp_path, capsys
):
    out = tmp_path / "f.json"
    assert main(["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--out", str(out),
                 "--n-train", "3", "--n-test", "5", "--no-progress"]) == 0  # fmt: skip
    res = json.loads(out.read_text())
    assert res["n_train"] == 3 and res["n_test"] == 5 and res["n_skipped"] == 1 and res["n_truncated"] == 0
    assert main(["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--out", str(out),
                 "--n-train", "1000", "--n-test", "1000", "--no-progress"]) == 0  # fmt: skip
    res = json.loads(out.read_text())
    n = res["n_train"] + res["n_test"]  # every clip the folder gave, fewer than asked: half and half
    assert res["n_train"] == n // 2 and n > 8
    assert main(["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--out", str(out),
                 "--n-train", "100", "--n-test", "2", "--no-progress"]) == 0  # fmt: skip
    res = json.loads(out.read_text())  # too few for both: the score keeps its 2, the fit takes the rest
    assert (res["n_train"], res["n_test"]) == (n - 2, 2)
    assert "skipped" in capsys.readouterr().out
