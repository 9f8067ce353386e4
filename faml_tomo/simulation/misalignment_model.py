"""Misalignment model of the tilt-series simulator (:mod:`.tiltseries`): the
per-image alignment errors and their named presets.

Per image ``i`` of ``S`` (in tilt-angle order) an error is added to the
image's X shift, Y shift (Å) and in-plane rotation (degrees, about the image
centre, counter-clockwise in (x, y))::

    d_i = p0 + p1 i + p2 |sin((i + p3) / S pi)| + p4 sin((i + p5) / S 2 pi) + N(0, p6)

The image is transformed by it (the reconstruction assumes none).  Presets,
as the misalignment paper defines them (de Isidro-Gómez et al. 2024, §2.1):
``bananas`` a constant X offset of ``m`` Å in every image (the tilt axis is
off the rotation centre: beads become arcs); ``birds`` a Y shift growing
linearly from ``-m`` to ``+m`` Å across the series; ``twisters`` a constant
in-plane rotation of ``m`` degrees (tilt-axis angle error).  An X shift that
grows linearly across the series is, to first order, only a Z displacement
of every bead (its projections are those of a moved bead): use the general
model (``x=(-m, 2m/(S-1), 0, ...)``) for it.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError

__all__ = ["MISALIGNMENT_KINDS", "MisalignmentModel", "misalignment_preset"]

MISALIGNMENT_KINDS = ("none", "bananas", "twisters", "birds")


@dataclass
class MisalignmentModel:
    """Per-image alignment error, general model of Scipion's ``misalign
    tilt-series`` (see the module docstring).

    Attributes
    ----------
    x, y : tuple of 7 float
        ``(p0, ..., p6)`` of the X and Y shift errors, in Å (``p3``, ``p5`` in
        images).
    angle : tuple of 7 float
        The same for the in-plane rotation error, in degrees.
    kind : str
        Name for the record (``none``, ``bananas``, ``twisters``, ``birds``,
        ``general``).
    magnitude : float
        Size of a preset (Å or degrees), for the record.
    """

    x: tuple = (0.0,) * 7
    y: tuple = (0.0,) * 7
    angle: tuple = (0.0,) * 7
    kind: str = "general"
    magnitude: float = 0.0

    def validate(self) -> "MisalignmentModel":
        """Raise :class:`InputError` naming the first bad parameter."""
        for name in ("x", "y", "angle"):
            p = np.asarray(getattr(self, name), float)
            if p.shape != (7,) or not np.all(np.isfinite(p)):
                raise InputError(
                    f"misalignment {name} needs 7 finite parameters p0..p6, "
                    f"got {getattr(self, name)}"
                )
            if p[6] < 0:
                raise InputError(f"misalignment {name}: p6 (noise SD) must be >= 0, got {p[6]}")
        return self

    def evaluate(
        self, n_images: int, rng: np.random.Generator | int | None = None
    ) -> tuple[np.ndarray, ...]:
        """Errors of each image.

        Parameters
        ----------
        n_images : int
            ``S``.
        rng : numpy.random.Generator or int, optional
            For the ``N(0, p6)`` terms.

        Returns
        -------
        dx, dy : numpy.ndarray, shape (S,)
            Shift errors in Å.
        dangle : numpy.ndarray, shape (S,)
            Rotation errors in degrees.
        """
        self.validate()
        rng = np.random.default_rng(rng)
        i = np.arange(n_images, dtype=float)
        s = float(n_images)
        out = []
        for name in ("x", "y", "angle"):
            p = np.asarray(getattr(self, name), float)
            d = (
                p[0]
                + p[1] * i
                + p[2] * np.abs(np.sin((i + p[3]) / s * np.pi))
                + p[4] * np.sin((i + p[5]) / s * 2 * np.pi)
            )
            if p[6] > 0:
                d = d + rng.normal(0, p[6], n_images)
            out.append(d)
        return tuple(out)

    def as_dict(self) -> dict:
        """The fields as a plain dict (for the record)."""
        return asdict(self)


def misalignment_preset(kind: str, magnitude: float, n_images: int) -> MisalignmentModel:
    """A :class:`MisalignmentModel` for a named kind.

    Parameters
    ----------
    kind : {"none", "bananas", "twisters", "birds"}
    magnitude : float
        Bananas: the constant X offset in Å; birds: the largest Y shift in Å
        (linear from ``-m`` at the first image to ``+m`` at the last);
        twisters: the in-plane rotation in degrees.
    n_images : int

    Returns
    -------
    MisalignmentModel
    """
    if kind not in MISALIGNMENT_KINDS:
        raise InputError(
            f"misalignment kind must be one of {', '.join(MISALIGNMENT_KINDS)}, got {kind!r}"
        )
    if not np.isfinite(magnitude):
        raise InputError(f"misalignment magnitude must be finite, got {magnitude}")
    zero = (0.0,) * 7
    if kind == "none" or magnitude == 0:
        return MisalignmentModel(kind=kind, magnitude=float(magnitude))
    if n_images < 2:
        raise InputError("a misalignment preset needs at least 2 images")
    linear = (-magnitude, 2 * magnitude / (n_images - 1), 0, 0, 0, 0, 0)
    if kind == "bananas":
        return MisalignmentModel(
            x=(magnitude, 0, 0, 0, 0, 0, 0),
            y=zero,
            angle=zero,
            kind=kind,
            magnitude=float(magnitude),
        )
    if kind == "birds":
        return MisalignmentModel(
            x=zero, y=linear, angle=zero, kind=kind, magnitude=float(magnitude)
        )
    return MisalignmentModel(
        x=zero, y=zero, angle=(magnitude, 0, 0, 0, 0, 0, 0), kind=kind, magnitude=float(magnitude)
    )
