"""A W&B sweep program as W&B's docs write one (https://docs.wandb.ai/guides/sweeps/add-w-and-b-to-your-code):
defaults in wandb.init(config=...), the swept params read from wandb.config, a training loss
logged every few batches and the validation loss once an epoch. Run by scalehp unchanged, with
command.client: wandb (no network, no W&B account)."""

import math

import wandb


def main():
    run = wandb.init(project="quadratic", config={"lr": 0.1, "dropout": 0.2, "epochs": 5, "optimizer": {"name": "sgd", "momentum": 0.9}})
    config = wandb.config
    for epoch in range(1, config.epochs + 1):
        for batch in range(3):
            wandb.log({"train/loss": 10 * epoch + batch})
        val_loss = (math.log10(config.lr) + 3) ** 2 + config.dropout / epoch + config["optimizer"]["momentum"]
        wandb.log({"val_loss": val_loss, "epoch": epoch})
    run.summary["best_val_loss"] = val_loss
    wandb.finish()


if __name__ == "__main__":
    main()
