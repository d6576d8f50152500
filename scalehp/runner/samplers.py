"""Optuna's samplers in a form Ray can pickle.

Ray pickles the search algorithm when the ``Tuner`` is built and again in every searcher
snapshot (``OptunaSearch.save`` uses plain :mod:`pickle`). Since Optuna 5.1 the genetic
samplers (``NSGAIISampler``, ``NSGAIIISampler``) hold a ``threading.Lock``, which cannot be
pickled. The classes here drop every lock when pickled and make new ones when unpickled; a
lock guards nothing across processes, so nothing is lost. Each is a module-level class so
that ``pickle`` finds it by name in any process.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class _Picklable:
    """Mixin: pickles a sampler without its locks and gives it fresh ones when unpickled."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        locks = [name for name, value in state.items() if isinstance(value, _LOCKS)]
        for name in locks:
            state[name] = _Lock(reentrant=isinstance(state[name], _LOCKS[1]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(
            {name: value.new() if isinstance(value, _Lock) else value for name, value in state.items()}
        )


class _Lock:
    """Stands for a lock in a pickled sampler."""

    def __init__(self, reentrant: bool) -> None:
        self.reentrant = reentrant

    def new(self) -> Any:
        return threading.RLock() if self.reentrant else threading.Lock()


class TPESampler(_Picklable, optuna.samplers.TPESampler):
    """``optuna.samplers.TPESampler`` that Ray can pickle."""


class CmaEsSampler(_Picklable, optuna.samplers.CmaEsSampler):
    """``optuna.samplers.CmaEsSampler`` that Ray can pickle."""


class NSGAIISampler(_Picklable, optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler`` that Ray can pickle (it holds a lock since Optuna 5.1)."""


class GPSampler(_Picklable, optuna.samplers.GPSampler):
    """``optuna.samplers.GPSampler`` (Gaussian-process Bayesian optimisation) that Ray can pickle."""


class QMCSampler(_Picklable, optuna.samplers.QMCSampler):
    """``optuna.samplers.QMCSampler`` (scrambled Sobol points) that Ray can pickle."""

