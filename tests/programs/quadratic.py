"""A command-line "training" program for tests of command trials and imported sweeps.

It takes its params the ways sweep tools pass them: ``--name=value``, ``--name value``,
``name=value`` (Hydra overrides) or one JSON object, and prints one metrics line per
epoch in Katib's ``name=value`` format::

    epoch=1 val_loss=1.2345 val/acc=0.8765

The loss is smallest for a learning rate (any param whose name ends in ``lr``) near 0.01
and other params in [0, 1] near 0.5; it shrinks with every epoch. ``epochs`` (default 3)
sets how many lines it prints; ``fail=true`` makes it exit with status 3.
"""

from __future__ import annotations

import json
import math
import sys


def parse(argv: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg.startswith("{"):
            params.update({k: str(v) for k, v in json.loads(arg).items()})
        elif "=" in arg:
            key, _, value = arg.lstrip("-+~").partition("=")
            params[key] = value
        elif arg.startswith("--"):
            params[arg[2:]] = next(args, "true")
    return params


def main() -> int:
    params = parse(sys.argv[1:])
    if params.get("fail", "").lower() in ("true", "1"):
        print("failing on purpose", file=sys.stderr)
        return 3
    base = 0.0
    for key, text in params.items():
        try:
            value = float(text)
        except ValueError:
            continue
        if key.endswith("lr") and value > 0:
            base += (math.log10(value) + 2) ** 2
        elif 0 <= value <= 1:
            base += (value - 0.5) ** 2
    epochs = int(float(params.get("epochs", 3)))
    for epoch in range(1, epochs + 1):
        loss = base + 1 / epoch
        print(f"epoch={epoch} val_loss={loss:.6f} val/acc={1 / (1 + loss):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
