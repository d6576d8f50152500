"""A stand-alone training script, as sweep tools run them: a torch MLP on scikit-learn's digits.

It knows nothing of scalehp. It takes its hyperparameters as command-line options and
prints one line per epoch in the ``name=value`` format that Katib's collector and scalehp's
command trials read::

    python experiments/programs/train_digits.py --lr=0.003 --width=64 --epochs=20
    epoch=1 train_loss=1.9312 val_loss=1.7764 val/acc=0.6028
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = options()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    layers: list[nn.Module] = []
    width_in = 64
    for _ in range(args.depth):
        layers += [nn.Linear(width_in, args.width), nn.ReLU(), nn.Dropout(args.dropout)]
        width_in = args.width
    model = nn.Sequential(*layers, nn.Linear(width_in, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), args.batch_size):
            index = order[i : i + args.batch_size]
            optimizer.zero_grad()
            train_loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            train_loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = nn.functional.cross_entropy(logits, y_val).item()
            accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        print(
            f"epoch={epoch} train_loss={train_loss.item():.4f} val_loss={val_loss:.4f} val/acc={accuracy:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
