"""Independent starts of a run (:attr:`.params.EMParams.starts`): the settings
of each, where each keeps its checkpoint, and the start that is kept."""

import dataclasses
from pathlib import Path

import numpy as np


def _starts(params):
    """The settings of each independent start (:attr:`EMParams.starts`)."""
    if int(params.starts) == 1:
        return [params]
    return [dataclasses.replace(params, start=s) for s in range(int(params.starts))]


def _start_checkpoint(checkpoint_dir, name, params):
    """Checkpoint path of a start (start 0: the run's own, so a one-start
    run continues as the first of several)."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / name
    if int(params.start) == 0:
        return path
    return path.with_name(f"{path.stem}_start{int(params.start) + 1}{path.suffix}")


def _best_start(states):
    """Index and state of the start with the highest log-likelihood at its
    last iteration (the first one on ties or before any iteration)."""
    lls = [st.log_likelihood[-1] if st.log_likelihood else -np.inf for st in states]
    best = int(np.argmax(np.nan_to_num(lls, nan=-np.inf)))
    return best, states[best]


def _run_label(params):
    """``"FAML"`` / ``"FA"`` in log lines, with the start when there are several."""
    mode = params.mode.upper()
    return f"{mode} start {params.start + 1}" if int(params.starts) > 1 else mode


def _go_on(states, max_iter):
    """Whether the starts iterate again: one is behind the others (a kill
    between their checkpoints), or not all have converged and the limit is
    not reached.  With one start: the run's own stopping rule."""
    its = {st.iteration for st in states}
    if len(its) > 1:
        return True
    return not all(st.converged for st in states) and its.pop() < max_iter


def _legacy_params(params):
    """Settings under which earlier versions keyed this run's checkpoint:
    independent half-sets with ``init="auto"`` started from a random split
    before 2026-12-06 (a resumed state no longer depends on the start)."""
    if (
        params.gold_standard
        and params.init == "auto"
        and params.mode == "faml"
        and int(params.n_classes) > 1
        and int(params.start) == 0
    ):
        return [dataclasses.replace(params, init="random")]
    return []
