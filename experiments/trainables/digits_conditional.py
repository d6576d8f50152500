"""The digits MLP with a conditional space: per-layer widths and per-optimiser settings.

The config is flat and holds only the active params (see ``scalehp.space``)::

    {"optimizer": "sgd", "optimizer.momentum": 0.9, "optimizer.nesterov": True,
     "layers": 2, "layers.1.width": 128, "layers.2.width": 32, "lr": 0.01, ...}

Besides the validation loss and accuracy every report carries ``params``, the model's
number of weights, for the multi-objective example (accuracy up, size down).
"""

from __future__ import annotations

import torch
from torch import nn

import scalehp
from experiments.trainables.digits import evaluate, load_data, train_epoch
from scalehp import pytorch


def build_model(config: dict) -> nn.Module:
    layers: list[nn.Module] = []
    width_in = 64
    for i in range(1, int(config["layers"]) + 1):
        width = int(config[f"layers.{i}.width"])
        layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(float(config.get("dropout", 0.0)))]
        width_in = width
    layers.append(nn.Linear(width_in, 10))
    return nn.Sequential(*layers)


def build_optimizer(config: dict, model: nn.Module) -> torch.optim.Optimizer:
    lr = float(config["lr"])
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=float(config["optimizer.momentum"]),
            nesterov=bool(config["optimizer.nesterov"]) and float(config["optimizer.momentum"]) > 0,
        )
    beta1 = float(config["optimizer.beta1"])
    return torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(beta1, 0.999), weight_decay=float(config["optimizer.weight_decay"])
    )


def train(config: dict, trial: scalehp.Trial) -> None:
    torch.set_num_threads(1)
    pytorch.seed_everything(trial.seed)
    x_train, y_train, x_val, y_val = load_data()
    model = build_model(config)
    optimizer = build_optimizer(config, model)
    params = float(sum(p.numel() for p in model.parameters()))
    start = 0
    state = trial.restore()
    if state is not None:
        start = pytorch.load_state(state, model, optimizer)
    batch = int(config["batch_size"])
    generator = torch.Generator().manual_seed(trial.seed)
    for step in range(start + 1, trial.max_steps + 1):
        train_epoch(model, optimizer, x_train, y_train, batch, generator)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        checkpoint = pytorch.state(step, model, optimizer) if step % 5 == 0 or step == trial.max_steps else None
        trial.report(step, {"val_loss": val_loss, "val_acc": val_acc, "params": params}, checkpoint=checkpoint)
