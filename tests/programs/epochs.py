"""A slow command-line "training" program for tests of how command trials end.

It prints ``epoch=N loss=…`` once per epoch (the loss is ``(x - 0.3)**2 + 1/epoch``),
sleeping ``sleep`` seconds between epochs, and starts a child process that sleeps as long as
the program runs and holds its output open, as data loaders and launchers do. When the
environment names a folder in ``PID_DIR``, both write their process ids there, so a test can
check that no process outlives its trial. ``fail_once`` names a marker file: when it is
missing the program creates it and exits with status 5 (the retry then succeeds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    params = dict(arg.lstrip("-").split("=", 1) for arg in sys.argv[1:] if "=" in arg)
    marker = params.get("fail_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text("failed once\n")
        print("first attempt fails", file=sys.stderr)
        return 5
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    folder = os.environ.get("PID_DIR")
    if folder:
        trial = os.environ.get("SCALEHP_TRIAL_ID", "local")
        Path(folder, f"{trial}-program").write_text(str(os.getpid()))
        Path(folder, f"{trial}-child").write_text(str(child.pid))
    x = float(params.get("x", 0.0))
    for epoch in range(1, int(params.get("epochs", 9)) + 1):
        time.sleep(float(params.get("sleep", 0.05)))
        print(f"epoch={epoch} loss={(x - 0.3) ** 2 + 1 / epoch:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
