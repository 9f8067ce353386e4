"""Scipion protocol: gold fiducial detection in tomograms (peak high
contrast, de Isidro-Gómez et al. 2024 §2.3).  Glue only: the algorithm is in
:mod:`faml_tomo.fiducials`, imported inside the steps."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from tomo.objects import SetOfCoordinates3D, SetOfTomograms, SetOfTomoMasks
from tomo.protocols import ProtTomoBase

from ..constants import CITE_MISALIGNMENT
from . import formjob
from .fiducial_outputs import append_coordinates, append_erased, tomogram_key, tomogram_path
from .streaming import ItemStreaming

if TYPE_CHECKING:
    from ..fiducials.params import PeakHighContrastParams

logger = logging.getLogger(__name__)

OUTPUT_NAME = "Coordinates3D"
OUTPUT_ERASED = "TomogramsBeadsErased"
OUTPUT_MASKS = "BeadMasks"
Z_BORDERS = ["bead inside", "whole box inside"]
# form parameter -> FiducialJob field: the job of a form, and the form's defaults
FORM_FIELDS = {
    "fiducialSize": "bead_size_nm",
    "boxSize": "box_size",
    "zBorder": "z_border",
    "relaxedMode": "relaxed_mode",
    "relaxedModeThr": "relaxed_mode_threshold",
    "searchSmeared": "smeared_search",
    "numberSampSlices": "sampling_slices",
    "sdThr": "sd_threshold",
    "numberOfCoordinatesThr": "min_coordinates",
    "mirrorCorrelationThr": "mirror_correlation",
    "mahalanobisDistanceThr": "mahalanobis",
    "minContrast": "min_contrast",
    "eraseBeads": "erase_beads",
    "eraseMargin": "erase_margin",
}
FORM_CHOICES = {"zBorder": ("bead", "box")}


def form_default(name: str) -> object:
    """The form default of parameter ``name``: the job's (an index for
    enumerations)."""
    from ..fiducials.job import job_defaults

    return formjob.form_default(job_defaults(), FORM_FIELDS, FORM_CHOICES, name)


class ProtPeakHighContrast(ItemStreaming, EMProtocol, ProtTomoBase):
    """Locate gold fiducials (beads) in tomograms.

    Each tomogram is searched slice by slice: a moving average along Z, a
    band-pass at the bead frequency and a Laplacian make the beads dark
    outliers; round outlier objects that persist over consecutive slices
    are 3D candidates, centred on their most point-symmetric position
    (correlation with their point mirror), merged, and filtered by mirror
    correlation and by the Mahalanobis distance of their radial profile to
    the population of beads.  The output coordinates carry their mirror
    correlation as score; they feed misalignment detection or extraction.
    """

    _label = "peak high contrast"
    _devStatus = BETA
    _possibleOutputs = {
        OUTPUT_NAME: SetOfCoordinates3D,
        OUTPUT_ERASED: SetOfTomograms,
        OUTPUT_MASKS: SetOfTomoMasks,
    }
    _references = [CITE_MISALIGNMENT]

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineInputParams(form)
        self._defineModeParams(form)
        self._defineFilterParams(form)
        self._defineEraseParams(form)
        form.addParallelSection(threads=1, mpi=0)

    def _defineInputParams(self, form):
        """Tomograms, bead and box sizes, border rule."""
        form.addParam(
            "inputTomograms",
            params.PointerParam,
            pointerClass="SetOfTomograms",
            important=True,
            label="Input tomograms",
            help="Tomograms with gold fiducials (dark beads).",
        )
        form.addParam(
            "fiducialSize",
            params.FloatParam,
            default=form_default("fiducialSize"),
            label="Bead diameter (nm)",
            help="Diameter of the gold fiducials (beads), in nanometres (typically 5, 10 or 15).",
        )
        form.addParam(
            "boxSize",
            params.IntParam,
            default=form_default("boxSize"),
            label="Box size (voxels)",
            help="Box around each fiducial, in voxels of the tomogram; "
            "fiducials whose box crosses the X or Y border are "
            "dropped.  Must hold a bead.",
        )
        form.addParam(
            "zBorder",
            params.EnumParam,
            choices=Z_BORDERS,
            default=form_default("zBorder"),
            expertLevel=params.LEVEL_ADVANCED,
            display=params.EnumParam.DISPLAY_HLIST,
            label="Z border rule",
            help="bead inside (default): keep fiducials near the top and bottom "
            "of the tomogram as long as the bead (a cube of two "
            "diameters) lies inside; gold beads sit on the ice surfaces, "
            "close to the Z border of tightly reconstructed tomograms. "
            "whole box inside: the published rule, the whole box must lie "
            "inside in Z too.",
        )

    def _defineModeParams(self, form):
        """What to do when few beads pass the filters."""
        form.addParam(
            "relaxedMode",
            params.BooleanParam,
            default=form_default("relaxedMode"),
            label="Run in relaxed mode?",
            help="If fewer coordinates than the threshold below pass the "
            "mirror-correlation and Mahalanobis filters (typically "
            "strongly misaligned tomograms), keep the coordinates "
            "found before those filters.",
        )
        form.addParam(
            "relaxedModeThr",
            params.IntParam,
            default=form_default("relaxedModeThr"),
            condition="relaxedMode",
            label="Relaxed mode threshold",
            help="Minimum number of filtered coordinates below which relaxed mode applies.",
        )
        form.addParam(
            "searchSmeared",
            params.BooleanParam,
            default=form_default("searchSmeared"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Search smeared beads?",
            help="When fewer beads than the relaxed-mode threshold are found, "
            "search again for beads 1.5 and 2 times larger, then for "
            "beads split into lobes and arcs, then for beads drawn out "
            "into streaks along the tilt axis: a misaligned tilt series "
            "smears beads into shapes that are no longer round dark "
            "spots. Keep it on before misalignment detection.",
        )

    def _defineFilterParams(self, form):
        """The thresholds of the search and its quality filters (expert)."""
        form.addParam(
            "numberSampSlices",
            params.IntParam,
            default=form_default("numberSampSlices"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Number of sampling slices",
            help="Central slices whose filtered values give the mean and "
            "standard deviation of the outlier threshold.",
        )
        form.addParam(
            "sdThr",
            params.FloatParam,
            default=form_default("sdThr"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Threshold for initial coordinates (SD)",
            help="A filtered voxel is a dark outlier when it lies more "
            "than this many standard deviations below the mean.",
        )
        form.addParam(
            "numberOfCoordinatesThr",
            params.IntParam,
            default=form_default("numberOfCoordinatesThr"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Number of coordinates threshold",
            help="Minimum number of outlier voxels attracted to a 3D "
            "coordinate (lowered to half the bead volume for beads "
            "smaller than that).",
        )
        form.addParam(
            "mirrorCorrelationThr",
            params.FloatParam,
            default=form_default("mirrorCorrelationThr"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Minimum mirror correlation",
            help="Minimum correlation between the region around a "
            "fiducial (two bead diameters) and its point mirror.",
        )
        form.addParam(
            "mahalanobisDistanceThr",
            params.FloatParam,
            default=form_default("mahalanobisDistanceThr"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Mahalanobis distance threshold",
            help="Radial profiles farther than this (in standard "
            "deviations) from the population of bead profiles, and "
            "less dark, are removed.",
        )
        form.addParam(
            "minContrast",
            params.FloatParam,
            default=form_default("minContrast"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Minimum contrast (SD)",
            help="The darkest filtered voxel of a fiducial must lie this "
            "many robust standard deviations below the median: gold "
            "is far darker than protein; this keeps tomograms "
            "without gold empty.  0 disables the check.",
        )

    def _defineEraseParams(self, form):
        """The optional output of tomograms without their beads."""
        form.addParam(
            "eraseBeads",
            params.BooleanParam,
            default=form_default("eraseBeads"),
            label="Erase the beads?",
            help="Also output the tomograms with every bead found replaced by its "
            "local background and noise of the same level and grain, and the masks "
            "of the erased voxels: gold beads dominate any correlation they enter "
            "(template matching, subtomogram averaging near them). The rest of "
            "each tomogram is unchanged.",
        )
        form.addParam(
            "eraseMargin",
            params.FloatParam,
            default=form_default("eraseMargin"),
            condition="eraseBeads",
            expertLevel=params.LEVEL_ADVANCED,
            label="Erased radius (bead radii)",
            help="Radius erased around each bead centre, in bead radii: 2 covers "
            "the bead's elongation along Z by the missing wedge and a voxel of "
            "centring error; raise it when a dark halo remains.",
        )

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        # One pickStep per tomogram, then createOutputStep; an open input set
        # (streaming) gets its steps as its tomograms arrive (see .streaming).
        self._insertStreamingSteps("createOutputStep")

    def _streamInput(self):
        return self.inputTomograms.get()

    def _itemHasResult(self, item):
        from ..fiducials.results import record_path

        return record_path(self._getExtraPath(), tomogram_key(item)).exists()

    def _hasOutputs(self):
        return getattr(self, OUTPUT_NAME, None) is not None

    def _insertItemStep(self, objId):
        # no prerequisite: by default a step waits for the last one inserted,
        # which is the waiting createOutputStep for a tomogram that arrives late
        return self._insertFunctionStep(self.pickStep, objId, prerequisites=[])

    # --------------------------- STEPS functions -----------------------------
    def _job(self):
        """The :class:`~faml_tomo.fiducials.job.FiducialJob` of the form (its
        settings; the tomograms come one per step)."""
        from ..fiducials.job import FiducialJob, job_defaults

        values = formjob.form_values(self, FORM_FIELDS, FORM_CHOICES)
        if not values["smeared_search"]:
            values["smeared_scales"] = ()
        else:
            values["smeared_scales"] = job_defaults()["smeared_scales"]
        return FiducialJob(threads=max(1, int(self.numberOfThreads.get() or 1)), **values)

    def getParams(self) -> PeakHighContrastParams:
        """The compute parameters from the form."""
        return self._job().params()

    def pickStep(self, tomoId: int) -> None:
        """Search one tomogram (by its id in the input set); its record (and
        erased tomogram and mask) go to ``extra/``, published by the checks."""
        from ..fiducials import peak_high_contrast_file
        from ..fiducials.results import TomogramFiducials, write_tomogram

        ledger = self._streamLedger()
        if ledger.is_done(tomoId):  # a Continue never searches a tomogram twice
            return
        tomo = getattr(self, "_streamItems", {}).get(tomoId) or self.inputTomograms.get()[tomoId]
        key = tomogram_key(tomo)
        path = tomogram_path(tomo)
        res = peak_high_contrast_file(
            path,
            tomo.getSamplingRate(),
            self.getParams(),
            workers=max(1, int(self.numberOfThreads.get())),
        )
        record = TomogramFiducials.from_result(
            key, res, file_name=os.path.basename(path), obj_id=int(tomoId)
        )
        write_tomogram(self._getExtraPath(), record)
        if self.eraseBeads:
            from ..fiducials.job import erase_tomogram

            erase_tomogram(path, self._getExtraPath(), record, tomo.getSamplingRate(), self._job())
        self.info(
            f"{key}: {len(res)} fiducials" + (" (relaxed mode)" if res.relaxed_mode_used else "")
        )
        for w in res.warnings:
            self.warning(f"{key}: {w}")
        ledger.mark_done(tomoId)

    def createOutputStep(self) -> None:
        """Publish the tomograms not yet in the outputs and close them."""
        self._publishRemaining()

    def _publishItems(self, tomos, state):
        """Append the coordinates (and erased tomograms and masks) of the
        searched ``tomos`` to the outputs, created the first time, stored with
        stream state ``state``."""
        from ..fiducials.results import read_all, read_tomogram, write_coordinates_star

        outputs = [OUTPUT_NAME] + ([OUTPUT_ERASED, OUTPUT_MASKS] if self.eraseBeads else [])
        sets = {name: self._outputSet(name) for name in outputs}
        extra = self._getExtraPath()
        for tomo in tomos:
            append_coordinates(sets[OUTPUT_NAME], tomo, read_tomogram(extra, tomogram_key(tomo)))
            if self.eraseBeads:
                append_erased(sets[OUTPUT_ERASED], sets[OUTPUT_MASKS], tomo, extra)
        for name, out in sets.items():
            first = not hasattr(self, name)
            self._updateOutputSet(name, out, state)
            if first:
                self._defineSourceRelation(self.inputTomograms, out)
        records = read_all(extra, self._publishedKeys() + [tomogram_key(t) for t in tomos])
        if records:  # every published tomogram's fiducials in one table
            write_coordinates_star(self._getExtraPath("coordinates.star"), records)

    def _outputSet(self, name):
        """Output ``name``, opened for appending, or created."""
        out = getattr(self, name, None)
        if out is not None:
            out.enableAppend()
            return out
        tomos = self.inputTomograms.get()
        if name == OUTPUT_NAME:
            # a pointer (protocol + output name), not the set: object ids
            # differ between run databases when the workflow is scheduled
            out = self._createSetOfCoordinates3D(self.inputTomograms)
            out.setSamplingRate(tomos.getSamplingRate())
            out.setBoxSize(int(self.boxSize.get()))
            return out
        if name == OUTPUT_ERASED:
            out = SetOfTomograms.create(self._getPath(), suffix="erased")
        else:
            out = SetOfTomoMasks.create(self._getPath(), suffix="beadmasks")
        out.copyInfo(tomos)
        return out

    def _publishedKeys(self):
        """The keys of the tomograms in the outputs, in output order."""
        ids = self._streamLedger().published()
        tomos = self.inputTomograms.get()
        if not ids or tomos is None:
            return []
        byId = {t.getObjId(): tomogram_key(t) for t in tomos.iterItems()}
        return [byId[i] for i in ids if i in byId]

    # --------------------------- INFO functions ------------------------------
    def _records(self):
        """The fiducial records of the tomograms in the output, once it exists
        (None before); while it is open (streaming) the summary says so."""
        from ..fiducials.results import read_all

        tomos = self.inputTomograms.get()
        if tomos is None or getattr(self, OUTPUT_NAME, None) is None:
            return None
        # the published tomograms; runs older than streaming kept no list
        names = self._publishedKeys() or [tomogram_key(t) for t in tomos.iterItems()]
        return read_all(self._getExtraPath(), names) or None

    def _summary(self):
        records = self._records()
        if records is None:
            return ["Output not ready yet."]
        total = sum(len(r) for r in records)
        lines = [
            f"{total} fiducials ({self.fiducialSize.get():g} nm beads) in {len(records)} tomograms:"
        ]
        for r in records:
            search = r.stats.get("search")
            line = f"  {r.name}: {len(r)}"
            if r.smeared and search == "smeared":
                line += " (beads smeared into lobes or arcs: centres of the smears)"
            elif r.smeared and search == "streak":
                line += " (beads drawn out into streaks along Y: centres of the streaks)"
            elif r.smeared:
                line += f" (found as {r.bead_scale:g}x larger beads: smeared)"
            if r.relaxed_mode:
                line += " (relaxed mode: coordinates not filtered)"
            elif len(r) == 0:
                line += " (none found)"
            lines.append(line)
        if getattr(self, OUTPUT_NAME).isStreamOpen():
            lines.append("Streaming: more tomograms are searched as they arrive.")
        smeared = [r.name for r in records if r.smeared]
        if smeared:
            lines.append(
                f"Smeared beads in {len(smeared)} tomogram(s): {', '.join(smeared)} "
                f"(as a misaligned tilt series leaves them; check them with "
                f"'Detect misalignment')."
            )
        relaxed = [r.name for r in records if r.relaxed_mode]
        if relaxed:
            lines.append(
                f"Relaxed mode used for {len(relaxed)} tomogram(s): "
                f"{', '.join(relaxed)} (few coordinates passed the quality "
                f"filters: possibly misaligned)."
            )
        return lines

    def _methods(self):
        records = self._records()
        if records is None:
            return []
        total = sum(len(r) for r in records)
        return [
            f"Gold fiducials of {self.fiducialSize.get():g} nm were located in "
            f"{len(records)} tomograms with the peak-high-contrast algorithm "
            f"[{CITE_MISALIGNMENT}] (outlier threshold {self.sdThr.get():g} SD, "
            f"minimum mirror correlation {self.mirrorCorrelationThr.get():g}, "
            f"Mahalanobis threshold {self.mahalanobisDistanceThr.get():g}, relaxed "
            f"mode {'on' if self.relaxedMode.get() else 'off'}): {total} "
            f"coordinates, box {self.boxSize.get()} voxels."
        ]

    def _validate(self):
        errors = []
        tomos = self.inputTomograms.get()
        if tomos is None:
            return ["Select the input tomograms."]
        try:
            prm = self.getParams()
        except (TypeError, ValueError) as exc:
            return [f"Invalid parameter: {exc}"]
        seen = set()
        for tomo in tomos.iterItems():
            x, y, z = tomo.getDim()
            for msg in prm.problems((z, y, x), tomo.getSamplingRate()):
                if msg not in seen:
                    seen.add(msg)
                    errors.append(f"{tomogram_key(tomo)}: {msg}")
        return errors
