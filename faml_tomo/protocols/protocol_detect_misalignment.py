"""Scipion protocol: misalignment detection from gold-bead coordinates
(de Isidro-Gómez et al. 2024, §2.1-2.2).

Glue only: the compute is :mod:`faml_tomo.misalignment` (boxes, networks,
decision).  TensorFlow is imported inside the steps.

Streaming: tomograms are scored as their coordinates arrive
(:mod:`.misalignment_streaming`).
"""

import logging
import os

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params

from ..constants import CITE_MISALIGNMENT, DEFAULT_MODELS_DIR, MODELS_DIR_VAR
from ..errors import InputError
from ..misalignment.decision import ALIGNED, CRITERIA, STRONG, UNCLASSIFIED, WEAK
from ..misalignment.results import RESULTS_JSON  # noqa: F401  (kept importable here)
from . import formjob
from .misalignment_outputs import OUT_SETS, OUT_SUBTOMOS, OUT_UNCLASSIFIED, add_result
from .misalignment_streaming import MisalignmentStreaming

logger = logging.getLogger(__name__)

# form parameter -> MisalignmentJob field: the job of a form, and the form's defaults
FORM_FIELDS = {
    "beadSizeNm": "bead_size_nm",
    "criterion": "criterion",
    "strongThreshold": "strong_threshold",
    "weakThreshold": "weak_threshold",
    "minBeads": "min_beads",
    "maxOutside": "max_outside",
    "batchSize": "batch_size",
}
FORM_CHOICES = {"criterion": CRITERIA}


def form_default(name: str) -> object:
    """The form default of parameter ``name``: the job's (an index for
    enumerations)."""
    from ..misalignment.job import job_defaults

    return formjob.form_default(job_defaults(), FORM_FIELDS, FORM_CHOICES, name)


def _box_name(ts, i):
    """File of the ``i``-th (0-based) bead box of tomogram ``ts``; the id is
    sanitised (a tsId may hold ``/`` or ``..``)."""
    from ..io.naming import box_name

    return box_name(ts, i)


class ProtDetectMisalignment(MisalignmentStreaming, EMProtocol):
    """Detect misaligned tomograms from their gold fiducials.

    A 32^3 box around every fiducial (resampled so the bead spans 16 voxels)
    is scored, with its sampling in tomogram pixels, by two 3D CNNs: the
    *strong* network separates strongly misaligned tomograms from the rest,
    the *weak* network aligned from weakly misaligned ones.  Each tomogram
    is classified from the mean (or the votes) of its bead scores.
    Tomograms without coordinates are reported as unclassified.  Tomograms
    are scored as their coordinates arrive (streaming).
    """

    _label = "detect misalignment"
    _devStatus = BETA
    _references = [CITE_MISALIGNMENT]
    _possibleOutputs = {
        OUT_SUBTOMOS: None,
        OUT_UNCLASSIFIED: None,
        **{v: None for v in OUT_SETS.values()},
    }

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineInputParams(form)
        form.addSection(label="Decision")
        self._defineDecisionParams(form)
        self._defineComputeParams(form)

    def _defineInputParams(self, form):
        """Coordinates, the tomograms to score, the bead size."""
        form.addParam(
            "inputCoordinates",
            params.PointerParam,
            pointerClass="SetOfCoordinates3D",
            important=True,
            label="Fiducial coordinates",
            help="Gold-bead coordinates (from the tilt-series alignment or a "
            "fiducial finder such as peak high contrast).",
        )
        form.addParam(
            "useOtherTomograms",
            params.BooleanParam,
            default=False,
            label="Use other tomograms?",
            help="Score the beads in another set of tomograms (e.g. "
            "reconstructed differently) instead of the ones the "
            "coordinates refer to. Tomograms are matched by tilt-series "
            "id; coordinates are rescaled by the sampling ratio.",
        )
        form.addParam(
            "inputTomograms",
            params.PointerParam,
            pointerClass="SetOfTomograms",
            allowsNull=True,
            condition="useOtherTomograms",
            label="Tomograms",
            help="The tomograms to score, matched to the coordinates by "
            "tilt-series id; the coordinates are scaled to their voxel size.",
        )
        form.addParam(
            "beadSizeNm",
            params.FloatParam,
            default=form_default("beadSizeNm"),
            label="Bead diameter (nm)",
            help="Gold fiducial diameter; boxes are resampled so it spans 16 voxels.",
        )

    def _defineDecisionParams(self, form):
        """How bead scores become a tomogram's label."""
        form.addParam(
            "criterion",
            params.EnumParam,
            choices=list(CRITERIA),
            default=form_default("criterion"),
            label="Criterion",
            display=params.EnumParam.DISPLAY_HLIST,
            help="mean: mean of the bead scores (recommended). votes: "
            "fraction of beads above the threshold.",
        )
        form.addParam(
            "strongThreshold",
            params.FloatParam,
            default=form_default("strongThreshold"),
            label="Strong misalignment threshold",
            help="Scores run from 0 (misaligned) to 1 (aligned). A tomogram "
            "whose aggregated score from the strong network is at or "
            "below this value is strongly misaligned (0.5 suggested).",
        )
        form.addParam(
            "weakThreshold",
            params.FloatParam,
            default=form_default("weakThreshold"),
            allowsNull=True,
            label="Weak misalignment threshold (optional)",
            help="A tomogram that is not strongly misaligned and whose "
            "aggregated score from the weak network is at or below this "
            "value is weakly misaligned (0.5 suggested). Leave empty to "
            "only separate strongly misaligned tomograms from the rest "
            "(all others go to the aligned output; sort them by their "
            "weak score).",
        )
        form.addParam(
            "minBeads",
            params.IntParam,
            default=form_default("minBeads"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Fewest usable beads",
            help="A tomogram with fewer usable beads is not judged: it goes to "
            "the unclassified output with the reason. Raise it (e.g. to 3) "
            "when single beads should not decide.",
        )
        form.addParam(
            "maxOutside",
            params.FloatParam,
            default=form_default("maxOutside"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Largest box part outside the tomogram",
            help="Boxes with a larger fraction of their voxels outside the "
            "tomogram (coordinates beyond or at the edge of the volume) are "
            "not scored: they would hold mostly padding.",
        )

    def _defineComputeParams(self, form):
        """Batch size and GPU."""
        form.addParam(
            "batchSize",
            params.IntParam,
            default=form_default("batchSize"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Batch size (boxes)",
            help="Boxes scored together by the networks; lower it if the GPU runs out of memory.",
        )
        # Scipion shows these two in the form's header ("GPU IDs")
        form.addHidden(
            params.USE_GPU,
            params.BooleanParam,
            default=False,
            label="Use GPU?",
            help="The networks are small: the CPU is usually enough.",
        )
        form.addHidden(
            params.GPU_LIST,
            params.StringParam,
            default="0",
            label="GPU id",
            help="TensorFlow GPU index (the first one is used).",
        )

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        # One scoreStep per tomogram, then createOutputStep; with an open
        # coordinate set, tomograms get their steps as they become ready.
        self._insertStreamingSteps("createOutputStep")

    def _otherTomograms(self):
        return bool(self.useOtherTomograms) and self.inputTomograms.get() is not None

    # --------------------------- helpers -------------------------------------
    def _getTomograms(self):
        if self._otherTomograms():
            return self.inputTomograms.get()
        return self.inputCoordinates.get().getPrecedents()

    @staticmethod
    def _modelsDir():
        try:
            from .. import Plugin

            return Plugin.getModelsDir()
        except Exception:  # plugin class unavailable
            return os.environ.get(MODELS_DIR_VAR) or DEFAULT_MODELS_DIR

    def _job(self):
        """The :class:`~faml_tomo.misalignment.job.MisalignmentJob` of the form
        (its settings; the tomograms and coordinates come from Scipion)."""
        from ..misalignment.job import MisalignmentJob

        values = formjob.form_values(self, FORM_FIELDS, FORM_CHOICES)
        values["weak_threshold"] = self._weakThreshold()
        gpu = self._gpu()
        return MisalignmentJob(
            models=self._modelsDir(), gpu=None if gpu is None else str(gpu), **values
        )

    def _weakThreshold(self):
        v = self.weakThreshold.get()
        return None if v is None else float(v)

    def _gpu(self):
        if not self.useGpu:
            return None
        first = str(self.gpuList.get() or "0").replace(",", " ").split()
        return int(first[0]) if first else 0

    @staticmethod
    def _tsId(tomo):
        ts = tomo.getTsId() if hasattr(tomo, "getTsId") else None
        return ts or os.path.splitext(os.path.basename(tomo.getFileName()))[0]

    def _scorer(self, job):
        """The networks, loaded once per run process."""
        if getattr(self, "_scorerCache", None) is None:
            from ..misalignment.predict import MisalignmentScorer

            self._scorerCache = MisalignmentScorer(
                job.models, gpu=job.gpu, batch_size=job.batch_size
            )
        return self._scorerCache

    def _tomogram(self, tomoId):
        return getattr(self, "_streamItems", {}).get(tomoId) or self._getTomograms()[tomoId]

    # --------------------------- STEPS functions -----------------------------
    def scoreStep(self, tomoId: int) -> None:
        """Score the beads of one tomogram (by its id in the scored set): its
        boxes and its record in the result files; published by the checks."""
        from ..io.mrc import open_mrc
        from ..misalignment.detect import score_tomogram
        from ..misalignment.results import write_boxes

        ledger = self._streamLedger()
        if ledger.is_done(tomoId):  # a Continue never scores a tomogram twice
            return
        tomo = self._tomogram(tomoId)
        ts = self._tsId(tomo)
        xyz, _ = self._coordinatesOf(tomo)
        job = self._job()
        with open_mrc(tomo.getFileName()) as (data, _vs):
            res = score_tomogram(
                ts,
                data,
                xyz,
                tomo.getSamplingRate(),
                10.0 * job.bead_size_nm,
                self._scorer(job),
                job.criterion,
                job.strong_threshold,
                job.weak_threshold,
                keep_boxes=True,
                min_beads=job.min_beads,
                max_outside=job.max_outside,
            )
        write_boxes(self._getExtraPath("boxes"), res)
        res.boxes = None  # written: do not hold the boxes in memory
        for w in res.warnings:
            logger.warning("%s: %s", ts, w)
        d = res.decision
        print(
            f"{ts}: {d.label} (strong {d.strong_score:.3f}, weak "
            f"{d.weak_score:.3f}, {d.n_beads} beads) {d.message}",
            flush=True,
        )
        add_result(self._getExtraPath(), res)
        ledger.mark_done(tomoId)

    def _results(self):
        from ..misalignment.results import read_results

        return read_results(self._getExtraPath())

    def createOutputStep(self) -> None:
        """Publish the tomograms not yet in the outputs and close them."""
        self._publishRemaining()

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        errors = []
        try:
            # the job's checks, shared with the command line (minus its file lists)
            errors += [p for p in self._job().problems() if "give " not in p]
        except (InputError, ValueError, TypeError) as exc:
            errors.append(str(exc))
        if self.useOtherTomograms and self.inputTomograms.get() is None:
            errors.append("Use other tomograms is set: select the tomograms")
        elif self.inputCoordinates.get() is not None:
            sr = self._getTomograms().getSamplingRate()
            if not (sr or 0) > 0:
                errors.append(
                    "The tomograms have no sampling rate (0 Å/px): set it on the set before scoring"
                )
        folder = self._modelsDir()
        for name in ("strong.keras", "weak.keras"):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                errors.append(
                    f"{path}: trained network not found (set {MODELS_DIR_VAR} "
                    f"or reinstall the plugin)"
                )
        if self.useGpu:
            try:
                self._gpu()
            except ValueError:
                errors.append(f"GPU id must be an integer such as 0, got {self.gpuList.get()!r}")
        return errors

    def _warnings(self):
        from ..misalignment.detect import sampling_warnings

        warns = []
        try:
            tomos = self._getTomograms()
            sr = tomos.getSamplingRate()
            warns = sampling_warnings(sr, 10.0 * self.beadSizeNm.get())
        except Exception as exc:  # inputs not ready yet
            logger.debug("no sampling warnings: %s", exc)
        return warns

    def _summary(self):
        results = self._results()
        if not results:
            return ["Not run yet."]
        labels = [r["label"] for r in results.values()]
        thr = self._weakThreshold()
        out = [
            f"{len(labels)} tomograms, {sum(r['n_beads'] for r in results.values())} "
            f"beads scored (criterion {CRITERIA[self.criterion.get()]}, strong "
            f"threshold {self.strongThreshold.get():g}, weak threshold "
            f"{'none' if thr is None else f'{thr:g}'})."
        ]
        names = {
            ALIGNED: "aligned" if thr is not None else "not strongly misaligned",
            WEAK: "weakly misaligned",
            STRONG: "strongly misaligned",
        }
        for label, attr in OUT_SETS.items():
            out.append(f"{names[label]}: {labels.count(label)} ({attr})")
        if len(results) <= 30:
            for ts, r in results.items():
                if r["label"] != UNCLASSIFIED:
                    out.append(
                        f"  {ts}: {names[r['label']]} (strong score "
                        f"{r['strong_score']:.2f}, weak score {r['weak_score']:.2f}, "
                        f"{r['n_beads']} beads, spread "
                        f"{r.get('strong_spread', float('nan')):.2f}, "
                        f"{r.get('n_disagree', 0)} disagree)"
                    )
            out.append("Scores run from 0 (misaligned) to 1 (aligned).")
        for ts, r in results.items():
            if r["label"] == UNCLASSIFIED:
                out.append(f"unclassified: {ts}: {r['message']} ({OUT_UNCLASSIFIED})")
        warns = sorted({w for r in results.values() for w in r.get("warnings", [])})
        out.extend(f"Warning: {w}" for w in warns)
        if self._streaming():
            out.append("Streaming: more tomograms are scored as their coordinates arrive.")
        return out

    def _streaming(self):
        """Whether outputs are still open (tomograms may still come)."""
        outputs = [getattr(self, n, None) for n in self._possibleOutputs]
        return any(o is not None and o.isStreamOpen() for o in outputs)

    def _methods(self):
        results = self._results()
        if not results:
            return []
        thr = self._weakThreshold()
        return [
            f"Tomogram alignment was assessed with the deep misalignment detection "
            f"of de Isidro-Gómez et al. [{CITE_MISALIGNMENT}] (faml_tomo "
            f"re-implementation trained on simulated tilt series): "
            f"{sum(r['n_beads'] for r in results.values())} fiducial boxes of 32^3 "
            f"voxels ({10 * self.beadSizeNm.get() / 16:.2f} Å/voxel, bead diameter "
            f"{self.beadSizeNm.get():g} nm) from {len(results)} tomograms were scored; "
            f"tomograms were classified by the {CRITERIA[self.criterion.get()]} score "
            f"with thresholds {self.strongThreshold.get():g} (strong) and "
            f"{'none' if thr is None else f'{thr:g}'} (weak)."
        ]
