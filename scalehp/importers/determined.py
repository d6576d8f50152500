"""Determined experiment configs (``searcher`` + ``hyperparameters``) -> scalehp experiment files.

What maps how (the full table is docs/import/determined.md)::

    hyperparameters     -> space; nested groups become dotted names (optimizer_config.lr);
                           type log has EXPONENT bounds: minval/maxval of base b become the
                           values b**minval .. b**maxval; count gives grid values for grid search
    searcher            -> search, scheduler and budget: single/random/grid -> random/grid,
                           adaptive_asha/async_halving -> random + asha (divisor, max_rungs, mode
                           -> reduction_factor, grace_steps, brackets); pbt and custom are errors
    searcher.metric, smaller_is_better -> metric;  max_trials -> budget.samples;
    max_length {epochs|batches|records: N} -> budget.max_steps;  max_concurrent_trials -> concurrency
    entrypoint          -> command (a script or command line, params as one JSON argument) or,
                           for a Trial class, a trainable to write (with a note)
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from scalehp.importers import Imported, Source
from scalehp.importers._mapping import (
    DEFAULT_MAX_STEPS,
    EPOCH_NOTE,
    EPOCH_STEP,
    Mapping,
    command_line,
    go_round,
)
from scalehp.schedulers.asha import MAX_RUNGS

_TYPES = ("const", "int", "double", "log", "categorical")
_CLASS = re.compile(r"^(?:(?P<module>[A-Za-z_][\w.]*)?:)?(?P<object>[A-Za-z_][\w.]*)$")
_LAUNCHER = re.compile(r"^determined\.launch\.\w+$")
_UNITS = ("epochs", "batches", "records")
DEFAULT_CONCURRENCY = 16  # Determined's default max_concurrent_trials
_MODES = {"aggressive", "standard", "conservative"}


def convert(source: Source) -> Imported:
    """Convert a Determined experiment config.

    Raises:
        SpecError: an unknown hyperparameter type, a grid range without count, or a searcher
            with no scalehp equivalent (pbt, custom, the end-of-life adaptive searchers).
    """
    return _Determined(source).run()


class _Determined(Mapping):
    def __init__(self, source: Source):
        super().__init__(source)

    def convert(self) -> Imported:
        config = self.section(self.source.data, "")
        data: dict[str, Any] = {"name": self.experiment_name(config.pop("name", None), "name")}
        description = config.pop("description", None)
        if description is not None:
            data["description"] = str(description)
        searcher = self.section(config.pop("searcher", None), "searcher", required=True)
        kind = searcher.pop("name", None)
        grid = kind == "grid"
        space = self.hyperparameters(config.pop("hyperparameters", None), grid)

        entrypoint = config.pop("entrypoint", None)
        environment = self.section(config.pop("environment", None), "environment")
        trainable, command = self.entrypoint(entrypoint, environment)
        if trainable is not None:
            data["trainable"] = trainable
        else:
            data["command"] = command
        data["metric"] = self.metric(searcher)
        self.unit: str | None = None
        search, scheduler, samples, max_steps, concurrency = self.searcher(kind, searcher, space)
        data["budget"] = {"samples": samples, "max_steps": max_steps}
        if command is not None and self.unit is not None:  # the budget counts epochs or batches, not lines
            command["step"] = EPOCH_STEP if self.unit == "epochs" else "step"
        resources = self.resources(self.section(config.pop("resources", None), "resources"))
        if resources:
            data["resources"] = resources
        if concurrency is not None:
            data["concurrency"] = concurrency
        reproducibility = self.section(config.pop("reproducibility", None), "reproducibility")
        seed = reproducibility.pop("experiment_seed", None)
        if seed is not None:
            data["seed"] = self.number(seed, "reproducibility.experiment_seed", integer=True)
        self.rest(reproducibility, "reproducibility")
        data["space"] = space
        data["search"] = search
        if scheduler is not None:
            data["scheduler"] = scheduler
        restarts = config.pop("max_restarts", None)
        if restarts is not None:
            restarts = self.count(restarts, "max_restarts", minimum=0)
            if restarts:
                data["failure"] = {"max_retries": min(restarts, 100)}
            self.note(
                "max_restarts",
                f"{restarts}: restarts of each failing trial (Determined counts them for the whole experiment); "
                "a command trial restarts from the beginning",
            )
        self.leftovers(config)
        return self.done(data)

    # -- hyperparameters -------------------------------------------------------------------------

    def hyperparameters(self, raw: Any, grid: bool) -> dict[str, Any]:
        hparams = self.section(raw, "hyperparameters", required=True)
        space: dict[str, Any] = {}
        self.group(hparams, "", "hyperparameters", grid, space)
        self.settle()  # every bad hyperparameter named in one run
        if not space:
            raise self.error("hyperparameters", "no hyperparameters")
        return space

    def group(self, node: dict[str, Any], prefix: str, path: str, grid: bool, out: dict[str, Any]) -> None:
        for key, value in node.items():
            with self.gathering():
                where = f"{path}.{key}"
                if not isinstance(key, str) or "." in key:
                    raise self.error(where, f"hyperparameter name {key!r} cannot hold a '.' (nested names are dotted)")
                name = self.param_name(prefix + key, where)
                if isinstance(value, dict) and "type" in value:
                    out[name] = self.param(dict(value), where, grid)
                elif isinstance(value, dict):
                    if not value:
                        raise self.error(where, "an empty group of hyperparameters")
                    self.group(value, f"{name}.", where, grid, out)
                else:
                    out[name] = {"constant": value}

    def param(self, spec: dict[str, Any], path: str, grid: bool) -> Any:
        kind = spec.pop("type")
        if kind not in _TYPES:
            raise self.error(f"{path}.type", f"unknown hyperparameter type {kind!r}; expected {', '.join(_TYPES)}")
        if kind == "const":
            if "val" not in spec:
                raise self.error(path, "a const hyperparameter needs val")
            value = spec.pop("val")
            self.rest(spec, path)
            return {"constant": value}
        if kind == "categorical":
            values = spec.pop("vals", None)
            if not isinstance(values, list) or not values:
                raise self.error(f"{path}.vals", "a categorical hyperparameter needs a list of vals")
            self.rest(spec, path)
            if grid:
                self.grid_param(len(values), f"{path}.vals")
                return {"grid": values}
            return {"choice": values}
        integer = kind == "int"
        low = self.number(spec.pop("minval", None), f"{path}.minval", integer=integer)
        high = self.number(spec.pop("maxval", None), f"{path}.maxval", integer=integer)
        if low > high:
            raise self.error(path, f"minval ({low}) is above maxval ({high})")
        count = spec.pop("count", None)
        base = None
        if kind == "log":
            base = float(self.number(spec.pop("base", 10), f"{path}.base"))
            if base <= 0 or base == 1:
                raise self.error(f"{path}.base", f"a log base must be > 0 and not 1, got {base:g}")
        self.rest(spec, path)
        if grid:
            if count is None:
                raise self.error(path, f"grid search needs count (the number of grid points) for a {kind} range")
            count = self.count(count, f"{path}.count")
            self.check_grid(count, f"{path}.count")
            if base is not None:
                self.power(base, low, f"{path}.minval")
                self.power(base, high, f"{path}.maxval")
            points = _grid_points(kind, low, high, count, base)
            self.grid_param(len(points), f"{path}.count")
            return {"grid": points}
        if low == high:
            return {"constant": low if base is None else self.power(base, low, f"{path}.minval")}
        if kind == "int":
            return {"int": [low, high]}
        if kind == "double":
            return {"float": [low, high]}
        # bounds are exponents of base: the values run from base**minval to base**maxval
        values = sorted((self.power(base, low, f"{path}.minval"), self.power(base, high, f"{path}.maxval")))
        return {"float": values, "log": True}

    def power(self, base: float, exponent: float, path: str) -> float:
        """``base**exponent`` for a log bound, or an error when a float cannot hold it."""
        try:
            value = base**exponent
        except OverflowError:
            value = math.inf
        if not 0 < value < math.inf:
            raise self.error(
                path, f"{base:g}**{exponent:g} is out of range: a log range's bounds are exponents of base"
            )
        return value

    # -- the searcher ----------------------------------------------------------------------------

    def metric(self, searcher: dict[str, Any]) -> dict[str, Any]:
        name = self.string(searcher.pop("metric", None), "searcher.metric")
        if name.strip().lower() in ("none", "null", "nan", ""):
            raise self.error(
                "searcher.metric",
                f"{name!r} names no metric: scalehp ranks trials by a metric they report; name the metric "
                "your trials report (a grid of jobs without one is not a scalehp run)",
            )
        smaller = searcher.pop("smaller_is_better", True)
        if not isinstance(smaller, bool):
            raise self.error("searcher.smaller_is_better", f"expected true or false, got {smaller!r}")
        return {"name": name, "mode": "min" if smaller else "max"}

    def searcher(self, kind: Any, searcher: dict[str, Any], space: dict[str, Any]) -> tuple:
        path = "searcher"
        max_steps = self.length(searcher)
        concurrency_raw = searcher.pop("max_concurrent_trials", None)
        if concurrency_raw is None:
            concurrency = DEFAULT_CONCURRENCY
        else:
            concurrency = self.count(concurrency_raw, f"{path}.max_concurrent_trials", minimum=0) or None
        for key in ("source_trial_id", "source_checkpoint_uuid"):
            if searcher.pop(key, None) is not None:
                self.note(f"{path}.{key}", "trials start from no checkpoint in scalehp; left out")
        search: dict[str, Any] = {"algorithm": "random"}
        scheduler = None
        if kind == "single":
            samples = 1
            ranges = [n for n, p in space.items() if "constant" not in p]
            if ranges:
                self.note(f"{path}.name", f"single trains one trial; its ranges ({', '.join(ranges)}) are sampled once")
        elif kind == "random":
            samples = self.count(searcher.pop("max_trials", None), f"{path}.max_trials")
        elif kind == "grid":
            samples = 1
            search = {"algorithm": "grid"}
            if searcher.pop("max_trials", None) is not None:
                self.note(f"{path}.max_trials", "grid search runs every grid point once; left out")
        elif kind in ("adaptive_asha", "async_halving"):
            samples = self.count(searcher.pop("max_trials", None), f"{path}.max_trials")
            divisor = float(self.number(searcher.pop("divisor", 4), f"{path}.divisor"))
            if divisor <= 1:
                raise self.error(f"{path}.divisor", f"divisor must be > 1, got {divisor:g}")
            if kind == "adaptive_asha":
                rungs = self.count(searcher.pop("max_rungs", 5), f"{path}.max_rungs", most=MAX_RUNGS)
                mode = searcher.pop("mode", "standard")
                if not isinstance(mode, str) or mode not in _MODES:
                    raise self.error(f"{path}.mode", f"expected aggressive, standard or conservative, got {mode!r}")
                brackets = {"aggressive": 1, "standard": rungs - (rungs - 1) // 2, "conservative": rungs}[mode]
            else:
                rungs = self.count(searcher.pop("num_rungs", None), f"{path}.num_rungs", most=MAX_RUNGS)
                brackets = 1
            # Determined's rung i of n (its makeRungs): max(1, int(max_length / divisor**(n - i - 1))) units;
            # the last is max_length itself, where a trial ends anyway
            steps = []
            for i in range(rungs - 1):
                try:
                    steps.append(max(1, int(max_steps / divisor ** (rungs - i - 1))))
                except OverflowError:  # so many rungs that the first is below one step
                    steps.append(1)
            placed = sorted({s for s in steps if s < max_steps})
            asha: dict[str, Any] = {"reduction_factor": divisor, "brackets": max(1, min(10, brackets, len(placed) or 1))}
            if placed:
                asha["rungs"] = placed
                self.note(
                    f"{path}.name",
                    f"{kind}: rungs at {', '.join(map(str, placed))} steps, where Determined places them "
                    f"(max_length / divisor**k); at each, a trial stops when worse than the 1 - 1/{divisor:g} "
                    "percentile of those recorded there (Ray's rule), where Determined keeps the best "
                    f"max(1, int(n / {divisor:g})) of the n recorded"
                    + (f"; {len(steps) - len(placed)} rung(s) fell on the same step and are one" if len(placed) < len(steps) else ""),
                )
            else:
                asha["grace_steps"] = max_steps
            scheduler = {"asha": asha}
            if brackets > 10:
                self.note(f"{path}.max_rungs", f"{brackets} brackets; scalehp's asha runs at most 10")
            elif placed and brackets > len(placed):
                self.note(f"{path}.max_rungs", f"{brackets} brackets over {len(placed)} distinct rungs: {len(placed)} brackets")
            if not searcher.pop("stop_once", False):
                self.note(
                    f"{path}.name",
                    f"{kind}: scalehp's asha stops a trial for good at a rung (Determined's stop_once: true); "
                    "Determined's default may resume it later",
                )
        elif kind == "pbt":
            raise self.error(
                f"{path}.name",
                "pbt needs trials that save and restore checkpoints through Determined's Trial API; write a "
                "Python trainable that reports checkpoints and use scheduler pbt",
            )
        elif kind == "custom":
            raise self.error(
                f"{path}.name", "a custom searcher is Python code run by Determined; scalehp has no equivalent"
            )
        elif kind in ("adaptive", "adaptive_simple", "sync_halving"):
            raise self.error(
                f"{path}.name",
                f"{kind} is an end-of-life Determined searcher; change it to adaptive_asha and import again",
            )
        else:
            raise self.error(f"{path}.name", f"unknown Determined searcher {kind!r}")
        self.rest(searcher, path)
        return search, scheduler, samples, max_steps, concurrency

    def length(self, searcher: dict[str, Any]) -> int:
        """budget.max_steps from max_length ({epochs|batches|records: N}) or max_time with time_metric."""
        raw = searcher.pop("max_length", None)
        max_time = searcher.pop("max_time", None)
        time_metric = searcher.pop("time_metric", None)
        if raw is None and max_time is not None:
            steps = self.count(max_time, "searcher.max_time")
            self.unit = "time"
            self.note(
                "searcher.max_time",
                f"budget.max_steps is {steps}: scalehp counts steps from step= (or epoch=) in each report, so "
                f"print step=<{time_metric or 'time_metric'}>",
            )
            return steps
        if raw is None:
            self.note("searcher", f"no max_length: budget.max_steps is {DEFAULT_MAX_STEPS} (a step is one report)")
            return DEFAULT_MAX_STEPS
        if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in _UNITS:
            unit, value = next(iter(raw.items()))
            steps = self.count(value, f"searcher.max_length.{unit}")
            self.unit = unit
            if unit == "epochs":
                self.note("searcher.max_length", f"{steps} epochs -> budget.max_steps {steps}; for a command, {EPOCH_NOTE}")
            else:
                self.note(
                    "searcher.max_length",
                    f"{steps} {unit} -> budget.max_steps {steps}: the program prints step=<{unit} trained> "
                    "(for a command, command.step is step: lines without it update the metrics), so that rungs "
                    "fall where Determined's do",
                )
            return steps
        if isinstance(raw, int) and not isinstance(raw, bool):
            return self.count(raw, "searcher.max_length")
        raise self.error("searcher.max_length", f"expected {{epochs|batches|records: N}}, got {raw!r}")

    # -- the trial -------------------------------------------------------------------------------

    def entrypoint(self, raw: Any, environment: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        path = "entrypoint"
        if raw is None:
            raise self.error(path, "required key is missing")
        if isinstance(raw, list):
            words = [str(w) for w in raw]
        else:
            text = self.string(raw, path)
            if _CLASS.fullmatch(text.strip()):
                return self.trial_class(text.strip(), path, environment), None
            words = self.shell_words(text, path)
        if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m" and _LAUNCHER.match(words[2]):
            launcher = words[2]
            rest = words[3:]
            if "--trial" in rest:
                index = rest.index("--trial")
                if index + 1 < len(rest):
                    return self.trial_class(rest[index + 1], path, environment), None
            self.note(path, f"{launcher} launches distributed training; scalehp runs the script once per trial")
            while rest and rest[0].startswith("-"):  # the launcher's own flags
                rest = rest[1:]
            words = rest
            if not words:
                raise self.error(path, "no script after the launch module")
        words = self.python_first(words, path)
        command: dict[str, Any] = {"run": command_line([*words, "${args_json}"])}
        cwd = Path(os.path.normpath(Path(self.source.path).parent))
        command["cwd"] = cwd.as_posix()
        self.note(
            path,
            "Determined's Core API reads hparams from det.get_cluster_info() and reports with "
            "core_context.train.report_validation_metrics; under scalehp the program gets the params as one JSON "
            "argument (${args_json}, nested names dotted; also in the environment as SCALEHP_PARAMS) and prints "
            "'<metric>=<value>' lines; it runs in the "
            f"config's folder {cwd.as_posix()!r} (Determined's context directory)",
        )
        env = self.environment(environment, for_command=True)
        if env:
            command["env"] = env
        return None, command

    def trial_class(self, reference: str, path: str, environment: dict[str, Any]) -> str:
        match = _CLASS.fullmatch(reference)
        if not match:
            raise self.error(path, f"{reference!r} is not a module:Class reference")
        module = match.group("module") or "model_def"
        trainable = f"{module}:train"
        self.note(
            path,
            f"{reference} is a class of Determined's Trial API, which scalehp cannot run: write a function "
            f"train(config, trial) in {module.replace('.', '/')}.py that builds the model from config, trains "
            f"and calls trial.report(epoch, {{...}}); the experiment names it {trainable}",
        )
        self.environment(environment, for_command=False)
        return trainable

    def environment(self, environment: dict[str, Any], *, for_command: bool) -> dict[str, str]:
        variables = environment.pop("environment_variables", None)
        env: dict[str, str] = {}
        if isinstance(variables, dict):  # per accelerator: {cpu: [...], cuda: [...], rocm: [...]}
            chosen = variables.get("cuda") or variables.get("gpu") or variables.get("cpu") or []
            self.note(
                "environment.environment_variables", "variables per accelerator: the CUDA (else CPU) list is used"
            )
            variables = chosen
        for i, item in enumerate(self.items(variables, "environment.environment_variables")):
            key, sep, value = str(item).partition("=")
            if not sep:
                raise self.error(f"environment.environment_variables.{i}", f"expected NAME=VALUE, got {item!r}")
            env[key] = value
        if env and not for_command:
            self.note("environment.environment_variables", "set them where the trainable runs; left out")
        image = environment.pop("image", None)
        if image is not None:
            self.note("environment.image", "scalehp runs trials in its own environment, not a container image")
        self.rest(environment, "environment", "a container setting with no scalehp equivalent; left out")
        return env if for_command else {}

    def resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        slots = resources.pop("slots_per_trial", None)
        if slots is not None:
            slots = self.count(slots, "resources.slots_per_trial")
            out["gpu"] = slots
            self.note(
                "resources.slots_per_trial",
                f"{slots} slot(s) -> {slots} GPU(s) per trial (Determined's slots are GPUs on GPU agents)",
            )
        self.rest(resources, "resources", "a Determined scheduling setting with no scalehp equivalent; left out")
        return out

    def leftovers(self, config: dict[str, Any]) -> None:
        why = {
            "labels": "scalehp has no labels; left out",
            "data": "the trial's data config (context.get_data_config()); pass what it needs as constants; left out",
            "min_validation_period": "the program decides how often it reports; left out",
            "min_checkpoint_period": "a command trial keeps no checkpoints; left out",
            "checkpoint_policy": "a command trial keeps no checkpoints; left out",
            "checkpoint_storage": "scalehp keeps checkpoints under the run's results folder; left out",
            "records_per_epoch": "scalehp counts the steps the program reports; left out",
            "scheduling_unit": "scalehp has no scheduling unit; left out",
            "perform_initial_validation": "the program decides when it reports; left out",
            "bind_mounts": "scalehp runs trials on the machine's own files; left out",
            "workspace": "scalehp has no workspaces; left out",
            "project": "scalehp has no projects; left out",
        }
        for key, value in config.items():
            if value is not None:
                self.note(key, f"{why.get(key, 'no scalehp equivalent; left out')}")


def _grid_points(kind: str, low: float, high: float, count: int, base: float | None) -> list[Any]:
    """Determined's grid points of an int, double or log range (master/pkg/searcher/grid.go)."""
    if kind == "int":
        count = min(count, int(high - low) + 1)
        if count == 1:
            return [go_round((low + high) / 2)]
        return sorted({go_round(low + i * (high - low) / (count - 1)) for i in range(count)})
    if count == 1:
        exponents = [(low + high) / 2]
    else:
        exponents = [low + i * (high - low) / (count - 1) for i in range(count)]
    if kind == "double":
        return exponents
    return [base**e for e in exponents]


__all__ = ["convert"]
