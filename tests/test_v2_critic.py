"""Model v2's critic of band envelopes over time (training/v2/critic.py), its place in the training loop, and
the course measure that reads what it is for (training/v2/levels.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.unet import count_parameters  # noqa: E402
from training.v2.__main__ import main  # noqa: E402
from training.v2.critic import STRIDED_LAYERS, CourseCritic, critic_loss, generator_terms  # noqa: E402
from training.v2.levels import COURSE_FRAMES, course, course_agreement  # noqa: E402
from training.v2.train import Critic  # noqa: E402

from test_v2_train import _pair_cache, _tiny_run  # noqa: E402


def _envelopes(seed: int, crops: int = 8, frames: int = 192, bands: int = 32) -> tuple[torch.Tensor, ...]:
    """(clean, smoothed, decoded) mean band powers (crops, frames, bands): the clean upper half of the bands
    rises and falls by 8 dB every 8 frames, the smoothed one holds its mean level, the decoded lacks it."""
    rng = np.random.default_rng(seed)
    base_db = rng.normal(-30.0, 3.0, (crops, 1, bands)) - np.linspace(0.0, 20.0, bands)   # far above the floor
    steps = np.repeat(rng.normal(0.0, 8.0, (crops, frames // 8, bands)), 8, axis=1)
    clean_db = base_db + steps
    smoothed_db = base_db + steps.mean(1, keepdims=True)
    decoded_db = clean_db.copy()
    decoded_db[..., bands // 2:] = -90.0
    return tuple(torch.from_numpy(10 ** (x / 10)).float() for x in (clean_db, smoothed_db, decoded_db))


def test_the_critic_is_small_scores_strided_positions_and_ignores_absolute_level() -> None:
    torch.manual_seed(0)
    critic = CourseCritic(32)
    assert 20_000 <= count_parameters(critic) <= 60_000
    clean, smoothed, decoded = _envelopes(0)
    score, features = critic(clean, decoded)
    assert score.shape == (8, 192 // 2 ** STRIDED_LAYERS) and len(features) == STRIDED_LAYERS + 1
    louder, _ = critic(clean * 100.0, decoded * 100.0)                   # 20 dB louder, input and candidate
    assert torch.allclose(score, louder, atol=1e-3)
    quieter, _ = critic(clean * 0.1, decoded)                            # the candidate alone 10 dB down
    assert not torch.allclose(score, quieter, atol=1e-3)


def test_the_critic_learns_to_tell_a_course_from_its_mean_and_the_terms_ask_for_it() -> None:
    torch.manual_seed(0)
    critic = Critic(32, {"adversarial": 1.0, "features": 1.0})
    clean, smoothed, decoded = _envelopes(1)
    first = critic.step(smoothed, clean, decoded)
    for seed in range(2, 300):
        c, s, d = _envelopes(seed)
        critic.step(s, c, d)
    assert critic.step(smoothed, clean, decoded) < 0.5 * first
    with torch.no_grad():
        real, _ = critic.net(clean, decoded)
        fake, _ = critic.net(smoothed, decoded)
    assert float(real.mean()) > float(fake.mean()) + 0.4
    estimate = smoothed.clone().requires_grad_(True)
    critic.opt.zero_grad()
    weighted, terms = critic.network_terms(estimate, clean, decoded)
    weighted.backward()
    assert estimate.grad is not None and float(estimate.grad.abs().sum()) > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in critic.net.parameters())
    with torch.no_grad():
        same = generator_terms(critic.net, clean, clean, decoded)
    assert float(same["features"]) == 0.0 and float(terms["features"].detach()) > 0
    assert float(same["adversarial"]) < float(terms["adversarial"].detach())   # the clean course passes as real


def test_the_critic_loss_detaches_the_estimate() -> None:
    critic = CourseCritic(32)
    clean, smoothed, decoded = _envelopes(3)
    estimate = smoothed.clone().requires_grad_(True)
    critic_loss(critic, estimate, clean, decoded).backward()
    assert estimate.grad is None and critic.score.weight.grad is not None


def test_a_critic_trains_beside_the_network_is_recorded_and_resumes(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    weights = ["--adversarial-weight", "0.3", "--feature-weight", "2"]
    assert main(_tiny_run(run, data) + ["--steps", "2", "--cpu-hours", "1"] + weights) == 0
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["state"]["critic"] == {"adversarial": 0.3, "features": 2.0}
    assert main(["train", "--run", str(run), "--resume", "--steps", "3"]) == 0     # kept on resume
    second = torch.load(run / "last.pt", weights_only=False)
    assert second["state"]["critic"] == first["state"]["critic"]
    assert any(not torch.equal(first["critic"][k], second["critic"][k]) for k in first["critic"])
    assert second["critic_optim"]["state"]                              # the critic's optimizer resumed
    assert main(["train", "--run", str(run), "--resume", "--steps", "4", "--feature-weight", "1"]) == 0
    third = torch.load(run / "last.pt", weights_only=False)
    assert third["state"]["critic"] == {"adversarial": 0.3, "features": 1.0}
    plain = tmp_path / "plain"
    assert main(_tiny_run(plain, data) + ["--steps", "1", "--cpu-hours", "1"]) == 0
    assert "critic" not in torch.load(plain / "last.pt", weights_only=False)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(log[-1]["val_reference_lsd"])
    assert {"train_critic", "train_adversarial", "train_features"} <= set(log[-1])   # the critic's terms logged


def test_the_course_is_a_level_minus_its_half_second_mean_and_its_agreement_reads_shape_and_spread() -> None:
    rng = np.random.default_rng(4)
    frames, bands = 6 * (COURSE_FRAMES // 2), 4
    flat = torch.full((1, frames, bands), -30.0)
    assert float(course(flat).abs().max()) < 1e-4
    clean = torch.from_numpy(np.repeat(rng.normal(-30.0, 6.0, (1, frames // 6, bands)), 6, axis=1)).float()
    mean = clean.mean(1, keepdim=True)
    half, inverted = mean + 0.5 * (clean - mean), 2 * mean - clean
    missing = torch.zeros(1, frames, bands, dtype=torch.bool)
    missing[..., 2:] = True                                              # two bands the codec removed
    active = torch.ones(1, frames, dtype=torch.bool)
    assert course_agreement(clean, clean, missing, active) == pytest.approx((1.0, 1.0, 2))
    correlation, spread, series = course_agreement(half, clean, missing, active)
    assert correlation == pytest.approx(1.0) and spread == pytest.approx(0.5, abs=0.02) and series == 2
    assert course_agreement(inverted, clean, missing, active)[0] == pytest.approx(-1.0)
    assert course_agreement(clean, clean, missing, torch.zeros_like(active)) == (None, None, 0)
