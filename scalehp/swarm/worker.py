"""The worker side of the swarm runtime: a long-lived Ray actor that runs configs one after another.

The actor holds a queue of configs the driver handed it. A thread of its own runs them, one
trial at a time, calling the user's ``train(config, trial)`` unchanged; what the trials say
(reports, ends, errors) is kept in an outbox. The driver's only call, :meth:`Worker.poll`,
hands over answers and more configs and takes the outbox back: it returns once the outbox has
waited ``wait_s``, or at once when a trial waits for a scheduler's decision or the worker has
nothing left to do. So the trial thread never waits for the driver except at a decision (an
ASHA rung), and the driver gets rows in chunks, not one call per report.

Messages in the outbox are tuples, first item the kind:

* ``("report", trial_id, step, time, elapsed_s, metrics)``
* ``("ask", trial_id, step, value)``: the trial waits for ``continue`` or ``stop``
* ``("end", trial_id, error)``: the trial returned (``error`` None), was stopped, or failed
* ``("retry", trial_id, error)``: it failed and runs again from the start (``failure.max_retries``)
* ``("abort", trial_id, message)``: a report without the experiment's metric: the run stops
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from typing import Any, Callable

from scalehp.errors import Infeasible
from scalehp.trial import MetricMissingError, Trial

MAX_OUTBOX = 20_000  # messages: the driver is called back sooner rather than a worker's memory growing


class TrialStopped(BaseException):
    """Ends a trial from inside ``trial.report`` (a ``BaseException``: a trainable's ``except
    Exception`` does not swallow it)."""


class SwarmTrial(Trial):
    """A trial run by a swarm worker: reports go to the outbox; at a rung step it waits for the decision.

    Checkpoints are checked to be data and then dropped: a swarm trial runs start to end in one
    go, and one re-run after a lost worker starts over.
    """

    def __init__(self, worker: Worker, trial_id: str, *, asks: list[int], **kwargs: Any) -> None:
        super().__init__(trial_id, **kwargs)
        self._worker = worker
        self._asks = asks  # rung steps at which the scheduler decides, ascending
        self._started = time.time()

    def _report(self, step: int, metrics: dict[str, Any], checkpoint: Any) -> None:
        now = time.time()
        worker = self._worker
        worker.emit(("report", self.trial_id, step, now, now - self._started, metrics))
        asks = self._asks
        if asks and step >= asks[0]:
            while asks and step >= asks[0]:
                asks.pop(0)
            if step < self.max_steps and worker.ask(self.trial_id, step, metrics.get(self.metric)) == "stop":
                raise TrialStopped
        if step >= self.max_steps:
            raise TrialStopped  # the budget's last step: the trial ends here, as Tune's stopper ends it


class Worker:
    """A swarm worker (run as a Ray actor; plain Python here, so tests can drive it in-process).

    One trial runs at a time (the worker holds one trial's resources). A trial the scheduler
    pauses (Hyperband, until its bracket halves) gives its turn to the next config and waits,
    its state in memory as Ray Tune would hold it in a checkpoint; once told to continue it runs
    again before any new config.

    Args:
        train: the user's ``train(config, trial)``.
        metric: the experiment's metric (every report must hold it).
        max_steps: ``budget.max_steps``.
        max_retries: ``failure.max_retries``: a failing trial runs again from the start.
        vectorized: ``train`` takes the list of every queued config and returns each one's
            metrics (``runtime.swarm.vectorized``): one call, one step per config.
    """

    def __init__(
        self, train: Callable, metric: str, max_steps: int, max_retries: int = 0, vectorized: bool = False
    ) -> None:
        self.train, self.metric, self.max_steps, self.max_retries = train, metric, max_steps, max_retries
        self.vectorized = vectorized  # train(configs) -> [metrics, ...]: every queued config in one call
        self._lock = threading.Condition()
        self._queue: deque[tuple[str, dict[str, Any], int, list[int]]] = deque()
        self._outbox: list[tuple] = []
        self._asks = 0  # asks in the outbox
        self._answers: dict[str, str] = {}
        self._turn: str | None = None  # the trial that runs now
        self._ready: deque[str] = deque()  # paused trials told to continue, waiting for their turn
        self._held: set[str] = set()  # paused trials waiting for the decision that ends their pause: it
        # puts one in line (_ready) as it arrives
        self._idle = 0  # runner threads waiting for a config
        self._closed = False
        self._node = _node()
        self._runner()

    # ------------------------------------------------------------------ the driver's side

    def poll(self, answers: dict[str, str] | None = None, configs: list | None = None, wait_s: float = 0.2) -> tuple:
        """Hand over decisions and configs; take the outbox.

        Returns (messages, configs to run that have not ended, not counting paused trials,
        (this worker's node address, its Ray node id))."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            if answers:
                self._answers.update(answers)
                for trial_id in answers:  # a paused trial told to go on is in line before any new config
                    if trial_id in self._held and answers[trial_id] != "pause":
                        self._held.discard(trial_id)
                        self._ready.append(trial_id)
            if configs:
                self._queue.extend(configs)
            self._lock.notify_all()
            while True:
                idle = self._turn is None and not self._queue and not self._ready and not self._held
                left = deadline - time.monotonic()
                if self._asks or idle or left <= 0 or len(self._outbox) >= MAX_OUTBOX:
                    break
                self._lock.wait(left)
            out, self._outbox, self._asks = self._outbox, [], 0
            return out, self._work(), self._node

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._lock.notify_all()

    def _work(self) -> int:
        return len(self._queue) + (self._turn is not None) + len(self._ready)

    # ------------------------------------------------------------------ the trial threads' side

    def emit(self, message: tuple) -> None:
        with self._lock:
            self._outbox.append(message)
            if len(self._outbox) >= MAX_OUTBOX:
                self._lock.notify_all()

    def ask(self, trial_id: str, step: int, value: Any) -> str:
        """Wait for the scheduler's decision about this report: ``continue`` or ``stop``; a pause
        gives the turn away until the decision that ends it."""
        with self._lock:
            self._outbox.append(("ask", trial_id, step, value))
            self._asks += 1
            self._lock.notify_all()
            answer = self._answer(trial_id)
            if answer != "pause":
                return answer
            self._held.add(trial_id)
            self._turn = None
            if self._idle == 0:  # a thread to run the next config while this one waits
                self._runner()
            self._lock.notify_all()
            answer = self._answer(trial_id)
            self._held.discard(trial_id)
            if trial_id not in self._ready:  # (poll put it in line when the decision came)
                self._ready.append(trial_id)
            while not self._closed and not (self._turn is None and self._ready[0] == trial_id):
                self._lock.wait()
            self._ready.remove(trial_id)
            self._turn = trial_id
            return answer

    def _answer(self, trial_id: str) -> str:
        while trial_id not in self._answers and not self._closed:
            self._lock.wait()
        return self._answers.pop(trial_id, "stop")

    def _runner(self) -> None:
        threading.Thread(target=self._loop, name="scalehp-swarm-trials", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                while not self._closed and not (self._turn is None and not self._ready and self._queue):
                    self._lock.wait()
                self._idle -= 1
                if self._closed:
                    return
                if self.vectorized:
                    batch = list(self._queue)
                    self._queue.clear()
                    self._turn = batch[0][0]
                else:
                    trial_id, config, seed, asks = self._queue.popleft()
                    self._turn = trial_id
            if self.vectorized:
                self._run_batch(batch)
            else:
                self._run(trial_id, config, seed, asks)
            with self._lock:
                self._turn = None
                self._lock.notify_all()

    def _run(self, trial_id: str, config: dict[str, Any], seed: int, asks: list[int]) -> None:
        attempt = 0
        while True:
            trial = SwarmTrial(self, trial_id, asks=list(asks), max_steps=self.max_steps, seed=seed, metric=self.metric)
            try:
                self.train(dict(config), trial)
            except TrialStopped:
                pass
            except Infeasible as exc:  # no retry: the config cannot be trained
                self.emit(("infeasible", trial_id, str(exc) or "infeasible"))
                return
            except MetricMissingError as exc:
                self.emit(("abort", trial_id, str(exc)))
                self.emit(("end", trial_id, f"{exc.__class__.__name__}: {exc}"))
                return
            except Exception as exc:  # noqa: BLE001 - a trial's failure is data
                text = _error_text(exc)
                if attempt < self.max_retries:
                    attempt += 1
                    self.emit(("retry", trial_id, text))
                    continue
                self.emit(("end", trial_id, text))
                return
            self.emit(("end", trial_id, None))
            return

    def _run_batch(self, batch: list[tuple]) -> None:
        """``runtime.swarm.vectorized``: one call for every config of the batch; each result is its
        config's one report. A call that fails is each config's error (retried as a whole)."""
        configs = [dict(config) for _, config, _, _ in batch]
        for attempt in range(self.max_retries + 1):
            started = time.time()
            try:
                results = list(self.train(configs))
                if len(results) != len(configs):
                    raise ValueError(f"the vectorized trainable returned {len(results)} results for {len(configs)} configs")
            except Exception as exc:  # noqa: BLE001 - a failure is data
                text = _error_text(exc)
                if attempt < self.max_retries:
                    for trial_id, *_ in batch:
                        self.emit(("retry", trial_id, text))
                    continue
                for trial_id, *_ in batch:
                    self.emit(("end", trial_id, text))
                return
            now = time.time()
            for (trial_id, *_), metrics in zip(batch, results):
                if not isinstance(metrics, dict) or self.metric not in metrics:
                    self.emit(("abort", trial_id, f"the vectorized trainable's result for {trial_id} holds no {self.metric!r}"))
                    self.emit(("end", trial_id, f"MetricMissingError: no {self.metric!r} in {type(metrics).__name__}"))
                    continue
                plain = {str(k): v.item() if hasattr(v, "item") else v for k, v in metrics.items() if k != "step"}
                self.emit(("report", trial_id, 1, now, (now - started) / len(batch), plain))
                self.emit(("end", trial_id, None))
            return


def _error_text(exc: BaseException) -> str:
    """The error and the last lines of its traceback (the user's frame), at most 4 KB."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(lines[-6:]).strip()
    return text[-4000:]


def _node() -> tuple[str | None, str | None]:
    """The address and Ray id of the node this worker runs on (None outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():
            return None, None
        return ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - only for the node columns
        return None, None


def actor_class() -> Any:
    """:class:`Worker` as a Ray actor class (Ray imported here, not at module import)."""
    import ray

    return ray.remote(Worker)
