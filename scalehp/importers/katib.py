"""Kubeflow Katib ``Experiment`` manifests (``kubeflow.org/v1beta1``) -> scalehp experiment files.

What maps how (the full table is docs/import/katib.md)::

    spec.objective            -> metric (type -> mode, goal -> metric.goal)
    spec.algorithm            -> search (+ scheduler for hyperband); pbt, enas, darts are errors
    spec.earlyStopping        -> scheduler median_stopping
    spec.parameters           -> space (double/int/categorical/discrete; Katib's normal and
                                 logNormal take min/max as the +-3 sigma range; a step counts
                                 from min, so a min that is no multiple of it gives a choice)
    spec.trialTemplate        -> command: the primary container's command + args, with
                                 ${trialParameters.x} -> ${<param>}; its resources -> resources
    spec.metricsCollectorSpec -> command.metric_format (StdOut); other collectors: a note
    parallelTrialCount, maxTrialCount, maxFailedTrialCount -> concurrency, budget.samples,
                                 failure.max_failed_trials
"""

from __future__ import annotations

import math
import re
from typing import Any

from scalehp.compiler import searcher_problem
from scalehp.importers import Imported, Source
from scalehp.importers._mapping import (
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    EPOCH_NOTE,
    EPOCH_STEP,
    Mapping,
    asha_from_hyperband,
    join,
    named_metric_format,
    shown,
    span,
    tidy,
)
from scalehp.schedulers.asha import AshaSettings, bracket_steps

KATIB_DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""Katib's default ``metricsFormat``: the same ``name=value`` lines scalehp reads by default."""
DEFAULT_PARALLEL = 3  # Katib's default parallelTrialCount
_TRIAL_PARAM = re.compile(r"\$\{trialParameters\.([^}]+)\}")
_GPU_KEYS = ("nvidia.com/gpu", "amd.com/gpu")
_MEDIAN_DEFAULTS = {"min_trials_required": 3, "start_step": 4}
KEPT = {
    "spec.objective.additionalMetricNames.*": "exact: scalehp records every metric a report holds",
    "spec.trialTemplate.trialParameters.*.description": "documentation only",
}
"""Settings kept exactly with nothing to write (key patterns; see tests/test_import_no_silent_change.py)."""


def convert(source: Source) -> Imported:
    """Convert a Katib Experiment manifest.

    Raises:
        SpecError: the manifest is not an Experiment, or uses what scalehp cannot run
            (NAS, PBT, a trial template in a ConfigMap, a container without a command).
    """
    return _Katib(source).run()


_KNOWN = {  # the keys of Katib's v1beta1 Experiment (its Go types): any other is an error, not a note
    "": ("apiVersion", "kind", "metadata", "spec", "status"),
    "spec": (
        "parameters", "objective", "algorithm", "earlyStopping", "trialTemplate", "parallelTrialCount",
        "maxTrialCount", "maxFailedTrialCount", "metricsCollectorSpec", "nasConfig", "resumePolicy",
    ),
    "objective": ("type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"),
    "algorithm": ("algorithmName", "algorithmSettings"),  # and earlyStopping's
    "trialTemplate": (
        "retain", "trialSpec", "configMap", "trialParameters", "primaryPodLabels", "primaryContainerName",
        "successCondition", "failureCondition",
    ),
    "parameter": ("name", "parameterType", "feasibleSpace"),
    "feasibleSpace": ("min", "max", "list", "step", "distribution"),
}


class _Katib(Mapping):
    def __init__(self, source: Source):
        super().__init__(source)
        self.param_paths: dict[str, str] = {}  # scalehp param name -> its key path in the manifest

    def convert(self) -> Imported:
        top = self.section(self.source.data, "", known=_KNOWN[""], what="Katib Experiment")
        api = top.pop("apiVersion", None)
        kind = top.pop("kind", None)
        if kind != "Experiment":
            raise self.error("kind", f"expected a Katib manifest of kind Experiment, got {kind!r}")
        if isinstance(api, str) and api.startswith("kubeflow.org/v1alpha"):
            raise self.error(
                "apiVersion",
                f"{api} is Katib's old API (its parameters, trial template and collector are written another way); "
                "scalehp reads kubeflow.org/v1beta1 manifests: rewrite it as v1beta1 (Katib's v1beta1 guide)",
            )
        if api != "kubeflow.org/v1beta1":
            self.note("apiVersion", f"read as kubeflow.org/v1beta1 (the file says {api!r})")
        metadata = self.section(top.pop("metadata", None), "metadata")
        name = self.experiment_name(metadata.pop("name", None), "metadata.name")
        self.rest(metadata, "metadata", "Kubernetes metadata; scalehp has no namespaces, labels or annotations")
        if top.pop("status", None) is not None:
            self.note("status", "Katib's record of an earlier run; left out")
        spec = self.section(top.pop("spec", None), "spec", required=True, known=_KNOWN["spec"], what="Experiment spec")
        self.rest(top, "")

        if spec.get("nasConfig") is not None:
            raise self.error("spec.nasConfig", "neural architecture search (nasConfig) has no scalehp equivalent")
        objective = self.section(
            spec.pop("objective", None), "spec.objective", required=True, known=_KNOWN["objective"], what="objective"
        )
        metric = self.objective(objective)
        space, renamed = self.parameters(spec.pop("parameters", None))
        algorithm = self.section(
            spec.pop("algorithm", None), "spec.algorithm", required=True, known=_KNOWN["algorithm"], what="algorithm"
        )
        algorithm_name = algorithm.get("algorithmName")
        if algorithm_name == "grid":
            space = self.grid_space(space)
        search, scheduler, max_steps, resource = self.algorithm(algorithm, space, renamed)
        if resource is not None:
            param, value, path = resource
            space[param] = {"constant": value}
            self.note(
                path,
                f"Hyperband gives each trial a budget through param {param!r}; scalehp's asha stops trials "
                f"instead, so {param!r} is the constant {value} (the full budget) and trials are stopped early",
            )
        early = spec.pop("earlyStopping", None)
        if early is not None:
            if scheduler is not None:
                raise self.error("spec.earlyStopping", "early stopping and Hyperband both stop trials; keep one")
            scheduler = self.early_stopping(
                self.section(early, "spec.earlyStopping", known=_KNOWN["algorithm"], what="earlyStopping")
            )

        data: dict[str, Any] = {"name": name}
        template = self.section(
            spec.pop("trialTemplate", None), "spec.trialTemplate", required=True, known=_KNOWN["trialTemplate"],
            what="trialTemplate",
        )
        command, resources = self.trial_template(template, renamed)
        collector = self.metrics_collector(spec.pop("metricsCollectorSpec", None), metric["name"])
        if collector:
            command["metric_format"] = collector
        if resource is not None:  # the budget is epochs: a printed line is not one
            command["step"] = EPOCH_STEP
            self.note(resource[2], EPOCH_NOTE)
        data["command"] = command
        data["metric"] = metric

        samples = spec.pop("maxTrialCount", None)
        if algorithm_name == "grid":
            if samples is not None:
                self.note(
                    "spec.maxTrialCount",
                    f"scalehp's grid search runs every grid point once ({self.grid_points} trials), "
                    f"where Katib stops after {samples}",
                )
            samples = 1
        elif samples is None:
            samples = DEFAULT_SAMPLES
            self.note(
                "spec.maxTrialCount",
                f"no maxTrialCount: Katib runs until the goal or too many failures; scalehp needs a trial cap, "
                f"budget.samples {samples}",
            )
        else:
            samples = self.count(samples, "spec.maxTrialCount")
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS
            self.note(
                "spec",
                f"Katib has no per-trial step budget; budget.max_steps is {max_steps} (a step is one report "
                "of the objective metric): set it to the epochs your program runs",
            )
        data["budget"] = {"samples": samples, "max_steps": max_steps}
        if resources:
            data["resources"] = resources
        parallel = spec.pop("parallelTrialCount", None)
        data["concurrency"] = DEFAULT_PARALLEL if parallel is None else self.count(parallel, "spec.parallelTrialCount")
        seed = search.pop("_seed", None)
        if seed is not None:
            data["seed"] = seed
        data["space"] = space
        data["search"] = search
        if scheduler is not None and "median_stopping" in scheduler:
            where = "spec.earlyStopping.algorithmSettings"
            scheduler = self.median_stopping(
                scheduler,
                samples * self.grid_points,
                max_steps,
                {"grace_steps": f"{where}.start_step", "min_samples": f"{where}.min_trials_required"},
            )
        if scheduler is not None:
            data["scheduler"] = scheduler
        failed = spec.pop("maxFailedTrialCount", None)
        if failed is not None:
            failed = self.number(failed, "spec.maxFailedTrialCount", integer=True)
            if failed <= 0:
                data["failure"] = {"fail_fast": True}
                self.note("spec.maxFailedTrialCount", f"{failed}: the run stops at the first failed trial (fail_fast)")
            else:
                data["failure"] = {"max_failed_trials": failed}
        policy = spec.pop("resumePolicy", None)
        if policy is not None:
            self.note(
                "spec.resumePolicy",
                f"{policy}: scalehp keeps a run's state in its results folder; finish a stopped run "
                "with scalehp resume",
            )
        self.rest(spec, "spec")
        return self.done(data)

    # -- objective -------------------------------------------------------------------------------

    def objective(self, objective: dict[str, Any]) -> dict[str, Any]:
        kind = objective.pop("type", None)
        if kind not in ("minimize", "maximize"):
            raise self.error("spec.objective.type", f"expected minimize or maximize, got {kind!r}")
        name = self.string(objective.pop("objectiveMetricName", None), "spec.objective.objectiveMetricName")
        metric: dict[str, Any] = {"name": name, "mode": "min" if kind == "minimize" else "max"}
        goal = objective.pop("goal", None)
        if goal is not None:
            metric["goal"] = self.number(goal, "spec.objective.goal")
        objective.pop("additionalMetricNames", None)  # every name=value the program prints is recorded
        strategies = self.items(objective.pop("metricStrategies", None), "spec.objective.metricStrategies")
        for i, strategy in enumerate(strategies):
            if not isinstance(strategy, dict):
                raise self.error(f"spec.objective.metricStrategies.{i}", "expected {name: ..., value: ...}")
            default = "min" if kind == "minimize" else "max"
            if strategy.get("name") == name and strategy.get("value") != default:
                self.note(
                    f"spec.objective.metricStrategies.{i}",
                    f"{strategy.get('value')!r} for the objective: scalehp ranks a trial by its best reported "
                    f"value ({default}); the searcher learns from the trial's last report",
                )
            elif strategy.get("name") != name:
                self.note(
                    f"spec.objective.metricStrategies.{i}",
                    f"{strategy.get('name')!r}: every reported value of an additional metric is recorded; "
                    "no strategy to set",
                )
        self.rest(objective, "spec.objective")
        return metric

    # -- parameters ------------------------------------------------------------------------------

    def parameters(self, raw: Any) -> tuple[dict[str, Any], dict[str, str]]:
        if not isinstance(raw, list) or not raw:
            raise self.error("spec.parameters", "expected a list of parameters")
        space: dict[str, Any] = {}
        renamed: dict[str, str] = {}  # Katib name -> scalehp name
        for i, item in enumerate(raw):
            with self.gathering():  # every bad parameter named in one run
                path = f"spec.parameters.{i}"
                entry = self.section(item, path, known=_KNOWN["parameter"], what="parameter")
                katib_name = entry.pop("name", None)
                if not isinstance(katib_name, str) or not katib_name:
                    raise self.error(f"{path}.name", "every parameter needs a name")
                name = self.katib_param_name(katib_name, f"{path}.name")
                if name in space:
                    raise self.error(f"{path}.name", f"parameter {name!r} is declared twice")
                renamed[katib_name] = name
                self.param_paths[name] = path
                kind = entry.pop("parameterType", None)
                feasible = self.section(
                    entry.pop("feasibleSpace", None), f"{path}.feasibleSpace", required=True,
                    known=_KNOWN["feasibleSpace"], what="feasibleSpace",
                )
                space[name] = self.param(kind, feasible, f"{path}.feasibleSpace", f"{path}.parameterType")
                self.rest(entry, path)
        self.settle()
        return space, renamed

    def katib_param_name(self, raw: str, path: str) -> str:
        """Katib names reach the program through trialParameters, so an invalid one is renamed (with a note)."""
        name = re.sub(r"[^A-Za-z0-9_./-]", "_", raw).lstrip("-./0123456789")[:100]
        if not name:
            raise self.error(path, f"parameter name {raw!r} has no letters; rename it")
        if name != raw:
            self.note(path, f"{raw!r} is not a valid scalehp param name; renamed {name!r} (the command is unchanged)")
        return name

    def param(self, kind: Any, feasible: dict[str, Any], path: str, kind_path: str) -> Any:
        distribution = feasible.pop("distribution", None) or "uniform"
        if kind in ("categorical", "discrete"):
            values = feasible.pop("list", None)
            if not isinstance(values, list) or not values:
                raise self.error(f"{path}.list", f"a {kind} parameter needs a list of values")
            if kind == "discrete":
                values = [self.number(v, f"{path}.list.{j}") for j, v in enumerate(values)]
            if distribution != "uniform":
                self.note(f"{path}.distribution", f"{distribution!r} does not apply to a {kind} list; left out")
            self.rest(feasible, path)
            return {"choice": values}
        if kind not in ("double", "int"):
            raise self.error(kind_path, f"expected double, int, categorical or discrete, got {kind!r}")
        integer = kind == "int"
        low = self.number(feasible.pop("min", None), f"{path}.min", integer=integer)
        high = self.number(feasible.pop("max", None), f"{path}.max", integer=integer)
        step = feasible.pop("step", None)
        step = None if step is None else self.number(step, f"{path}.step", integer=integer)
        if step is not None and step <= 0:
            raise self.error(f"{path}.step", f"step must be > 0, got {step}")
        self.rest(feasible, path)
        key = "int" if integer else "float"
        if low == high:
            return {"constant": low}
        if distribution == "uniform":
            if step is not None and not (integer and step == 1):  # Katib counts min, min + step, ...
                return self.counted_from_low(low, high, step, f"{path}.step", integer=integer, tool="Katib")
            return {key: [low, high]}
        if distribution == "logUniform":
            if step is not None and not (integer and step == 1):
                if integer:
                    raise self.error(f"{path}.step", "scalehp cannot combine a log scale with an int step other than 1")
                return self.counted_from_low(low, high, step, f"{path}.step", integer=False, log=True, tool="Katib")
            return {key: [low, high], "log": True}
        if distribution in ("normal", "logNormal"):
            if distribution == "normal":
                mean, sd = tidy((low + high) / 2), tidy((high - low) / 6)
                param = {"normal": [mean, sd]}
                what = f"Normal(mean {mean:g}, sd {sd:g})"
            else:
                if low <= 0:
                    raise self.error(f"{path}.min", f"logNormal needs min > 0, got {low}")
                mu = tidy((math.log(low) + math.log(high)) / 2)
                sigma = tidy((math.log(high) - math.log(low)) / 6)
                param = {"lognormal": [mu, sigma]}
                what = f"ln(value) ~ Normal({mu:g}, {sigma:g})"
            if step is not None or integer:
                param["step"] = step if step is not None else 1
            self.note(
                f"{path}.distribution",
                f"{distribution}: Katib reads min/max as the +-3 sigma range, so this is {what}; "
                "values outside min/max can be drawn, as in Katib"
                + (" (whole numbers, passed as floats such as 3.0)" if integer else ""),
            )
            return param
        raise self.error(
            f"{path}.distribution", f"expected uniform, logUniform, normal or logNormal, got {distribution!r}"
        )

    def grid_space(self, space: dict[str, Any]) -> dict[str, Any]:
        """Katib's grid enumerates ints, doubles with a step, and lists: every param as grid values."""
        out: dict[str, Any] = {}
        for name, param in space.items():
            path = self._param_path(name)
            if "choice" in param:
                out[name] = {"grid": param["choice"]}
            elif "int" in param and not param.get("log"):
                low, high = param["int"]
                step = param.get("step", 1)
                self.check_grid((high - low) // step + 1, f"{path}.feasibleSpace")
                out[name] = {"grid": list(range(low, high + 1, step))}
            elif "float" in param and param.get("step") and not param.get("log"):
                low, high = param["float"]
                step = param["step"]
                self.check_grid(span(low, high, step), f"{path}.feasibleSpace")
                n = int(math.floor((high - low) / step + 1e-9))
                out[name] = {"grid": [tidy(low + k * step) for k in range(n + 1)]}
            elif "constant" in param:
                out[name] = param
            else:
                raise self.error(path, "Katib's grid needs a uniform int, a double with feasibleSpace.step, or a list")
            if "grid" in out[name]:
                self.grid_param(len(out[name]["grid"]), path)
        return out

    def _param_path(self, name: str) -> str:
        return self.param_paths.get(name, "spec.parameters")

    # -- algorithm -------------------------------------------------------------------------------

    def algorithm(self, algorithm: dict[str, Any], space: dict[str, Any], renamed: dict[str, str]) -> tuple:
        name = algorithm.pop("algorithmName", None)
        path = "spec.algorithm"
        settings = self.settings(algorithm.pop("algorithmSettings", None), f"{path}.algorithmSettings")
        self.rest(algorithm, path)
        search: dict[str, Any] = {}
        scheduler = None
        max_steps = None
        resource = None
        seed = settings.pop("random_state", None)
        if seed is not None:
            search["_seed"] = self.number(seed[0], seed[1], integer=True)

        def setting_notes(why: str) -> None:
            for key, (_value, where) in settings.items():
                self.note(where, f"{key}: {why}")

        if name == "random":
            search["algorithm"] = "random"
            setting_notes("no scalehp equivalent; left out")
        elif name == "grid":
            search["algorithm"] = "grid"
            setting_notes("no scalehp equivalent; left out")
        elif name == "tpe":
            search["algorithm"] = "hyperopt"  # Katib's tpe is hyperopt's TPE
            setting_notes("scalehp runs hyperopt's TPE with its default settings; left out")
        elif name == "bayesianoptimization":
            problem = searcher_problem(space, "optuna", "tpe")
            if problem is None:
                search.update(algorithm="optuna", sampler="gp")
                self.note(
                    f"{path}.algorithmName",
                    "bayesianoptimization (scikit-optimize's Gaussian process) -> optuna's Gaussian-process sampler "
                    "(sampler gp): the same kind of model, optuna's kernel and acquisition",
                )
                why = "a scikit-optimize setting; optuna's GP sampler runs its defaults, left out"
            else:
                search["algorithm"] = "hyperopt"
                self.note(
                    f"{path}.algorithmName",
                    f"bayesianoptimization (scikit-optimize, a Gaussian process): optuna's GP sampler cannot search "
                    f"this space ({problem}); the closest model-based searcher is hyperopt's TPE",
                )
                why = "a scikit-optimize setting; TPE has no such option, left out"
            points = settings.pop("n_initial_points", None)
            if points is not None:
                search["initial_points"] = self.count(points[0], points[1])
            setting_notes(why)
        elif name == "multivariate-tpe":
            problem = searcher_problem(space, "optuna", "tpe")
            points = settings.pop("n_startup_trials", None)
            if points is not None:
                search["initial_points"] = self.count(points[0], points[1])
            if problem is None:
                search.update(algorithm="optuna", sampler="tpe")
                self.note(
                    f"{path}.algorithmName",
                    "multivariate-tpe: scalehp runs optuna's TPE, which models each param on its own",
                )
            else:
                search["algorithm"] = "hyperopt"
                self.note(
                    f"{path}.algorithmName", f"multivariate-tpe: hyperopt's TPE, since optuna cannot search {problem}"
                )
            setting_notes("scalehp runs TPE with its default settings; left out")
        elif name == "cmaes":
            problem = searcher_problem(space, "optuna", "tpe")
            if problem is None and searcher_problem(space, "optuna", "cmaes") is None:
                search.update(algorithm="optuna", sampler="cmaes")
            elif problem is None:
                search.update(algorithm="optuna", sampler="tpe")
                self.note(f"{path}.algorithmName", "cmaes searches numbers only; the space has choices: optuna TPE")
            else:
                search["algorithm"] = "hyperopt"
                self.note(f"{path}.algorithmName", f"cmaes: hyperopt's TPE, since optuna cannot search {problem}")
            setting_notes("scalehp runs CMA-ES with optuna's defaults; left out")
        elif name == "sobol":
            search["algorithm"] = "random"
            self.note(
                f"{path}.algorithmName",
                "sobol (a quasi-random sequence) has no scalehp equivalent; the closest is random search",
            )
            setting_notes("no scalehp equivalent; left out")
        elif name == "hyperband":
            search["algorithm"] = "random"
            eta_raw = settings.pop("eta", ("3", path))
            r_l = settings.pop("r_l", None)
            resource_name = settings.pop("resource_name", None)
            if r_l is None:
                raise self.error(f"{path}.algorithmSettings", "Katib's hyperband needs r_l (the maximum budget)")
            max_steps = self.count(r_l[0], r_l[1])
            eta = self.eta(eta_raw[0], eta_raw[1], max_steps)
            options = asha_from_hyperband(max_steps, eta)
            scheduler = {"asha": options}
            katib = _katib_brackets(max_steps, eta)
            ours = bracket_steps(AshaSettings(max_steps=max_steps, **options))
            same = "with the same brackets" if katib == ours else (
                f"rungs at {_listed(ours)} per bracket, where Katib's brackets run {_listed(katib)}: Katib rounds "
                "each bracket's r_l / eta**s down on its own, one geometric list cannot hold that"
            )
            self.note(
                f"{path}.algorithmName",
                f"hyperband runs as scalehp's asha (asynchronous successive halving, {same}): "
                f"a command trial cannot be paused and resumed; budget.max_steps is r_l = {max_steps}",
            )
            if resource_name is not None:
                katib = resource_name[0]
                if not isinstance(katib, str) or katib not in renamed:
                    raise self.error(resource_name[1], f"resource_name {katib!r} is not a parameter")
                resource = (renamed[katib], max_steps, resource_name[1])
            setting_notes("no scalehp equivalent; left out")
        elif name == "pbt":
            raise self.error(
                f"{path}.algorithmName",
                "pbt needs trials that save and restore checkpoints, which a command trial cannot; write a Python "
                "trainable and use scheduler pbt, or choose another algorithm",
            )
        elif name in ("enas", "darts"):
            raise self.error(
                f"{path}.algorithmName", f"{name} is neural architecture search; scalehp has no equivalent"
            )
        else:
            raise self.error(f"{path}.algorithmName", f"unknown Katib algorithm {name!r}")
        return search, scheduler, max_steps, resource

    def settings(self, raw: Any, path: str) -> dict[str, tuple[Any, str]]:
        """``algorithmSettings`` as name -> (value, key path)."""
        out: dict[str, tuple[Any, str]] = {}
        for i, item in enumerate(self.items(raw, path)):
            entry = self.section(item, f"{path}.{i}")
            key = entry.get("name")
            if not isinstance(key, str):
                raise self.error(f"{path}.{i}.name", "every setting needs a name")
            out[key] = (entry.get("value"), f"{path}.{i}")
        return out

    def early_stopping(self, early: dict[str, Any]) -> dict[str, Any]:
        path = "spec.earlyStopping"
        name = early.pop("algorithmName", None)
        settings = self.settings(early.pop("algorithmSettings", None), f"{path}.algorithmSettings")
        self.rest(early, path)
        if name != "medianstop":
            raise self.error(
                f"{path}.algorithmName", f"unknown early stopping algorithm {name!r} (Katib has medianstop)"
            )
        values = {}
        for key, default in _MEDIAN_DEFAULTS.items():
            raw = settings.pop(key, None)
            values[key] = default if raw is None else self.count(raw[0], raw[1], minimum=0)
        for key, (_value, where) in settings.items():
            self.note(where, f"{key}: no scalehp equivalent; left out")
        self.note(
            f"{path}.algorithmName",
            "medianstop -> median_stopping, the closest rule, not the same: Katib stops a trial whose value from its "
            "start_step-th report on is worse than the mean of the succeeded trials' averages over their first "
            "start_step reports (once min_trials_required trials have succeeded); scalehp (Ray's rule) stops a trial "
            "whose best value is worse than the median of the running means of the other trials that reached the "
            "same step, running or done (once min_samples of them have), so it can stop trials before any has "
            "succeeded",
        )
        return {
            "median_stopping": {
                "grace_steps": max(1, values["start_step"]),
                "min_samples": max(1, values["min_trials_required"]),
            }
        }

    # -- the trial -------------------------------------------------------------------------------

    def trial_template(self, template: dict[str, Any], renamed: dict[str, str]) -> tuple[dict, dict]:
        path = "spec.trialTemplate"
        if template.get("configMap") is not None:
            raise self.error(
                f"{path}.configMap",
                "the trial template is in a Kubernetes ConfigMap; "
                "copy it into trialTemplate.trialSpec and import again",
            )
        placeholders = self.trial_parameters(template.pop("trialParameters", None), renamed)
        trial_spec = self.section(template.pop("trialSpec", None), f"{path}.trialSpec", required=True)
        primary = template.pop("primaryContainerName", None)
        containers = list(_containers(trial_spec, f"{path}.trialSpec"))
        if not containers:
            raise self.error(f"{path}.trialSpec", "no container found in the trial spec")
        if primary is None:
            if len(containers) > 1:
                raise self.error(path, "several containers and no primaryContainerName: name the training container")
            container, where = containers[0]
        else:
            found = [(c, w) for c, w in containers if c.get("name") == primary]
            if not found:
                raise self.error(f"{path}.primaryContainerName", f"no container named {primary!r} in the trial spec")
            container, where = found[0]
        kind = trial_spec.get("kind")
        if kind not in (None, "Job"):
            self.note(
                f"{path}.trialSpec.kind",
                f"{kind}: scalehp runs the primary container's command once per trial, not a distributed job",
            )
        elif trial_spec.get("apiVersion") not in (None, "batch/v1"):
            self.note(f"{path}.trialSpec.apiVersion", f"read as a batch/v1 Job (the file says {trial_spec.get('apiVersion')!r})")
        for policy, at in _restart_policies(trial_spec, f"{path}.trialSpec"):
            if policy == "OnFailure":
                self.note(
                    at,
                    "OnFailure: Kubernetes restarts a failed container (up to the Job's backoffLimit); scalehp starts "
                    "a failed trial again failure.max_retries times (0 unless set)",
                )
            elif policy != "Never":
                raise self.error(at, f"a Job's pods restart Never or OnFailure, got {policy!r}")
        for key in ("retain", "successCondition", "failureCondition", "primaryPodLabels"):
            if template.pop(key, None) is not None:
                self.note(f"{path}.{key}", "Kubernetes trial bookkeeping; scalehp watches the command's exit status")
        self.rest(template, path)
        return self.container(dict(container), where, placeholders)

    def trial_parameters(self, raw: Any, renamed: dict[str, str]) -> dict[str, str]:
        """trialParameters name -> the text that replaces ``${trialParameters.<name>}``."""
        out: dict[str, str] = {}
        for i, item in enumerate(self.items(raw, "spec.trialTemplate.trialParameters")):
            path = f"spec.trialTemplate.trialParameters.{i}"
            entry = self.section(item, path)
            name = entry.get("name")
            reference = entry.get("reference")
            if not isinstance(name, str) or not isinstance(reference, str):
                raise self.error(path, "every trial parameter needs a name and a reference")
            if reference in renamed:
                out[name] = "${" + renamed[reference] + "}"
            elif reference == "${trialSpec.Name}":
                out[name] = "${trial_id}"
                self.note(f"{path}.reference", "the Trial's name becomes scalehp's trial id")
            elif reference.startswith("${trialSpec."):
                raise self.error(f"{path}.reference", f"{reference}: Kubernetes metadata has no scalehp equivalent")
            else:
                raise self.error(f"{path}.reference", f"{reference!r} is not a parameter of spec.parameters")
        return out

    def container(self, container: dict[str, Any], path: str, placeholders: dict[str, str]) -> tuple[dict, dict]:
        words = [
            *self.items(container.pop("command", None), f"{path}.command"),
            *self.items(container.pop("args", None), f"{path}.args"),
        ]
        if not words:
            raise self.error(
                path, "the container has no command or args (it runs its image's entrypoint); write the command out"
            )
        run = [self.fill(str(w), placeholders, f"{path}.command") for w in words]
        run = self.python_first(run, f"{path}.command")
        command: dict[str, Any] = {"run": run}
        env = {}
        for i, item in enumerate(self.items(container.pop("env", None), f"{path}.env")):
            entry = self.section(item, f"{path}.env.{i}")
            key = entry.get("name")
            if "value" not in entry:
                self.note(f"{path}.env.{i}", f"{key}: a value from a secret, config map or field; left out")
                continue
            value = str(entry["value"])
            if _TRIAL_PARAM.search(value):
                raise self.error(
                    f"{path}.env.{i}",
                    f"{key} carries a trial parameter; scalehp passes params as arguments: move it to the command",
                )
            env[str(key)] = value
        if env:
            command["env"] = env
        resources = self.resources(self.section(container.pop("resources", None), f"{path}.resources"), path)
        container.pop("name", None)
        image = container.pop("image", None)
        if image is not None:
            self.note(
                f"{path}.image",
                f"{image}: scalehp runs the command where scalehp runs, not in a container image; "
                "paths in it are the image's",
            )
        self.rest(container, path, "a container setting with no scalehp equivalent; left out")
        return command, resources

    def fill(self, word: str, placeholders: dict[str, str], path: str) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in placeholders:
                raise self.error(path, f"${{trialParameters.{name}}} is not in trialTemplate.trialParameters")
            return placeholders[name]

        return _TRIAL_PARAM.sub(replace, word)

    def resources(self, raw: dict[str, Any], container_path: str) -> dict[str, Any]:
        path = f"{container_path}.resources"
        requests = self.section(raw.pop("requests", None), f"{path}.requests")
        limits = self.section(raw.pop("limits", None), f"{path}.limits")
        self.rest(raw, path)
        out: dict[str, Any] = {}
        # Kubernetes schedules by requests; a limit alone is also the request
        for key in sorted(set(requests) | set(limits)):
            source_path = f"{path}.requests.{key}" if key in requests else f"{path}.limits.{key}"
            value = requests.get(key, limits.get(key))
            if key == "cpu":
                out["cpu"] = self.cpu(value, source_path)
            elif key in _GPU_KEYS:
                out["gpu"] = self.number(value, source_path)
            elif key == "memory":
                self.note(source_path, f"memory {value}: scalehp does not reserve memory per trial; left out")
            else:
                self.note(source_path, f"{key}: no scalehp equivalent; left out")
        if "gpu" in out and "cpu" not in out:
            out["cpu"] = 1
        return out

    def cpu(self, value: Any, path: str) -> float:
        if isinstance(value, str) and value.endswith("m"):
            return self.number(value[:-1], path) / 1000
        return self.number(value, path)

    def metrics_collector(self, raw: Any, objective: str) -> str | None:
        path = "spec.metricsCollectorSpec"
        spec = self.section(raw, path)
        if not spec:
            return None
        collector = self.section(spec.pop("collector", None), f"{path}.collector")
        kind = collector.pop("kind", "StdOut")
        if kind not in ("StdOut",):
            where = {
                "File": "writes its metrics to a file",
                "TensorFlowEvent": "writes TensorFlow event files",
                "PrometheusMetric": "serves Prometheus metrics",
                "Custom": "has a custom collector",
                "Push": "pushes its metrics with katib.report_metrics",
                "None": "collects no metrics",
            }.get(kind if isinstance(kind, str) else "", f"uses collector {shown(kind)}")
            self.note(
                f"{path}.collector.kind",
                f"the trial {where}; scalehp reads metrics from the command's output: print {objective}=<value> lines",
            )
        collector.pop("customCollector", None)
        self.rest(collector, f"{path}.collector")
        source = self.section(spec.pop("source", None), f"{path}.source")
        self.rest(spec, path)
        filters = self.section(source.pop("filter", None), f"{path}.source.filter")
        formats = filters.pop("metricsFormat", None) or []
        self.rest(filters, f"{path}.source.filter")
        if source.pop("fileSystemPath", None) is not None and kind == "StdOut":
            self.note(f"{path}.source.fileSystemPath", "no file to read: metrics come from the command's output")
        self.rest(source, f"{path}.source")
        if not formats or kind != "StdOut":
            return None
        fmt_path = f"{path}.source.filter.metricsFormat"
        if not isinstance(formats, list):
            raise self.error(fmt_path, "expected a list of regular expressions")
        for j in range(1, len(formats)):
            self.note(f"{fmt_path}.{j}", "scalehp reads one metric format; only the first is used")
        first = formats[0]
        if first == KATIB_DEFAULT_FORMAT:
            return None
        if not isinstance(first, str) or len(first) > 500:
            raise self.error(f"{fmt_path}.0", "expected a regular expression of at most 500 characters")
        named = named_metric_format(first)
        if named is None:
            raise self.error(f"{fmt_path}.0", "a metrics format needs two groups: the metric's name and its value")
        try:
            re.compile(named)
        except (re.error, OverflowError) as exc:  # OverflowError: a repeat count such as {99999999999}
            raise self.error(f"{fmt_path}.0", f"not a regular expression Python reads: {exc}") from None
        return named


def _katib_brackets(r_l: int, eta: float) -> list[tuple[int, ...]]:
    """The budgets Katib's Hyperband gives each bracket's rounds below ``r_l`` (its suggestion service:
    ``s_max = int(log(r_l) / log(eta))``, bracket ``s`` starts at ``int(r_l * eta**-s)`` and multiplies
    by eta each round), largest bracket first.

    Example:
        >>> _katib_brackets(60, 3.0)
        [(2, 6, 18, 54), (6, 18, 54), (20,), ()]
    """
    s_max = int(math.log(r_l) / math.log(eta)) if r_l > 1 else 0
    out = []
    for s in range(s_max, -1, -1):
        r = int(r_l * eta**-s)
        out.append(tuple(budget for i in range(s + 1) if (budget := int(r * eta**i)) < r_l))
    return out


def _listed(brackets: list[tuple[int, ...]]) -> str:
    return "; ".join(", ".join(map(str, rungs)) or "none" for rungs in brackets)


def _containers(node: Any, path: str):
    """Every container (with its key path) in a Kubernetes object: Job, TFJob, PyTorchJob, MPIJob, …"""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                if key == "containers":
                    for i, item in enumerate(value):
                        if isinstance(item, dict):
                            yield item, f"{path}.{key}.{i}"
            else:
                yield from _containers(value, join(path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _containers(item, f"{path}.{i}")


def _restart_policies(node: Any, path: str):
    """Every ``restartPolicy`` (with its key path) in a Kubernetes object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "restartPolicy":
                yield value, join(path, key)
            else:
                yield from _restart_policies(value, join(path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _restart_policies(item, f"{path}.{i}")
