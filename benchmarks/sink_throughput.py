"""Reports per second the Parquet sink takes on the driver (``ParquetSink.add``, flushes included).

Rows are shaped like the runner's report rows (keys, step, time, elapsed, node id, 3 params,
3 metrics) and added one by one, as the driver callback does; part files are written every
``--flush-rows`` rows (the runner's default: 5000) and on close. The figure is CPU work on
the driver's hot path per report: compare it with how many reports a run makes per second.

    python benchmarks/sink_throughput.py                 # 200,000 rows
    python benchmarks/sink_throughput.py --rows 2000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--flush-rows", type=int, default=5000)
    args = parser.parse_args(argv)

    import pyarrow as pa
    import pyarrow.dataset as ds

    from scalehp.results.sink import ParquetSink

    header(f"sink: {args.rows:,} report rows, a part every {args.flush_rows:,} rows")
    fields = [
        pa.field("param_lr", pa.float64()),
        pa.field("param_width", pa.int64()),
        pa.field("param_opt", pa.string()),
    ]
    keys = {"run_id": "bench", "experiment": "sink"}
    with tempfile.TemporaryDirectory(prefix="scalehp-sink-") as tmp:
        run_dir = Path(tmp) / "sink" / "bench"
        (run_dir).mkdir(parents=True)
        sink = ParquetSink(run_dir, fields, flush_rows=args.flush_rows)
        now = time.time()
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.rows):
            trial, step = divmod(i, max(1, args.rows // args.trials))
            sink.add(
                "reports",
                {
                    **keys,
                    "trial_id": f"t{trial:05d}",
                    "step": step + 1,
                    "time": now + i * 1e-3,
                    "elapsed_s": step * 0.1,
                    "node_id": "node",
                    "param_lr": 1e-3,
                    "param_width": 64,
                    "param_opt": "adam",
                    "loss": 1.0 / (step + 1),
                    "accuracy": 0.5,
                    "train_loss": 0.9,
                },
            )
        sink.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows = ds.dataset(run_dir / "reports", format="parquet").count_rows()
    print(f"{rows:,} rows in {sink.parts_written} parts: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"{args.rows / wall:,.0f} reports/s ({1e6 * wall / args.rows:.1f} µs per report on the driver)")
    print(f"# finished at {load()}")
    return 0 if rows == args.rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
