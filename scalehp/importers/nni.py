"""NNI experiment configs (v2 format) and NNI search-space files -> scalehp experiment files.

What maps how (the full table is docs/import/nni.md)::

    searchSpace / searchSpaceFile -> space (randint's upper bound is exclusive; q types keep
                                     NNI's clip(round(x / q) * q, low, high); a choice over
                                     dicts with _name is a conditional choice)
    tuner / advisor               -> search (+ scheduler for Hyperband and BOHB); Batch, PBT are errors
    assessor                      -> scheduler median_stopping
    trialCommand, trialCodeDirectory -> command (params as one JSON argument), command.cwd
    trialConcurrency, maxTrialNumber, maxExperimentDuration, trialGpuNumber
                                  -> concurrency, budget.samples, budget.soft_time_limit, resources.gpu

A bare search-space file (``search_space.json``) is accepted too; the rest is then filled with
defaults, each with a note.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalehp.compiler import searcher_problem
from scalehp.importers import Imported, Note, Source, brief
from scalehp.importers._mapping import (
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    MAX_CHOICE_VALUES,
    Mapping,
    asha_from_hyperband,
    command_line,
    is_multiple,
    join,
    multiple,
    shown,
    span,
    tidy,
)

METRIC = "default"
"""The name NNI gives a trial's result (``nni.report_final_result(0.93)`` reports ``default``)."""
_TYPES = (
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)
_MODELS = {"smac": "random forest", "gp": "Gaussian process", "metis": "Gaussian process", "dngo": "neural network"}
_V1_KEYS = ("authorName", "maxTrialNum", "maxExecDuration", "searchSpacePath", "trial", "trainingServicePlatform")
_KEYS = (  # NNI v2's ExperimentConfig (camelCase; NNI also reads them in snake_case): any other is an error
    "experimentName", "experimentType", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
    "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber", "maxTrialDuration",
    "nniManagerIp", "useAnnotation", "debug", "logLevel", "experimentWorkingDirectory", "tunerGpuIndices",
    "tuner", "assessor", "advisor", "trainingService", "sharedStorage",
)
_TRAINING_NOTE = "scalehp runs trials on the Ray cluster it is connected to (on this machine by default)"


def _camel(key: str) -> str:
    """``trial_command`` -> ``trialCommand``."""
    first, *rest = key.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def convert(source: Source) -> Imported:
    """Convert an NNI experiment config (or a bare NNI search space).

    Raises:
        SpecError: a v1 config, annotations instead of a search space, a search-space type or a
            tuner with no scalehp equivalent (Batch, PBT, custom classes).
    """
    return _Nni(source).run()


def is_search_space(data: Any) -> bool:
    """Whether ``data`` is a bare NNI search space: every entry is ``{_type: ..., _value: ...}``."""
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, dict) and "_type" in v for v in data.values())
        and "trialCommand" not in data
    )


class _Nni(Mapping):
    def __init__(self, source: Source):
        super().__init__(source)
        self.trial_budget: int | None = None  # Hyperband's R: each trial's TRIAL_BUDGET
        self.main = source
        self.space_source = source  # the file that holds the search space
        self.space_prefix = ""  # its key path there
        self.inexact: dict[str, Note] = {}  # the note on each q range whose values differ, by its path

    @contextmanager
    def in_space(self) -> Iterator[None]:
        """Errors within point into the file that holds the search space."""
        outer = self.source
        self.source = self.space_source
        try:
            yield
        finally:
            self.source = outer

    def convert(self) -> Imported:
        if is_search_space(self.source.data):
            return self.bare_space()
        config = self.section(self.source.data, "")
        snake = [k for k in config if isinstance(k, str) and "_" in k and _camel(k) in _KEYS]
        if snake:
            raise self.error(
                snake[0], f"write NNI's keys in camelCase ({_camel(snake[0])}): scalehp reads NNI's documented form"
            )
        config = self.section(config, "", known=(*_KEYS, *_V1_KEYS), what="NNI experiment")
        v1 = [k for k in _V1_KEYS if k in config]
        if v1:
            raise self.error(
                v1[0],
                "this is an NNI v1 config; scalehp reads the v2 format (trialCommand, maxTrialNumber, tuner.name)",
            )
        kind = config.pop("experimentType", None)
        if kind not in (None, "hpo"):
            raise self.error(
                "experimentType", f"{shown(kind)}: scalehp runs hyperparameter searches (hpo), not NNI's {shown(kind)}"
            )
        if config.pop("useAnnotation", None):
            raise self.error(
                "useAnnotation",
                "the search space is in NNI annotations in the trial code; write it as searchSpace and import again",
            )
        name = self.experiment_name(config.pop("experimentName", None), "experimentName")
        self.refuse_early(config)
        space_data, self.space_prefix, self.space_source = self.space_data(config)
        space = self.space(space_data, self.space_prefix, self.space_source)

        tuner_key = "tuner" if config.get("tuner") is not None else "advisor"
        if config.get("tuner") is not None and config.get("advisor") is not None:
            raise self.error("advisor", "give a tuner or an advisor, not both")
        tuner = self.section(config.pop(tuner_key, None), tuner_key)
        config.pop("advisor" if tuner_key == "tuner" else "tuner", None)
        assessor = self.section(config.pop("assessor", None), "assessor")

        samples_raw = config.pop("maxTrialNumber", None)
        samples = DEFAULT_SAMPLES if samples_raw is None else self.count(samples_raw, "maxTrialNumber")
        data: dict[str, Any] = {"name": name}
        search, scheduler, max_steps, mode, space, samples = self.tuner(tuner, tuner_key, space, samples)
        if samples_raw is None and search.get("algorithm") != "grid":
            self.note(
                "maxTrialNumber",
                f"no maxTrialNumber: NNI creates trials until stopped; budget.samples is {samples}",
            )
        if assessor:
            if scheduler is not None:
                raise self.error("assessor", f"{tuner_key} {tuner.get('name')} already stops trials; drop the assessor")
            scheduler, assessor_mode = self.assessor(assessor)
            if mode is not None and assessor_mode is not None and assessor_mode != mode:
                self.note(
                    "assessor.classArgs.optimize_mode",
                    f"{assessor_mode}, where the tuner's is {mode}: scalehp has one mode, the tuner's",
                )
            mode = mode or assessor_mode
        if mode is None:
            mode = "minimize"
            self.note(f"{tuner_key}.classArgs", "no optimize_mode: minimize, NNI's default for TPE and most tuners")

        data["command"] = self.command(config)
        if self.trial_budget is not None:  # what Hyperband hands each trial in NNI
            data["command"]["env"] = {"SCALEHP_NNI_TRIAL_BUDGET": str(self.trial_budget)}
        data["metric"] = {"name": METRIC, "mode": "min" if mode == "minimize" else "max"}
        self.note(
            "trialCommand",
            "command.client nni: the trial code runs unchanged against scalehp's stand-in of nni "
            "(get_next_parameter gives the trial's params, nested choices as {_name: ...}; each "
            "report_intermediate_result is one step and report_final_result gives the last step its values; "
            f"nothing reaches an NNI manager); the params are also one JSON argument (${{args_json}}) and "
            f"SCALEHP_PARAMS, and '{METRIC}=<value>' lines it prints are read too",
        )
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS
            self.note(
                "",
                f"NNI has no per-trial step budget; budget.max_steps is {max_steps} (a step is one reported "
                "intermediate result): set it to the results your trial reports",
            )
        budget: dict[str, Any] = {"samples": samples, "max_steps": max_steps}
        duration = config.pop("maxExperimentDuration", None)
        if duration is not None:
            # NNI stops creating trials then and lets running ones finish: scalehp's soft limit
            budget["soft_time_limit"] = self.duration(duration, "maxExperimentDuration")
        data["budget"] = budget
        resources = self.resources(config)
        if resources:
            data["resources"] = resources
        data["concurrency"] = self.count(config.pop("trialConcurrency", None), "trialConcurrency")
        seed = search.pop("_seed", None)
        if seed is not None:
            data["seed"] = seed
        data["space"] = space
        data["search"] = search
        if scheduler is not None and "median_stopping" in scheduler:
            options = scheduler["median_stopping"]  # min_samples is scalehp's (NNI compares with every completed trial)
            options["min_samples"] = max(1, min(options["min_samples"], samples - 1))
            scheduler = self.median_stopping(
                scheduler, samples, max_steps, {"grace_steps": "assessor.classArgs.start_step", "min_samples": "assessor"}
            )
        if scheduler is not None:
            data["scheduler"] = scheduler
        trial_duration = config.pop("maxTrialDuration", None)
        if trial_duration is not None:
            self.note("maxTrialDuration", f"{trial_duration}: scalehp has no per-trial time limit; left out")
        for key in ("nniManagerIp", "debug", "logLevel", "experimentWorkingDirectory", "tunerGpuIndices"):
            if config.pop(key, None) is not None:
                self.note(key, "an NNI manager setting with no scalehp equivalent; left out")
        if config.pop("sharedStorage", None) is not None:
            self.note("sharedStorage", _TRAINING_NOTE + "; shared storage is yours to mount")
        self.rest(config, "")
        return self.done(data)

    def refuse_early(self, config: dict[str, Any]) -> None:
        """Tuners with no equivalent fail before their search space is read (Batch's is not a space)."""
        for key in ("tuner", "advisor"):
            tuner = config.get(key)
            if isinstance(tuner, dict) and str(tuner.get("name")).lower() in ("batch", "pbt"):
                self.tuner(dict(tuner), key, {}, 1)

    # -- a bare search space ---------------------------------------------------------------------

    def bare_space(self) -> Imported:
        space = self.space(self.source.data, "", self.source)
        name = self.experiment_name(None, "")
        self.note(
            "",
            "a bare search space: the command is a placeholder (${python} trial.py ${args_json}: replace trial.py "
            f"with your trial code), the metric is NNI's '{METRIC}' minimized, {DEFAULT_SAMPLES} trials of at most "
            f"{DEFAULT_MAX_STEPS} steps, random search",
        )
        return self.done(
            {
                "name": name,
                "command": {"run": "${python} trial.py ${args_json}", "client": "nni"},
                "metric": {"name": METRIC, "mode": "min"},
                "budget": {"samples": DEFAULT_SAMPLES, "max_steps": DEFAULT_MAX_STEPS},
                "space": space,
                "search": {"algorithm": "random"},
            }
        )

    # -- the search space ------------------------------------------------------------------------

    def space_data(self, config: dict[str, Any]) -> tuple[Any, str, Source]:
        inline = config.pop("searchSpace", None)
        file = config.pop("searchSpaceFile", None)
        if inline is not None and file is not None:
            raise self.error("searchSpaceFile", "give searchSpace or searchSpaceFile, not both")
        if file is not None:
            other = self.source.sibling(file, "searchSpaceFile")
            if not is_search_space(other.data):  # it could be any file in the folder: show none of it
                raise self.error(
                    "searchSpaceFile",
                    f"{other.path} is not an NNI search space (a mapping of name -> {{_type, _value}}); "
                    "its text is not shown",
                )
            return other.data, "", other
        if inline is None:
            raise self.error("", "no search space: give searchSpace or searchSpaceFile")
        return inline, "searchSpace", self.source

    def note(self, path: str, message: str) -> None:
        if self.source is not self.main:  # a note on the search-space file: at searchSpaceFile in the config
            line = self.main.line_of("searchSpaceFile")
            self.notes.append(Note(brief(join("searchSpaceFile", path), 200), brief(message, 1000), line))
            return
        super().note(path, message)

    def space(self, raw: Any, path: str, source: Source) -> dict[str, Any]:
        outer = self.source
        self.source = source  # errors point into the search-space file
        try:
            if not isinstance(raw, dict) or not raw:
                raise self.error(path, "the search space must be a non-empty mapping of name -> {_type, _value}")
            space = {}
            for name, spec in raw.items():
                with self.gathering():  # every bad parameter named in one run
                    space[self.param_name(name, join(path, name))] = self.param(spec, join(path, name))
            self.settle()
            return space
        finally:
            self.source = outer

    def sub_space(self, option: dict[str, Any], path: str) -> dict[str, Any]:
        out = {}
        for key, spec in option.items():
            if key == "_name":
                continue
            name = self.param_name(key, join(path, key), nested=True)
            if isinstance(spec, dict) and "_type" in spec:
                out[name] = self.param(spec, join(path, key))
            else:
                out[name] = {"constant": spec}
        return out

    def param(self, spec: Any, path: str) -> Any:
        if not isinstance(spec, dict) or "_type" not in spec:
            raise self.error(path, "expected {_type: ..., _value: ...}")
        kind = spec.get("_type")
        value = spec.get("_value")
        for key in spec:
            if key not in ("_type", "_value"):
                self.note(join(path, key), "not part of NNI's search-space format; left out")
        if kind not in _TYPES:
            raise self.error(join(path, "_type"), f"unknown NNI type {kind!r}; expected one of {', '.join(_TYPES)}")
        vpath = join(path, "_value")
        if not isinstance(value, list) or not value:
            raise self.error(vpath, "expected a list")
        if kind == "choice":
            return self.choice(value, vpath)
        arity = 3 if kind.startswith("q") else 2
        if len(value) != arity:
            raise self.error(vpath, f"{kind} takes {arity} numbers, got {len(value)}")
        numbers = [self.number(v, f"{vpath}.{i}") for i, v in enumerate(value)]
        if kind == "randint":
            low, high = (self.number(v, f"{vpath}.{i}", integer=True) for i, v in enumerate(value))
            if high - low < 1:
                raise self.error(vpath, f"randint needs lower < upper (upper is exclusive), got {value}")
            if high - low == 1:
                return {"constant": low}
            return {"int": [low, high - 1]}  # NNI's upper bound is exclusive
        if kind in ("uniform", "loguniform"):
            return {"float": numbers, **({"log": True} if kind == "loguniform" else {})}
        if kind in ("quniform", "qloguniform"):
            low, high, q = numbers
            if q <= 0:
                raise self.error(f"{vpath}.2", f"q must be > 0, got {q}")
            return self.q_range(kind, low, high, q, path)
        if kind in ("normal", "lognormal", "qnormal", "qlognormal"):
            mu, sigma = numbers[0], numbers[1]
            key = "lognormal" if "log" in kind else "normal"
            param: dict[str, Any] = {key: [mu, sigma]}
            if kind.startswith("q"):
                param["step"] = numbers[2]
            return param
        raise AssertionError(kind)  # pragma: no cover - every type is handled above

    def q_range(self, kind: str, low: Any, high: Any, q: Any, path: str) -> Any:
        """quniform/qloguniform with NNI's exact values: ``clip(round(x / q) * q, low, high)``.

        Those are the multiples of q in [low, high] (scalehp's step) plus a bound that rounding
        moves outside the range and clipping brings back (``[2, 10, 5]`` takes 2, 5, 10). With such
        a bound the values are listed as a choice (at most MAX_CHOICE_VALUES), else the stepped
        range stays with a note naming the values it loses.
        """
        log = kind == "qloguniform"
        whole = all(float(v).is_integer() for v in (low, high, q))
        if low >= high:
            raise self.error(path, f"{kind} needs low < high, got {low} and {high}")
        if log and low <= 0:
            raise self.error(path, f"qloguniform needs low > 0, got {low}")
        clipped = [b for b in (low, high) if _clipped_in(b, q, low)]
        count = _q_count(low, high, q)
        stepped_param: dict[str, Any] = {"float": [low, high], "step": q, **({"log": True} if log else {})}
        if not clipped and count >= 2:
            if not log and whole:
                self.note(
                    path,
                    f"{kind} over whole numbers: an int range with step {int(q)} (the same values; NNI passes "
                    "them as floats such as 5.0, scalehp as ints)",
                )
                return {"int": [int(low), int(high)], **({"step": int(q)} if q != 1 else {})}
            return stepped_param
        if count <= MAX_CHOICE_VALUES:
            values = _q_values(low, high, q)
            if whole:
                values = [int(v) for v in values]
            if len(values) == 1:
                self.note(path, f"{kind} takes only {values[0]:g}: a constant")
                return {"constant": values[0]}
            listed = ", ".join(f"{v:g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
            self.note(
                path,
                f"{kind}: NNI takes {listed} ({len(values)} values); "
                + " and ".join(f"{b:g}" for b in clipped)
                + f" NNI's clip makes a value, which is no multiple of {q:g} (all a scalehp step takes): the "
                "same values as a choice, each drawn equally often"
                + (" (the log scale left out)" if log else "")
                + " and unordered to the searchers"
                + (" (NNI passes them as floats such as 5.0, scalehp as ints)" if whole else ""),
            )
            return {"choice": values}
        self.note(
            path,
            f"VALUES DIFFER: {kind}: NNI also takes "
            + " and ".join(f"{b:g}" for b in clipped)
            + f" (its clip to the bounds makes them values), which scalehp's step, the multiples of {q:g} in "
            f"[{low:g}, {high:g}], leaves out; too many values to list as a choice (more than "
            f"{MAX_CHOICE_VALUES:,}): make low and high multiples of q to keep NNI's values",
        )
        self.inexact[path] = self.notes[-1]
        return stepped_param

    def choice(self, options: list[Any], path: str) -> Any:
        if not any(isinstance(o, dict) for o in options):
            return {"choice": options}
        conditional: dict[Any, Any] = {}
        for i, option in enumerate(options):
            where = f"{path}.{i}"
            if isinstance(option, dict):
                if "_name" not in option:
                    raise self.error(where, "a nested search space in a choice needs a _name")
                key = option["_name"]
                sub = self.sub_space(option, where) or None
            else:
                key, sub = option, None
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise self.error(where, f"a conditional choice's option must be a string or an integer, got {key!r}")
            if key in conditional:
                raise self.error(where, f"option {key!r} is listed twice")
            conditional[key] = sub
        self.note(
            path,
            "a nested choice: nni.get_next_parameter() (the stand-in) gives {_name: option, sub-params...} as NNI "
            "does; ${args_json} and SCALEHP_PARAMS hold the option under the choice's name and each sub-param as "
            "<choice>.<sub-param>",
        )
        return {"choice": conditional}

    # -- the tuner -------------------------------------------------------------------------------

    def tuner(self, tuner: dict[str, Any], key: str, space: dict[str, Any], samples: int) -> tuple:
        """search, scheduler, max_steps, optimize mode, space (grid may change it), samples."""
        search: dict[str, Any] = {"algorithm": "random"}
        if not tuner:
            self.note("", "no tuner: random search")
            return search, None, None, None, space, samples
        name = tuner.pop("name", None)
        if tuner.pop("className", None) is not None or tuner.pop("codeDirectory", None) is not None:
            raise self.error(f"{key}.className", "a custom tuner class has no scalehp equivalent")
        args = self.section(tuner.pop("classArgs", None), f"{key}.classArgs")
        self.rest(tuner, key)
        lower = str(name).lower()
        where = f"{key}.name"
        argp = f"{key}.classArgs"
        mode = args.pop("optimize_mode", None)
        if mode is not None and mode not in ("minimize", "maximize"):
            raise self.error(f"{argp}.optimize_mode", f"expected minimize or maximize, got {mode!r}")
        seed = args.pop("seed", None)
        if seed is not None:
            search["_seed"] = self.number(seed, f"{argp}.seed", integer=True)
        scheduler = None
        max_steps = None
        if lower == "random":
            pass
        elif lower == "tpe":
            search["algorithm"] = "hyperopt"
            tpe_args = self.section(args.pop("tpe_args", None), f"{argp}.tpe_args")
            startup = tpe_args.pop("n_startup_jobs", None)
            if startup is not None:
                search["initial_points"] = self.count(startup, f"{argp}.tpe_args.n_startup_jobs")
            self.rest(tpe_args, f"{argp}.tpe_args", "scalehp runs hyperopt's TPE with its default settings; left out")
            self.note(where, "TPE: hyperopt's TPE (NNI's TPE re-implements hyperopt's)")
        elif lower == "anneal":
            search["algorithm"] = "hyperopt"
            self.note(where, "Anneal (hyperopt's annealing) has no scalehp equivalent; closest: hyperopt's TPE")
        elif lower == "evolution":
            problem = searcher_problem(space, "optuna", "tpe")
            if problem is None:
                search.update(algorithm="optuna", sampler="nsga2")
                self.note(
                    where, "Evolution: optuna's NSGA-II sampler, a genetic algorithm, with its own population size"
                )
            else:
                search["algorithm"] = "hyperopt"
                self.note(where, f"Evolution: hyperopt's TPE (optuna's genetic sampler cannot search {problem})")
            if args.pop("population_size", None) is not None:
                self.note(f"{argp}.population_size", "scalehp's searchers set their own population; left out")
        elif lower in ("smac", "gp", "metis", "dngo"):
            search["algorithm"] = "hyperopt"
            self.note(
                where,
                f"{name} (Bayesian optimization with a {_MODELS[lower]} model) "
                "has no scalehp equivalent; the closest model-based searcher is hyperopt's TPE",
            )
            startup = args.pop("cold_start_num", None)
            if startup is not None:
                search["initial_points"] = self.count(startup, f"{argp}.cold_start_num")
        elif lower == "gridsearch":
            space, search, samples = self.grid(space, where, samples)
        elif lower in ("hyperband", "bohb"):
            if lower == "hyperband":
                budget, eta = args.pop("R", 60), args.pop("eta", 3)
                budget_path = f"{argp}.R"
            else:
                budget, eta = args.pop("max_budget", 3), args.pop("eta", 3)
                budget_path = f"{argp}.max_budget"
                search["algorithm"] = "hyperopt"
                minimum = args.pop("min_budget", None)
                if minimum is not None:
                    self.note(
                        f"{argp}.min_budget", "the smallest budget follows from max_budget and eta in scalehp's asha"
                    )
            max_steps = self.count(budget, budget_path)
            eta = self.eta(eta, f"{argp}.eta", max_steps)
            scheduler = {"asha": asha_from_hyperband(max_steps, eta)}
            if lower == "hyperband":  # NNI's rounds: floor(R * eta**(i - s)), the same list in every bracket
                s_max = math.floor(math.log(max_steps, eta) + 1e-6) if max_steps > 1 else 0
                rungs = sorted({math.floor(max_steps * eta ** (j - s_max) + 1e-6) for j in range(s_max)} - {max_steps})
                if rungs:
                    scheduler = {"asha": {"reduction_factor": eta, "brackets": min(10, len(rungs) + 1), "rungs": rungs}}
            shown = scheduler["asha"].get("rungs")
            self.note(
                where,
                f"{name} runs as scalehp's asha (asynchronous successive halving"
                + (f", rungs at {', '.join(map(str, shown))} steps as NNI's rounds, a bracket per round count" if shown else ", same brackets")
                + ")"
                + (" with hyperopt's TPE suggesting configs" if lower == "bohb" else "")
                + f": a command trial cannot be paused and resumed, so each trial gets TRIAL_BUDGET = {max_steps} "
                "(the full budget) from nni.get_next_parameter() and is stopped early at a rung (a step is one "
                "intermediate result)",
            )
            self.trial_budget = max_steps
            if args.pop("exec_mode", None) is not None:
                self.note(f"{argp}.exec_mode", "scalehp's asha always runs brackets in parallel; left out")
        elif lower == "batch":
            raise self.error(
                where,
                "the Batch tuner lists whole configs; scalehp searches a space of params: write the lists as "
                "{grid: [...]} params of a scalehp experiment",
            )
        elif lower == "pbt":
            raise self.error(
                where,
                "PBT needs trials that save and restore checkpoints, which a command trial cannot; write a Python "
                "trainable and use scheduler pbt",
            )
        else:
            raise self.error(where, f"unknown NNI tuner {name!r}")
        self.rest(args, argp, f"a {name} setting with no scalehp equivalent; left out")
        return search, scheduler, max_steps, mode, space, samples

    def grid(self, space: dict[str, Any], where: str, samples: int) -> tuple[dict, dict, int]:
        """NNI's grid: enumerable params become grid values; a continuous one means random search instead."""
        out: dict[str, Any] = {}
        for name, param in space.items():
            count = _count(param)
            if count is not None:
                with self.in_space():
                    self.check_grid(count, join(self.space_prefix, name))
            values = None if count is None else _enumerate(param)
            if values is None:
                self.note(
                    where,
                    f"GridSearch: scalehp's grid cannot enumerate {name!r} (a continuous or conditional param; "
                    "NNI refines such grids step by step); random search instead",
                )
                return space, {"algorithm": "random"}, samples
            out[name] = param if "constant" in param else {"grid": values}
            stale = self.inexact.pop(join(self.space_prefix, name), None)
            if stale is not None:  # the grid lists NNI's exact values
                self.notes.remove(stale)
            with self.in_space():
                self.grid_param(len(values), join(self.space_prefix, name))
        size = self.grid_points
        if samples < size and "maxTrialNumber" in self.source.data:
            self.note("maxTrialNumber", f"scalehp's grid runs every point once ({size} trials), not {samples}")
        return out, {"algorithm": "grid"}, 1

    def assessor(self, assessor: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        name = assessor.pop("name", None)
        if assessor.pop("className", None) is not None:
            raise self.error("assessor.className", "a custom assessor class has no scalehp equivalent")
        args = self.section(assessor.pop("classArgs", None), "assessor.classArgs")
        self.rest(assessor, "assessor")
        mode = args.pop("optimize_mode", None)
        if mode is not None and mode not in ("maximize", "minimize"):
            raise self.error("assessor.classArgs.optimize_mode", f"expected maximize or minimize, got {mode!r}")
        lower = str(name).lower()
        if lower == "medianstop":
            start = args.pop("start_step", 0)
            grace = max(1, self.count(start, "assessor.classArgs.start_step", minimum=0))
            self.note(
                "assessor.name",
                "Medianstop -> median_stopping, the closest rule, not the same: NNI compares a trial with the running "
                "averages of the completed trials only (from the first completed one); scalehp (Ray's rule) compares "
                "it with every other trial that reached the same step, running or done, once min_samples (3, or "
                "fewer trials than that less one) of them have, so it can stop trials before any has completed",
            )
        elif lower == "curvefitting":
            start = args.pop("start_step", 6)
            grace = max(1, self.count(start, "assessor.classArgs.start_step", minimum=0))
            self.note(
                "assessor.name",
                "Curvefitting (predicts each trial's final result from its learning curve) has no scalehp "
                "equivalent; the closest is median_stopping, which compares a trial with the others at each step",
            )
            self.rest(args, "assessor.classArgs", "a Curvefitting setting; left out")
            args = {}
        else:
            raise self.error("assessor.name", f"unknown NNI assessor {name!r} (NNI has Medianstop and Curvefitting)")
        self.rest(args, "assessor.classArgs", f"a {name} setting with no scalehp equivalent; left out")
        return {"median_stopping": {"grace_steps": grace, "min_samples": 3}}, mode

    # -- the trial -------------------------------------------------------------------------------

    def command(self, config: dict[str, Any]) -> dict[str, Any]:
        text = self.string(config.pop("trialCommand", None), "trialCommand")
        words = self.python_first(self.shell_words(text, "trialCommand"), "trialCommand")
        folder = config.pop("trialCodeDirectory", None) or "."
        base = Path(self.source.path).parent
        cwd = Path(os.path.expanduser(str(folder)))
        cwd = Path(os.path.normpath(cwd if cwd.is_absolute() else base / cwd))
        if not cwd.is_absolute():
            self.note(
                "trialCodeDirectory" if "trialCodeDirectory" in self.source.data else "trialCommand",
                f"the trial runs in {cwd.as_posix()!r}, relative to where scalehp import ran: "
                "run scalehp from the same folder",
            )
        return {"run": command_line([*words, "${args_json}"]), "cwd": cwd.as_posix(), "client": "nni"}

    def resources(self, config: dict[str, Any]) -> dict[str, Any]:
        gpus = config.pop("trialGpuNumber", None)
        out: dict[str, Any] = {}
        if gpus is not None:
            out["gpu"] = self.number(gpus, "trialGpuNumber")
        service = config.pop("trainingService", None)
        services = service if isinstance(service, list) else [service] if service is not None else []
        for i, item in enumerate(services):
            path = f"trainingService.{i}" if isinstance(service, list) else "trainingService"
            entry = self.section(item, path)
            platform = entry.pop("platform", None)
            if platform != "local":
                self.note(f"{path}.platform", f"{platform}: {_TRAINING_NOTE}")
                self.rest(entry, path, f"a {platform} setting; left out")
                continue
            share = entry.pop("maxTrialNumberPerGpu", None)
            if share is not None:
                share = self.count(share, f"{path}.maxTrialNumberPerGpu")
                if out.get("gpu") == 1 and share > 1:
                    out["gpu"] = tidy(1 / share)
                elif share > 1:
                    self.note(f"{path}.maxTrialNumberPerGpu", "GPU sharing applies to one-GPU trials only; left out")
            if entry.pop("useActiveGpu", True) is False:  # NNI skips GPUs other processes use; Ray counts, not looks
                self.note(
                    f"{path}.useActiveGpu",
                    "false: NNI leaves out GPUs that other processes use; Ray hands out GPUs by its own count and "
                    "does not look (set CUDA_VISIBLE_DEVICES to keep trials off a busy GPU)",
                )
            if entry.pop("gpuIndices", None) is not None:
                self.note(
                    f"{path}.gpuIndices", "Ray picks the GPUs of each trial; set CUDA_VISIBLE_DEVICES to limit them"
                )
            self.rest(entry, path, "a training-service setting with no scalehp equivalent; left out")
        return out


def _count(param: dict[str, Any]) -> float | None:
    """How many values :func:`_enumerate` would list (at least; inf when past a float), or None."""
    if "constant" in param:
        return 1
    if "choice" in param:
        return None if isinstance(param["choice"], dict) else len(param["choice"])
    if "int" in param and not param.get("log"):
        return len(_int_values(param))
    if "float" in param and param.get("step"):
        low, high = param["float"]
        return span(low, high, param["step"]) + 1
    return None


def _enumerate(param: dict[str, Any]) -> list[Any] | None:
    """Every value an enumerable converted param takes (NNI's q rounding), or None."""
    if "constant" in param:
        return [param["constant"]]
    if "choice" in param:
        return None if isinstance(param["choice"], dict) else list(param["choice"])
    if "int" in param and not param.get("log"):
        return list(_int_values(param))
    if "float" in param and param.get("step"):
        low, high = param["float"]
        return _q_values(low, high, param["step"])
    return None


def _int_values(param: dict[str, Any]) -> range:
    """The ints a converted int range takes: the multiples of its step in [low, high], as scalehp's step."""
    low, high = param["int"]
    step = param.get("step", 1)
    return range(-(-low // step) * step, high // step * step + 1, step)


def _q_values(low: float, high: float, q: float) -> list[float]:
    """NNI's values of a q range: ``clip(round(x / q) * q, low, high)`` for x in [low, high], with or without log."""
    values = {min(high, max(low, multiple(k, q))) for k in range(round(low / q), round(high / q) + 1)}
    return sorted(float(v) for v in values)


def _q_count(low: float, high: float, q: float) -> float:
    """How many values :func:`_q_values` lists, at most (inf when past a float)."""
    try:
        return round(high / q) - round(low / q) + 1
    except OverflowError:
        return math.inf


def _clipped_in(bound: float, q: float, low: float) -> bool:
    """Whether NNI rounds ``bound`` (low or high) outside the range, so that its clip makes it a value."""
    if is_multiple(bound, q):
        return False
    try:
        nearest = round(bound / q)
    except OverflowError:
        return False
    return nearest * q < bound if bound == low else nearest * q > bound

