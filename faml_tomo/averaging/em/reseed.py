"""Re-seeding classes that lost their subtomograms (``EMParams.min_class_size``)."""

import dataclasses
import logging

import numpy as np

from ..halves import combine_halves, random_halves
from .model import _hard_mean

logger = logging.getLogger(__name__)


def _starved(state, params, n_part, references):
    """Classes to re-seed before the next E-step (see ``min_class_size``):
    posterior mass below the limit, not re-seeded before; never with user
    references, for ``K = 1`` or before the first E-step (for independent
    half-sets, not before their first own E-step either: the poses of a
    consensus start were found against the shared consensus)."""
    if (
        references is not None
        or len(state.spectra) < 2
        or params.min_class_size <= 0
        or state.classes is None
        or (state.half_spectra is not None and state.iteration == 0)
    ):
        return []
    done = {int(e[1]) for e in state.reseeded}
    return [
        c
        for c in range(len(state.spectra))
        if state.alpha[c] * n_part < params.min_class_size and c not in done
    ]


def _reseed_starved(runner, state, starved, params, geom):
    """Re-seed classes that lost (almost) all their subtomograms.

    Each class in ``starved`` gets the wedge-compensated mean of the
    worst-fitting half (lowest log-likelihood) of the largest class's members
    at their best transforms; the components none of them observed keep the
    largest class's average.  Uses only the state (so a resumed run makes the
    same decision as an uninterrupted one).  Returns the new state.
    """
    n_part = runner.n_particles
    spectra, alpha = state.spectra.copy(), state.alpha.copy()
    half = half_gamma = first = None
    if state.half_spectra is not None:
        half, half_gamma = state.half_spectra.copy(), state.half_gamma.copy()
        first = random_halves(n_part, params.seed)
    classes = np.asarray(state.classes).copy()
    max_post = np.asarray(state.max_posterior, float).copy()
    events = []
    for c in starved:
        j = int(np.argmax(alpha))
        members = np.flatnonzero(classes == j)
        if j == c or len(members) < 2 * max(params.min_class_size, 1.0):
            continue  # nothing worth splitting
        take = members[np.argsort(state.logliks[members], kind="stable")[: len(members) // 2]]
        if half is None:
            spectra[c] = _hard_mean(runner, take, state, params, geom, spectra[j])
        else:
            # each half-set's new class from its own members only
            for h, side in enumerate((first, ~first)):
                sub = take[side[take]]
                half[h, c] = _hard_mean(runner, sub, state, params, geom, half[h, j])
                half_gamma[h, j] = max(half_gamma[h, j] - len(sub), 0.0)
                half_gamma[h, c] = len(sub)
            spectra = combine_halves(half, half_gamma)
        moved = len(take) / n_part
        alpha[j] = max(alpha[j] - moved, 1.0 / n_part)
        alpha[c] = moved
        alpha = alpha / alpha.sum()
        classes[take] = c
        max_post[take] = 1.0
        events.append([int(state.iteration + 1), c, j, int(len(take))])
        logger.info(
            "class %d kept %.2f subtomograms: re-seeded from the %d worst-fitting of class %d's %d",
            c + 1,
            float(state.alpha[c] * n_part),
            len(take),
            j + 1,
            len(members),
        )
    if not events:
        return state
    return dataclasses.replace(
        state,
        spectra=spectra,
        alpha=alpha,
        classes=classes,
        max_posterior=max_post,
        reseeded=state.reseeded + events,
        half_spectra=half,
        half_gamma=half_gamma,
    )
