"""The experiment file: YAML -> validated, frozen :class:`Experiment`.

Reading is strict where PyYAML is lax: numbers such as ``1e-3`` are numbers, only
``true``/``false`` are booleans (``yes``/``no``/``on``/``off`` stay strings), duplicate
keys and alias bombs are errors, and no tag can construct a Python object. Every
error is a :class:`~scalehp.errors.SpecError` naming the file, line and key path::

    experiments/x.yaml:12: space.lr.float: log scale needs low > 0, got 0.0

The same experiment can be built in Python::

    exp = load_experiment({"name": "demo", "trainable": "mymod:train", ...})
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scalehp.defaults import RESULTS_ROOT
from scalehp.errors import SpecError
from scalehp.schedulers import (  # each scheduler's options live with the scheduler
    AshaOptions,
    FifoOptions,
    HyperbandOptions,
    MedianStoppingOptions,
    Pb2Options,
    PbtOptions,
)
from scalehp.space import KIND_MODELS, PARAM_NAME, Integer, Number, Param, check_nodes

# ---------------------------------------------------------------------------
# YAML reading

_MAX_NODES = 100_000
MAX_DEPTH = 64  # mappings and lists inside each other; a real experiment needs about 10
_NULL = re.compile(r"(?:~|null|Null|NULL|)")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
_CORE_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


class _Reader:
    """Builds plain Python data from a YAML node tree, remembering the line of every key path."""

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[tuple, int] = {}
        self.nodes = 0

    def fail(self, node: yaml.Node, path: tuple, message: str) -> SpecError:
        return SpecError(message, source=self.source, path=_dotted(path), line=node.start_mark.line + 1)

    def build(self, node: yaml.Node, path: tuple = (), active: frozenset = frozenset()) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise self.fail(node, path[:1], f"the file expands to more than {_MAX_NODES} values (YAML aliases?)")
        if id(node) in active:
            raise self.fail(node, path, "recursive YAML alias")
        if len(path) >= MAX_DEPTH and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):  # aliases inside aliases
            raise self.fail(node, path, f"nested more than {MAX_DEPTH} levels deep")
        if node.tag not in _CORE_TAGS:
            raise self.fail(node, path, f"YAML tag {node.tag!r} is not allowed")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            inner = active | {id(node)}
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(key_node, path, "YAML merge keys (<<) are not supported; write the keys out")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, path, "keys must be plain names")
                key = self.plain(key_node, path)
                if isinstance(key, float) or key is None:
                    key = key_node.value
                if key in out:
                    first = self.lines.get(path + (key,))
                    raise self.fail(key_node, path + (key,), f"duplicate key {key!r} (first on line {first})")
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,), inner)
            return out
        if isinstance(node, yaml.SequenceNode):
            inner = active | {id(node)}
            return [self.build(item, path + (i,), inner) for i, item in enumerate(node.value)]
        return self.plain(node, path)

    def plain(self, node: yaml.ScalarNode, path: tuple) -> Any:
        try:
            return self.scalar(node)
        except ValueError:  # an integer beyond Python's 4,300-digit limit for reading one
            raise self.fail(node, path, _TOO_LARGE) from None

    @staticmethod
    def scalar(node: yaml.ScalarNode) -> Any:
        text = node.value
        if node.style is not None:  # quoted or block scalar: always a string
            return text
        if _NULL.fullmatch(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        if text.lower() in _SPECIAL_FLOAT:
            return _SPECIAL_FLOAT[text.lower()]
        return text


def line_in(lines: dict[tuple, int], path: str) -> int | None:
    """The line of a dotted key path in a line map from :func:`read_yaml`, or of its closest parent.

    Keys may hold dots themselves (``space.optimizer.lr`` finds the param ``optimizer.lr``).
    """
    segments = path.split(".") if path else []
    best: tuple[int, int | None] = (0, None)  # (segments matched, line)

    def walk(prefix: tuple, start: int) -> None:
        nonlocal best
        if start > best[0] and prefix in lines:
            best = (start, lines[prefix])
        for end in range(start + 1, len(segments) + 1):
            key: Any = ".".join(segments[start:end])
            key = int(key) if key.isdigit() else key
            if prefix + (key,) in lines:
                walk(prefix + (key,), end)

    walk((), 0)
    return best[1]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_DEPTH` as the parser makes events.

    PyYAML composes nodes recursively and fails with RecursionError near 500 levels; the
    depth is checked on each event the composer takes, so it never goes deeper than the cap.
    """

    def __init__(self, text: str, source: str):
        super().__init__(text)
        self.source = source
        self.frames: list[list[Any]] = []  # per open mapping or list: [kind, next index or key, expecting a key?]
        self.path: list[Any] = []

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.frames.pop()
            if self.path:
                self.path.pop()
            return event
        if not isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return event
        segment: Any = None
        if self.frames:
            frame = self.frames[-1]
            if frame[0] == "seq":
                segment, frame[1] = frame[1], frame[1] + 1
            elif frame[2]:  # a key
                frame[1], frame[2] = (event.value if isinstance(event, yaml.ScalarEvent) else "?"), False
            else:
                segment, frame[2] = frame[1], True
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if self.frames:
                self.path.append(segment)
            if len(self.frames) >= MAX_DEPTH:
                line = event.start_mark.line + 1
                where = _dotted(tuple(self.path))
                raise SpecError(f"nested more than {MAX_DEPTH} levels deep", source=self.source, path=where, line=line)
            self.frames.append(["seq", 0, False] if isinstance(event, yaml.SequenceStartEvent) else ["map", None, True])
        return event


def read_yaml(text: str, source: str = "<string>") -> tuple[Any, dict[tuple, int]]:
    """Parse YAML strictly; return the data and a map of key path -> line number."""
    try:
        loader = _Loader(text, source)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {exc.problem or exc}", source=source, line=line) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        message = f"not valid YAML: character {exc.character!r} is not allowed"
        raise SpecError(message, source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {' '.join(str(exc).split())}", source=source) from None
    if node is None:
        return None, {}
    reader = _Reader(source)
    try:
        return reader.build(node), reader.lines
    except RecursionError:  # nesting built up through aliases, which the events do not show
        raise SpecError(f"nested more than {MAX_DEPTH} levels deep (through YAML aliases)", source=source) from None


class _Flow(dict):
    """A mapping written on one line: ``{float: [0.001, 0.1], log: true}``."""


class _Dumper(yaml.SafeDumper):
    """Writes YAML that :func:`read_yaml` reads back as the same data (quotes what it would misread)."""

    def represent_str(self, data: str) -> yaml.Node:
        node = yaml.ScalarNode("tag:yaml.org,2002:str", data)  # plain style, as the reader would see it
        plain = "\n" not in data and data == data.strip() and _Reader.scalar(node) == data
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=None if plain else '"')

    def represent_flow(self, data: dict) -> yaml.Node:
        return self.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)

    def represent_list(self, data: list) -> yaml.Node:
        flat = all(not isinstance(v, (dict, list)) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(str, _Dumper.represent_str)
_Dumper.add_representer(_Flow, _Dumper.represent_flow)
_Dumper.add_representer(list, _Dumper.represent_list)
_Dumper.add_representer(tuple, _Dumper.represent_list)


def _flow_params(space: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, dict) and isinstance(param.get("choice"), dict):  # a conditional choice
            options = {o: (_flow_params(sub) if sub else sub) for o, sub in param["choice"].items()}
            out[name] = {**param, "choice": options}
        elif isinstance(param, dict) and isinstance(param.get("each"), dict):
            out[name] = {**param, "each": _flow_params(param["each"])}
        elif isinstance(param, dict) and not any(isinstance(v, dict) for v in param.values()):
            out[name] = _Flow(param)
        else:
            out[name] = param
    return out


def dump_yaml(data: dict[str, Any]) -> str:
    """An experiment (plain data) as YAML, keys in the given order, each param on one line where it fits.

    Reading the text back with :func:`read_yaml` gives the same data: strings that would
    read as numbers, booleans or null (``"1e-5"``, ``"true"``) are quoted.

    Example:
        >>> print(dump_yaml({"name": "x", "space": {"lr": {"float": [1e-4, 0.1], "log": True}}}), end="")
        name: x
        space:
          lr: {float: [0.0001, 0.1], log: true}
    """
    if isinstance(data.get("space"), dict):
        data = {**data, "space": _flow_params(data["space"])}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


# ---------------------------------------------------------------------------
# The models

# every pattern is used with fullmatch: `$` would also match before a final newline
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_TRAINABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOO_LARGE = "integer too large (more than 64 bits); write it as a float, e.g. 1.0e+30"


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid experiment name (the one rule: importers name experiments by it too)."""
    return bool(_NAME.fullmatch(value)) and ".." not in value


def _check_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(
            f"{value!r} is not a valid name: use letters, digits, '-', '_' and '.', "
            "start with a letter or digit, no '..', at most 100 characters"
        )
    return value


def _printable(value: str) -> str:
    """A name that is shown on terminals and becomes a column: no control or format characters."""
    for char in value:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise ValueError(f"{value!r} holds the control character {char!r}; use printable characters only")
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError(f"{value!r} holds a NUL byte")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"environment variable name {value!r}: use letters, digits and _, not starting with a digit")
    return value


URI_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
"""The URI schemes a results root may use: a local path (or ``file://``) and pyarrow's filesystems."""


def check_results_root(value: str) -> str:
    """Refuse a results root no run could be written under; the problem as a ValueError.

    A NUL byte or a control character, a URI scheme pyarrow has no filesystem for, a path
    component longer than 255 bytes (the limit of common filesystems), or a local path that
    is (or lies under) an existing file.
    """
    _printable(_no_nul(value))
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() not in URI_SCHEMES:
        raise ValueError(f"unknown URI scheme {scheme!r}; use a local folder or one of {', '.join(URI_SCHEMES[1:])}")
    local = not sep or scheme.lower() == "file"
    path = rest if sep else value
    if sep and not path.strip("/"):
        raise ValueError(f"{value!r} names no bucket or folder")
    for part in path.split("/"):
        if len(os.fsencode(part)) > 255:
            raise ValueError(f"a folder name in {value[:40]!r}… is {len(os.fsencode(part))} bytes long; at most 255")
    if local and path:
        probe = Path(path)
        for folder in (probe, *probe.parents):
            try:
                info = os.stat(folder)
            except (FileNotFoundError, NotADirectoryError):  # missing, or under a file: its parent says
                continue
            except OSError as exc:
                raise ValueError(f"{str(folder)!r}: {exc.strerror or exc.__class__.__name__}") from None
            if not stat.S_ISDIR(info.st_mode):
                raise ValueError(f"{str(folder)!r} is a file, not a folder")
            break
    return value


def _check_trainable(value: str) -> str:
    if not _TRAINABLE.fullmatch(value):
        raise ValueError(f"{value!r} is not 'module:function' (for example 'experiments.trainables.digits:train')")
    return value


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string like ``90s``, ``30m``, ``1h30m``, ``2d`` (the one duration
    rule: experiment files and the importers' ``10m``, ``1.5h``).

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30m, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match and any(match.groups()):
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise ValueError(f"expected a duration such as 90s, 30m or 2h, got {value!r}")


def _positive(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a positive number, got {value}")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Seconds = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metric(_Model):
    """The metric the search optimises: its name as the trainable reports it, and the mode."""

    name: Annotated[str, AfterValidator(_printable)] = Field(
        min_length=1, max_length=200, description="exactly as the trainable reports it, e.g. val/loss"
    )
    mode: Literal["min", "max"]
    goal: Number | None = Field(
        None,
        description="end the whole run once a trial reaches this value (at or below it for min, at or above "
        "for max); with several metrics, only the first may have a goal",
    )


class Budget(_Model):
    """How much to run: trials, steps per trial, and optional wall-clock limits for the run."""

    samples: Integer = Field(ge=1, le=1_000_000, description="trials to sample (per grid point)")
    max_steps: Integer = Field(ge=1, le=10_000_000, description="steps a trial runs at most")
    time_limit: Seconds | None = Field(
        None, description="wall-clock limit of the run, running trials stopped where they are: 90s, 30m, 2h or seconds"
    )
    soft_time_limit: Seconds | None = Field(
        None,
        description="no trial starts after this much of the run's time; running ones finish (NNI's "
        "maxExperimentDuration, Optuna's timeout): 90s, 30m, 2h or seconds",
    )

    @model_validator(mode="after")
    def _limits(self) -> Budget:
        if self.time_limit is not None and self.soft_time_limit is not None and self.soft_time_limit >= self.time_limit:
            raise ValueError(
                f"soft_time_limit ({self.soft_time_limit:g} s) must be below time_limit ({self.time_limit:g} s), "
                "which stops running trials; drop one of them or lower soft_time_limit"
            )
        return self


class Resources(_Model):
    """What one trial needs; fractional GPUs are allowed (``gpu: 0.25``)."""

    cpu: Number = Field(1.0, ge=0, le=1024)
    gpu: Number = Field(0.0, ge=0, le=64)
    custom: dict[Annotated[str, AfterValidator(_printable)], Annotated[Number, Field(gt=0)]] = Field(
        default_factory=dict, description="custom Ray resources, e.g. {TPU: 1}"
    )

    @model_validator(mode="after")
    def _check(self) -> Resources:
        if self.cpu == 0 and self.gpu == 0 and not self.custom:
            raise ValueError("a trial needs some resource: set cpu or gpu above 0")
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise ValueError(f"more than one GPU must be a whole number, got {self.gpu}")
        for key, amount in self.custom.items():
            if key in ("CPU", "GPU", "cpu", "gpu", "memory"):
                raise ValueError(f"custom resource {key!r}: use the cpu/gpu keys instead")
        return self


class WarmStart(_Model):
    """Earlier runs whose best trials seed the search (their configs with their known results)."""

    runs: list[Annotated[str, Field(min_length=1), AfterValidator(_no_nul)]] = Field(
        min_length=1,
        description="run folders or experiment folders (every run in them), relative to the working folder",
    )
    top: Integer = Field(
        100,
        ge=1,
        le=10_000,
        description="best trials carried over (keep it large: the model learns from bad trials too)",
    )


class Search(_Model):
    """How new configs are suggested."""

    algorithm: Literal["random", "grid", "hyperopt", "optuna"] = "random"
    sampler: Literal["tpe", "cmaes", "nsga2", "qmc", "gp"] | None = Field(
        None,
        description="optuna's sampler (default: tpe, nsga2 for several metrics; qmc: scrambled Sobol points; "
        "gp: Gaussian-process Bayesian optimisation)",
    )
    initial_points: Integer | None = Field(
        None, ge=1, description="random configs before a model-based searcher starts modelling"
    )
    warm_start: WarmStart | None = Field(None, description="seed the search with the best trials of earlier runs")


class _OneOf(_Model):
    """A choice written as exactly one key (``{asha: {...}}``, or just ``asha``); ``DEFAULT`` when absent."""

    DEFAULT: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, raw: Any) -> Any:
        if raw is None:
            return {cls.DEFAULT: {}}
        if isinstance(raw, str):
            return {raw: {}}
        if isinstance(raw, dict):
            return {k: ({} if v is None else v) for k, v in raw.items()}
        return raw

    @model_validator(mode="after")
    def _one(self) -> _OneOf:
        chosen = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(chosen) != 1:
            kind = type(self).__name__.lower()
            raise ValueError(f"choose exactly one {kind} of {', '.join(type(self).model_fields)}")
        return self

    @property
    def name(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def options(self) -> BaseModel:
        return getattr(self, self.name)


class Scheduler(_OneOf):
    """Which scheduler decides to stop trials; exactly one key, e.g. ``{asha: {grace_steps: 2}}``."""

    fifo: FifoOptions | None = None
    asha: AshaOptions | None = None
    hyperband: HyperbandOptions | None = None
    median_stopping: MedianStoppingOptions | None = None
    pbt: PbtOptions | None = None
    pb2: Pb2Options | None = None

    DEFAULT: ClassVar[str] = "fifo"


class SwarmOptions(_Model):
    """The many-short-trials runtime: configs handed to long-lived Ray workers in batches."""

    batch_size: Integer = Field(
        64,
        ge=1,
        le=100_000,
        description="configs a worker is handed at a time (larger: less driver work per config; smaller: "
        "a lost worker re-runs less)",
    )
    vectorized: bool | None = Field(  # (None, not False: an experiment without it keeps its digest)
        None,
        description="the trainable takes a list of configs and returns each one's metrics (numpy or torch over a "
        "whole batch at once): train(configs) -> [{metric: value}, ...]; one step per config (budget.max_steps 1, "
        "scheduler fifo)",
    )


class TuneOptions(_Model):
    """The default runtime: every trial a Ray Tune trial (checkpoints, pauses, PBT)."""


class Runtime(_OneOf):
    """Which runtime runs the trials; exactly one key: ``tune`` (default) or ``swarm``."""

    tune: TuneOptions | None = None
    swarm: SwarmOptions | None = None

    DEFAULT: ClassVar[str] = "tune"


class Failure(_Model):
    """What happens when a trial raises."""

    max_retries: Integer = Field(0, ge=0, le=100, description="restarts of a failing trial from its last checkpoint")
    fail_fast: bool = Field(False, description="stop the whole run at the first trial error")
    max_failed_trials: Integer | None = Field(
        None, ge=1, description="end the whole run once this many trials have failed (after their retries)"
    )


class Checkpoints(_Model):
    """Which checkpoints a trial keeps."""

    keep: Integer | None = Field(2, ge=1, description="checkpoints kept per trial (null: all)")


def _word(value: Any) -> Any:
    # a number in a command line or an environment variable is its text (`OMP_NUM_THREADS: 1`)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Word = Annotated[str, BeforeValidator(_word), AfterValidator(_no_nul)]


class Command(_Model):
    """A command line run once per trial, for programs that are not Python functions.

    ``${name}`` in an argument becomes the value of param ``name`` (an argument holding an
    inactive param of a conditional space is left out); ``${args}`` expands to
    ``--name=value`` for every param of the trial, ``${args_no_hyphens}`` to ``name=value``
    (Hydra's overrides), ``${args_no_boolean_flags}`` to ``${args}`` with booleans as bare
    flags, ``${args_json}`` to one JSON argument and ``${args_json_file}`` to a JSON file's
    path; ``${trial_id}`` and ``${python}`` (this Python) are filled in too, and ``$${`` is a
    literal ``${``. The program prints its metrics (stdout or stderr), one report per line
    that holds the experiment's metric: ``name=value`` pairs (Katib's format; ``step=N`` or
    ``epoch=N`` gives the step) or a JSON object. See :mod:`scalehp.command`.
    """

    run: str | list[Word] = Field(
        description="the command: a string split into words the way a shell splits them (quotes work; no pipes, "
        "no $VAR) or a list of words; ${name}, ${args}, ${args_no_hyphens}, ${args_no_boolean_flags}, "
        "${args_json}, ${args_json_file}, ${trial_id} and ${python} are filled in per trial"
    )
    env: dict[Annotated[str, AfterValidator(_check_env_name)], Word] = Field(
        default_factory=dict,
        description="extra environment variables (the program also gets SCALEHP_PARAMS as JSON, "
        "SCALEHP_TRIAL_ID and SCALEHP_MAX_STEPS)",
    )
    cwd: Annotated[str, AfterValidator(_no_nul)] | None = Field(
        None, description="working folder of the command, relative to where scalehp runs (default: that folder)"
    )
    metric_format: str | None = Field(
        None,
        description="a regular expression that finds one metric in an output line: groups (?P<name>...) and "
        "(?P<value>...), or two plain groups, name first, as Katib's metricsFormat (default: name=value pairs)",
    )
    client: Literal["wandb", "nni"] | None = Field(
        None,
        description="the tuner client library the program uses: a stand-in of it (scalehp.clients) goes first on "
        "its PYTHONPATH, hands it the trial's params (wandb.config, nni.get_next_parameter()) and turns what it "
        "logs into reports, so a W&B sweep program or an NNI trial runs unchanged; nothing is sent anywhere",
    )
    step: Annotated[str, AfterValidator(_no_nul)] | None = Field(
        None,
        description="what in an output line is the trial's step: a field name (epoch: 'epoch=3', a JSON key, "
        "or a metric_format pair) or a regular expression with one group ('Train Epoch: (\\d+)'); a step is "
        "reported when a line names a later one or the program ends, with the last value of each metric "
        "printed meanwhile (default: step=N or epoch=N on a metric line, else every metric line is a step)",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, raw: Any) -> Any:
        return {"run": raw} if isinstance(raw, (str, list)) else raw

    @field_validator("run")
    @classmethod
    def _not_empty(cls, run: str | list[str]) -> str | list[str]:
        if not (run.strip() if isinstance(run, str) else run):
            raise ValueError("the command is empty")
        return run

    @field_validator("metric_format")
    @classmethod
    def _pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        named = {"name", "value"} <= set(compiled.groupindex)
        if not named and compiled.groups < 2:
            raise ValueError(
                "metric_format needs the groups (?P<name>...) and (?P<value>...), or two groups: the name, then the value"
            )
        return pattern

    @field_validator("step")
    @classmethod
    def _step(cls, step: str | None) -> str | None:
        if step is None:
            return None
        if not step.strip():
            raise ValueError("give a field name (epoch) or a regular expression with one group")
        if "(" not in step:
            if not re.fullmatch(r"[A-Za-z_][\w./-]*", step):
                raise ValueError(f"{step!r} is no field name (letters, digits, _ . / -); a regular expression needs a group")
            return step
        try:
            compiled = re.compile(step)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if compiled.groups != 1:
            raise ValueError(f"a step pattern needs exactly one group (the step's number), it has {compiled.groups}")
        return step


class Experiment(_Model):
    """A validated, frozen experiment: everything needed to plan and run a tuning job."""

    version: Literal[1] = 1
    name: Name
    description: str | None = None
    trainable: Annotated[str, AfterValidator(_check_trainable)] | None = Field(
        None, description="'module:function' imported at run time (or give command)"
    )
    command: Command | None = Field(
        None, validate_default=True, description="a command line run per trial, instead of a trainable"
    )
    metric: Metric = Field(description="the metric to optimise, or a list of metrics for multi-objective search")
    metrics: tuple[Metric, ...] | None = Field(
        None, description="every metric of a multi-objective search; filled in from a list under 'metric'"
    )
    constraints: tuple[Annotated[str, AfterValidator(_printable), Field(min_length=1, max_length=200)], ...] | None = Field(
        None,
        max_length=20,
        description="metrics that must be <= 0 for a report to be feasible (Optuna's convention): only feasible "
        "reports make a trial's best, reach the goal or join the Pareto front; optuna's tpe, nsga2 and gp samplers "
        "model them",
    )
    budget: Budget
    resources: Resources = Field(default_factory=Resources)
    concurrency: Integer | None = Field(
        None, ge=1, le=100_000, description="trials running at once (default: as resources allow)"
    )
    seed: Integer | None = Field(None, ge=0, le=2**32 - 1)
    space: dict[str, Param]
    search: Search = Field(default_factory=Search)
    scheduler: Scheduler = Field(default_factory=lambda: Scheduler(fifo=FifoOptions()))
    runtime: Runtime | None = Field(
        None,
        description="tune (default: each trial a Ray Tune trial) or swarm (many short trials in batches on Ray workers)",
    )
    failure: Failure = Field(default_factory=Failure)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)
    results: Annotated[str, AfterValidator(check_results_root)] = Field(
        RESULTS_ROOT, min_length=1, description="folder (or URI) that holds every run"
    )

    _source: str = PrivateAttr("<dict>")
    _lines: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _metric_list(cls, data: Any) -> Any:
        # `metric: [a, b]` means several objectives: `metric` is the first, `metrics` all of them
        if isinstance(data, dict) and isinstance(data.get("metric"), list) and data["metric"]:
            objectives = data["metric"]
            if data.get("metrics") not in (None, objectives):
                raise ValueError("give the metrics once, as a list under 'metric'")
            data = {**data, "metric": objectives[0], "metrics": objectives}
        return data

    @field_validator("command")
    @classmethod
    def _trainable_or_command(cls, command: Command | None, info: ValidationInfo) -> Command | None:
        trainable = info.data.get("trainable")
        if command is None and trainable is None and "trainable" in info.data:
            raise ValueError("give trainable ('module:function') or command (a command line run per trial)")
        if command is not None and trainable is not None:
            raise ValueError("give trainable or command, not both")
        return command

    @model_validator(mode="after")
    def _check_metrics(self) -> Experiment:
        if self.metrics:
            if self.metrics[0] != self.metric:
                raise ValueError("give the metrics once, as a list under 'metric'")
            names = [m.name for m in self.metrics]
            if len(set(names)) != len(names):
                raise ValueError(f"metric lists a name twice: {', '.join(names)}")
        constraints = self.constraint_names
        both = sorted({m.name for m in self.objectives} & set(constraints))
        if both:
            raise ValueError(f"{both[0]!r} is an objective and a constraint: a constraint is another metric, <= 0 when met")
        if len(set(constraints)) != len(constraints):
            raise ValueError("constraints lists a metric twice")
        return self

    @property
    def runtime_name(self) -> str:
        """``tune`` (the default) or ``swarm``."""
        return "tune" if self.runtime is None else self.runtime.name

    @property
    def objectives(self) -> tuple[Metric, ...]:
        """Every metric the search optimises: ``metrics`` if given, else the one ``metric``."""
        return self.metrics or (self.metric,)

    @property
    def constraint_names(self) -> tuple[str, ...]:
        """The metrics that must be <= 0: ``constraints``, none when it is not given."""
        return self.constraints or ()

    @field_validator("space")
    @classmethod
    def _check_space(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("the search space is empty: add at least one param")
        for name in space:
            if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
                raise ValueError(f"param name {name!r}: use letters, digits, _ . / -, starting with a letter or _")
        check_nodes(space)
        return space

    @property
    def source(self) -> str:
        """The file this experiment was read from, or ``<dict>``."""
        return self._source

    def line_of(self, path: str) -> int | None:
        """The line in :attr:`source` of a dotted key path (or of its closest parent)."""
        return line_in(self._lines, path)

    def error(self, path: str, message: str) -> SpecError:
        """A :class:`SpecError` about ``path`` in this experiment, with file and line."""
        return SpecError(message, source=self.source, path=path, line=self.line_of(path))

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain data, in the file's own spelling (JSON-compatible)."""
        return json.loads(self.model_dump_json(by_alias=True, exclude_none=True))


# ---------------------------------------------------------------------------
# Loading


def _known_keys() -> dict[str, str]:
    """Every key the file may use -> where it first appears (``scheduler.pbt``, ``space.<name>``, ...)."""
    keys: dict[str, str] = {}
    stack: list[tuple[type[BaseModel], str]] = [(Experiment, ""), *((m, "space.<name>") for m in KIND_MODELS)]
    seen: set[type] = set()
    while stack:
        model, home = stack.pop(0)
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            keys.setdefault(key, home)
            annotation = field.annotation
            for candidate in getattr(annotation, "__args__", ()) + (annotation,):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    stack.append((candidate, f"{home}.{key}".lstrip(".")))
    return keys


_NOISE = {
    "bare",
    "ambiguous",
    "float",
    "int",
    "normal",
    "lognormal",
    "choice",
    "grid",
    "constant",
    "conditional",
    "count",
}


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _clean_loc(loc: tuple) -> tuple:
    out: list[Any] = []
    after_param = False
    for part in loc:
        if isinstance(part, str) and "[" in part:
            continue  # pydantic's validator/union labels
        # space.<name>.<kind-tag>.<field> (also nested: …choice.<option>.<name>, …each.<name>):
        # drop the union tag, keep the user's own keys
        if after_param and part in _NOISE:
            after_param = False
            continue
        out.append(part)
        after_param = out[0] == "space" and (
            len(out) == 2 or (len(out) >= 4 and out[-3] == "choice") or (len(out) >= 3 and out[-2] == "each")
        )
    return tuple(out)


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        if tuple(error["loc"][:-1]) == ("scheduler",):
            return f"unknown scheduler {key!r}; choose one of {', '.join(Scheduler.model_fields)}"
        known = _known_keys()
        if key in known:  # a real key, in the wrong place
            return f"unknown key {key!r} here; it belongs under {known[key] or 'the top level'}"
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    pair = {"normal": "[mean, sd]", "lognormal": "[mu, sigma]"}
    loc = error["loc"]
    if kind == "tuple_type" or (kind == "missing" and len(loc) > 1 and isinstance(loc[-1], int)):
        name = loc[-1] if kind == "tuple_type" else loc[-2]
        return f"give two numbers {pair.get(name, '[low, high]')}"
    if kind == "missing":
        return "required key is missing"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(error.get("ctx", {}).values()), "")
        return f"must be {bounds[kind]} {limit}, got {error['input']!r}"
    if kind in ("int_type", "int_parsing", "float_type", "float_parsing", "bool_type", "bool_parsing", "string_type"):
        wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string"}[
            kind.split("_")[0]
        ]
        return f"expected {wanted}, got {error['input']!r}"
    if kind in ("too_long", "too_short") and error.get("ctx", {}).get("field_type") == "Tuple":
        return f"give exactly two bounds [low, high], got {error['input']!r}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{error['input']!r} is not allowed; expected {expected}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _too_large(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _check_data(data: Any, source: str, lines: dict | None) -> None:
    """Refuse data no experiment holds, before validating it: nesting deeper than :data:`MAX_DEPTH`
    (a dict that holds itself included), more than 100,000 values, integers beyond 64 bits.

    The walk is iterative, so no input can exhaust Python's stack here.
    """

    def fail(path: tuple, message: str) -> SpecError:
        probe = path
        while probe and lines and probe not in lines:
            probe = probe[:-1]
        return SpecError(message, source=source, path=_dotted(path), line=(lines or {}).get(probe))

    stack: list[tuple[Any, tuple, int]] = [(data, (), 1)]
    seen = 0
    while stack:
        value, path, depth = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise fail(path[:1], f"the experiment holds more than {_MAX_NODES} values")
        if isinstance(value, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise fail(path, f"nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if _too_large(key):
                    raise fail(path, _TOO_LARGE)
                stack.append((item, path + (key,), depth + 1))
        elif _too_large(value):
            raise fail(path, _TOO_LARGE)


MAX_ALSO = 20
"""At most this many more problems of a file are named with the first."""


def experiment_from_data(data: Any, *, source: str = "<dict>", lines: dict | None = None) -> Experiment:
    """Validate plain data (a dict as read from YAML) into an :class:`Experiment`."""
    if not isinstance(data, dict):
        raise SpecError("an experiment must be a mapping of keys (name, trainable, metric, …)", source=source)
    _check_data(data, source, lines)
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        # a misspelt key is the cause of the "missing" error beside it: report it first
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        misspelt = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
        # a key missing beside an unknown one is (most likely) that key misspelt: one problem, not two
        errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"][:-1]) in misspelt)] or errors
        found: dict[str, SpecError] = {}  # one problem per key, in that order
        for error in errors:
            loc = _clean_loc(tuple(error["loc"]))
            if error["type"] == "missing" and loc and isinstance(loc[-1], int):
                loc = loc[:-1]  # a pair given one number: the pair is at fault
            line = None
            if lines:
                probe = loc
                while probe and probe not in lines:
                    probe = probe[:-1]
                line = lines.get(probe)
            found.setdefault(_dotted(loc), SpecError(_message(error), source=source, path=_dotted(loc), line=line))
        first, *rest = found.values()
        message = first.message
        if rest:
            message += f" (and {len(rest)} more error{'s' if len(rest) > 1 else ''})"
        raise SpecError(message, source=source, path=first.path, line=first.line, also=tuple(rest[:MAX_ALSO])) from None
    experiment._source = source
    experiment._lines = dict(lines or {})
    return experiment


MAX_FILE_BYTES = 4 * 1024 * 1024  # an experiment or imported sweep file; far above any real one


def read_text_file(path: str | Path, *, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a user-named file, read as untrusted input.

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a directory is
    refused without blocking), at most ``limit`` bytes, as UTF-8.

    Raises:
        SpecError: naming the file and what is wrong with it, never its contents.
    """
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecError("no such file", source=name) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc.__class__.__name__}", source=name) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SpecError(f"cannot read: {kind}", source=name)
        if info.st_size > limit:
            raise SpecError(f"file too large ({info.st_size} bytes; at most {limit})", source=name)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc.__class__.__name__}", source=name) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SpecError(f"file too large (over {limit} bytes)", source=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start})", source=name) from None


def load_experiment(source: str | Path | dict[str, Any]) -> Experiment:
    """Read and validate an experiment from a YAML file path or a dict.

    Raises:
        SpecError: the file is missing, not valid YAML, or not a valid experiment.
    """
    if isinstance(source, dict):
        return experiment_from_data(source)
    path = Path(source)
    text = read_text_file(path)
    data, lines = read_yaml(text, str(path))
    return experiment_from_data(data, source=str(path), lines=lines)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of experiment files, for editors (``scalehp schema``)."""
    schema = Experiment.model_json_schema(by_alias=True)
    metric = schema["properties"]["metric"]
    schema["properties"]["metric"] = {
        "anyOf": [{"$ref": "#/$defs/Metric"}, {"type": "array", "items": {"$ref": "#/$defs/Metric"}, "minItems": 1}],
        "description": metric["description"],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scalehp experiment"
    return schema
