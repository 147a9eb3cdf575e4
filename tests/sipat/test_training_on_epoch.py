"""`train(on_epoch=...)`: called once per epoch with the history so far, after that epoch's checkpoint exists
(the worker publishes it as the job's live log; a crash in the callback must not lose the epoch)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from sipat.training import TrainConfig, read_checkpoint, train
from tests.sipat.conftest import TinyCNN


def test_on_epoch_sees_each_epoch_after_its_checkpoint(digits, tmp_path):
    x, y = digits
    data = TensorDataset(x[:64], y[:64], (x[:64] > 0.3).float())
    torch.manual_seed(0)
    model = TinyCNN()
    ckpt = tmp_path / "run.pt"
    seen: list[tuple[list[dict[str, float]], int]] = []

    def on_epoch(history: list[dict[str, float]]) -> None:
        seen.append((history, read_checkpoint(ckpt)["resume"]["epoch"]))
        history.append({"epoch": -1})  # a copy: the caller cannot change the run's history

    cfg = TrainConfig(
        method="pgd_at", epochs=3, batch_size=32, lr=0.05, eps=0.1, alpha=0.05, steps=1, eps_ramp_epochs=3
    )
    result = train(model, data, cfg, checkpoint=ckpt, on_epoch=on_epoch)
    assert [len(h) - 1 for h, _ in seen] == [1, 2, 3] and [epoch for _, epoch in seen] == [1, 2, 3]
    assert [h[:-1] for h, _ in seen] == [result.history[:1], result.history[:2], result.history]
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
