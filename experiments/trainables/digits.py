"""A torch MLP, or a small CNN, on scikit-learn's handwritten digits (1,797 8x8 images, shipped with sklearn).

``model: cnn`` in the config builds the CNN (``channels``, ``kernel``, ``depth`` conv layers,
then 2x2 max pooling, dropout and a linear layer); anything else the MLP (``width``, ``depth``,
``dropout``). One step is one epoch over the training split; every report carries the
validation loss and accuracy. The split is fixed (seed 0) so that every trial sees the same data.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

import scalehp
from scalehp import pytorch


@lru_cache(maxsize=1)
def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and validation tensors: 80/20, stratified, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, y_train, x_val, y_val


def build_model(config: dict) -> nn.Module:
    if config.get("model") == "cnn":
        return build_cnn(config)
    layers: list[nn.Module] = []
    width_in = 64
    for _ in range(int(config["depth"])):
        layers += [nn.Linear(width_in, int(config["width"])), nn.ReLU(), nn.Dropout(float(config["dropout"]))]
        width_in = int(config["width"])
    layers.append(nn.Linear(width_in, 10))
    return nn.Sequential(*layers)


def build_cnn(config: dict) -> nn.Module:
    """``depth`` same-size conv layers of ``channels`` filters (``kernel`` wide) on the 8x8 image,
    2x2 max pooling, dropout, and a linear layer to the 10 digits."""
    channels, kernel = int(config["channels"]), int(config["kernel"])
    layers: list[nn.Module] = [nn.Unflatten(1, (1, 8, 8))]
    for i in range(int(config["depth"])):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, kernel, padding="same"), nn.ReLU()]
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(float(config["dropout"])), nn.Linear(channels * 16, 10)]
    return nn.Sequential(*layers)


def build_optimizer(config: dict, model: nn.Module) -> torch.optim.Optimizer:
    lr, decay = float(config["lr"]), float(config.get("weight_decay", 0.0))
    if config.get("optimizer", "adam") == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=float(config.get("momentum", 0.9)), weight_decay=decay
        )
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    generator: torch.Generator,
) -> float:
    """One pass over ``x`` in shuffled mini-batches; returns the last batch's loss."""
    order = torch.randperm(len(x), generator=generator)
    loss = torch.tensor(0.0)
    for i in range(0, len(order), batch):
        index = order[i : i + batch]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
    return loss.item()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def train(config: dict, trial: scalehp.Trial) -> None:
    torch.set_num_threads(1)
    pytorch.seed_everything(trial.seed)
    x_train, y_train, x_val, y_val = load_data()
    model = build_model(config)
    optimizer = build_optimizer(config, model)
    start = 0
    state = trial.restore()
    if state is not None:
        start = pytorch.load_state(state, model, optimizer)
        # after a PBT exploit the optimizer state is the donor's: use this trial's (explored) config
        pytorch.set_hyperparams(
            optimizer, lr=float(config["lr"]), momentum=config.get("momentum"), weight_decay=config.get("weight_decay")
        )
    batch = int(config["batch_size"])
    every = int(config.get("checkpoint_every", 5))
    generator = torch.Generator().manual_seed(trial.seed)
    for step in range(start + 1, trial.max_steps + 1):
        train_loss = train_epoch(model, optimizer, x_train, y_train, batch, generator)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        checkpoint = pytorch.state(step, model, optimizer) if step % every == 0 or step == trial.max_steps else None
        trial.report(step, {"val_loss": val_loss, "val_acc": val_acc, "train_loss": train_loss}, checkpoint=checkpoint)
