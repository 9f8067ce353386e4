"""Summary and methods text of a FAML classification run, from its
``history.json`` (:func:`faml_tomo.averaging.outputs.read_history`) and the
protocol's settings."""

from collections.abc import Mapping
from typing import Any

from ..constants import CITE_FAML

__all__ = ["summary_lines", "resolution_lines", "methods_text"]


def summary_lines(
    hist: Mapping[str, Any],
    *,
    mode: str,
    max_iterations: int,
    finished: bool,
    voxel_size: float,
    focused: bool,
    symmetry: str,
    use_references: bool,
    c1_iterations: int,
    curves: Mapping[str, Any] | None = None,
) -> list[str]:
    """The protocol's summary: run state, class sizes, likelihood,
    resolution, focus, symmetry, re-seeded classes and warnings.

    Parameters
    ----------
    hist : history of the run
    mode : "FAML" or "FA"
    max_iterations : the form's iterations
    finished : whether the outputs exist (a run short of ``max_iterations``
        without them is still running)
    voxel_size : Å per voxel of the subtomograms
    focused : whether a classification mask applies
    symmetry : point group as given ("C1": none)
    use_references : whether the run started from references
    c1_iterations : iterations before the symmetry is imposed (without
        references)
    curves : the last iteration's FSC curves (:func:`resolution_lines`)
    """
    n_it = hist["iterations"]
    sizes = hist["class_sizes"][-1] or []
    state = (
        "converged"
        if hist["converged"]
        else "running"
        if n_it < max_iterations and not finished
        else "iteration limit reached"
    )
    out = [
        f"{mode}: {hist['n_particles']} subtomograms, "
        f"{hist['n_classes']} classes, {n_it} of {max_iterations} "
        f"iterations ({state}).",
        "Class sizes: "
        + ", ".join(f"class {k + 1}: {s}" for k, s in enumerate(sizes))
        + " subtomograms",
        f"Final log-likelihood: {hist['log_likelihood'][-1]:.6g}",
    ]
    starts = hist.get("start_log_likelihoods")
    if starts:
        out.append(
            f"Independent starts: start {hist['start'] + 1} of {len(starts)} kept "
            f"(final log-likelihoods {_lls(starts)})."
        )
    out += resolution_lines(hist, voxel_size, curves)
    if focused:
        out.append(
            "Focused classification: classes told apart inside the classification mask only."
        )
    if symmetry.upper() != "C1":
        when = (
            "from the start (references)"
            if use_references
            else f"from iteration {c1_iterations + 1}"
        )
        out.append(f"Symmetry {symmetry} imposed {when}.")
    for e in hist.get("reseeded", []):
        out.append(
            f"Class {e['class']} lost its subtomograms and was re-seeded before "
            f"iteration {e['iteration']} from {e['subtomograms']} of class "
            f"{e['from_class']}."
        )
    empty = [k + 1 for k, s in enumerate(sizes) if s == 0]
    if empty:
        out.append(f"Warning: empty classes {empty}")
    if hist.get("coverage_gaps"):
        from ..averaging.coverage import gap_message

        gaps = gap_message(hist["coverage_gaps"])
        if gaps:
            out.append(f"Warning: {gaps}.")
    return out


def resolution_lines(
    hist: Mapping[str, Any], voxel_size: float, curves: Mapping[str, Any] | None = None
) -> list[str]:
    """Resolution from the last iteration's FSC, saying which kind it is.

    With ``curves`` (the last iteration's ``fsc``, ``fsc_shells`` and, for
    independent half-sets, ``fsc_classes``) the resolution is where the
    plotted curve crosses the threshold (interpolated between shells, as the
    viewer shows it); without, the last shell above it (``history.json``).
    """
    from ..averaging.outputs import crossing_shell, resolution_text

    sr = voxel_size
    n = hist.get("box")
    if not (hist.get("fsc_radius") and n and sr):
        return []
    shells = None if curves is None else curves.get("fsc_shells")
    if hist.get("gold_standard") and hist.get("class_fsc_radius"):
        r_join = hist.get("join_radius") or 0
        radii = list(hist["class_fsc_radius"])
        texts = [f"{n * sr / r:.1f} Å" if r > 0 else "" for r in radii]
        if shells is not None and curves is not None and curves.get("fsc_classes") is not None:
            radii = [crossing_shell(shells, c, 0.143) or 0.0 for c in curves["fsc_classes"]]
            texts = [
                resolution_text(r, n, sr, c, 0.143) if r > 0 else ""
                for r, c in zip(radii, curves["fsc_classes"])
            ]
        parts = [
            f"class {k + 1}: {text}"
            if r > r_join + 1
            else f"class {k + 1}: not beyond the shared {n * sr / r_join:.0f} Å"
            for k, (r, text) in enumerate(zip(radii, texts))
        ]
        return ["Gold-standard resolution (independent half-sets, FSC 0.143): " + ", ".join(parts)]
    r = hist["fsc_radius"][-1]
    text = f"{n * sr / r:.1f} Å" if r > 0 else ""
    if shells is not None and curves is not None and curves.get("fsc") is not None:
        r = crossing_shell(shells, curves["fsc"], 0.5) or 0.0
        text = resolution_text(r, n, sr, curves["fsc"], 0.5) if r > 0 else ""
    if r <= 0:
        return []
    return [
        f"Even/odd FSC 0.5 resolution: {text} (optimistic: the halves "
        f"share the reference; use independent half-sets for a resolution)"
    ]


def methods_text(
    hist: Mapping[str, Any],
    *,
    mode: str,
    voxel_size: float,
    lmax: int,
    max_candidates: int,
    voronoi_samples: int,
    alpha_trd: float,
    seed: int,
) -> str:
    """The protocol's methods paragraph (what was run, with the citation)."""
    k = hist["n_classes"]
    what = f"classified into {k} classes and averaged" if k > 1 else "averaged"
    text = (
        f"{hist['n_particles']} subtomograms ({voxel_size:g} Å/px) "
        f"were {what} without a reference by "
        f"{'FAML' if mode == 'FAML' else 'fast alignment (FA)'} [{CITE_FAML}] as "
        f"implemented in faml_tomo: fast rotational alignment with spherical "
        f"harmonics up to degree {lmax}, at most "
        f"{max_candidates} candidate transforms per subtomogram and "
        f"class"
    )
    if mode == "FAML":
        text += f", {voronoi_samples} Voronoi samples (alpha_trd {alpha_trd:g})"
    text += (
        f", {hist['iterations']} EM iterations"
        f"{' (converged)' if hist['converged'] else ''}, random seed "
        f"{seed}."
    )
    return text


def _lls(values: list) -> str:
    """Log-likelihoods of the starts, ``–`` for a start without one."""
    return ", ".join("–" if v is None else f"{v:.6g}" for v in values)
