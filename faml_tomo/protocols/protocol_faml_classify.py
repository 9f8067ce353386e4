"""Scipion protocol: reference-free subtomogram averaging and classification
by FAML (Zhao et al. 2018).

Glue only: the input set is written as a particle STAR file, the form is
turned into a :class:`~faml_tomo.averaging.job.ClassifyJob` through one table
(:data:`FORM_FIELDS`; the form's defaults are the job's), and every iteration
runs that job (:func:`faml_tomo.averaging.job.run`, in this process, or
``faml-tomo run`` under MPI through ``runJob``) on the run folder
``extra/run``, whose checkpoint makes each step continue the previous one;
the outputs are read back with :mod:`faml_tomo.averaging.outputs`.

Transforms: the compute convention is ``particle(x) = average(R^T (x - c - t)
+ c)`` (:mod:`faml_tomo.geometry`), written to ``particles.star`` as RELION
angles and origins.  The aligned subtomograms carry Scipion's matrix
``M = [[R, t], [0, 1]]^-1`` (``particle(r) = reference(M r)``, shifts in
voxels), which is also what scipion-em-reliontomo builds from those RELION
values.
"""

import logging
import os
import shlex
import sys
from pathlib import Path

import numpy as np
from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.object import Float, Integer, Pointer
from pyworkflow.protocol import params
from tomo.protocols import ProtTomoBase

from ..constants import CITE_FAML, CITE_FAST_ALIGN, CITE_ML, CITE_ROT_MATCH
from ..errors import CheckpointMismatch, InputError
from . import formjob
from .convert import _volume_path, relion_columns, relion_optics, scipion_matrix

logger = logging.getLogger(__name__)

OUT_CLASSES = "outputClasses"
OUT_AVERAGES = "outputAverages"
OUT_SUBTOMOS = "outputSubtomograms"
MODES = ("FAML", "FA")
INITS = ("random", "kmeans", "auto", "consensus")  # appended: saved projects keep theirs
# form parameter -> ClassifyJob field: the job of a form, and the form's defaults
FORM_FIELDS = {
    "numberOfClasses": "classes",
    "numberOfIterations": "iterations",
    "mode": "mode",
    "symmetry": "symmetry",
    "c1Iterations": "c1_iterations",
    "goldStandard": "gold_standard",
    "seed": "seed",
    "maxCandidates": "max_candidates",
    "angularBandwidth": "lmax",
    "voronoiSamples": "voronoi_samples",
    "alphaTrd": "alpha_trd",
    "resolution": "resolution",
    "startResolution": "start_resolution",
    "convergenceTol": "tolerance",
    "initialization": "init",
    "consensusIterations": "consensus_iterations",
    "minClassSize": "min_class_size",
    "fullBand": "full_band",
}
# enumerations: form index <-> job value
FORM_CHOICES = {"mode": tuple(m.lower() for m in MODES), "initialization": INITS}
JOB_FILE = "job_request.json"


def form_default(name):
    """The form default of parameter ``name``: the job's (an index for
    enumerations)."""
    from ..averaging.job import job_defaults

    return formjob.form_default(job_defaults(), FORM_FIELDS, FORM_CHOICES, name)


RUN_DIR = "run"
INPUT_STAR = "particles_in.star"
MIN_PER_CLASS = 20


class ProtFAMLClassify(EMProtocol, ProtTomoBase):
    """Reference-free subtomogram averaging and classification by FAML.

    Fast rotational alignment (spherical harmonics of Fourier shells, an
    SO(3) FFT) gives a few candidate rigid transforms per subtomogram and
    class; they approximate the maximum-likelihood integrals through Voronoi
    weights, and EM updates the class averages (missing wedge compensated),
    class priors, noise level and translation prior.  FA mode is the
    alignment-only comparator (each subtomogram at its single best
    transform).  Outputs: classes with their averages, the class averages,
    and the subtomograms with their best transform, class, posterior and
    log-likelihood.
    """

    _label = "FAML classify"
    _devStatus = BETA
    _references = [CITE_FAML, CITE_FAST_ALIGN, CITE_ROT_MATCH, CITE_ML]
    _possibleOutputs = {OUT_CLASSES: None, OUT_AVERAGES: None, OUT_SUBTOMOS: None}

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        self._defineInputParams(form)
        self._defineClassificationParams(form)
        self._defineSamplingParams(form)
        form.addParallelSection(threads=1, mpi=1)

    @staticmethod
    def _defineInputParams(form):
        form.addSection(label="Input")
        form.addParam(
            "inputSubtomograms",
            params.PointerParam,
            pointerClass="SetOfSubTomograms",
            important=True,
            label="Subtomograms",
            help="Cubic subtomograms of one box size (MRC files). Any "
            "previous alignment is ignored: FAML is reference-free.",
        )
        form.addParam(
            "useReferences",
            params.BooleanParam,
            default=False,
            label="Start from references?",
            help="No: the paper's initialisation (a random even split of the "
            "subtomograms into K sets). Yes: one initial average per "
            "class; the number of classes is the number of references.",
        )
        form.addParam(
            "inputReferences",
            params.PointerParam,
            pointerClass="Volume,SetOfVolumes",
            allowsNull=True,
            condition="useReferences",
            label="Initial references",
            help="A volume, a set of volumes or of average subtomograms, with "
            "the box size and sampling rate of the subtomograms.",
        )
        form.addParam(
            "classesFromReference",
            params.IntParam,
            default=1,
            condition="useReferences",
            validators=[params.Positive],
            label="Classes from a single reference",
            help="With one initial reference: the number of classes started "
            "from it (random subsets of the subtomograms at their "
            "transforms against it, as RELION starts classes from one "
            "map). 1: refine the reference. With a classification mask "
            "this is focused classification of a consensus map. Ignored "
            "when several references are given (one class each).",
        )
        form.addParam(
            "inputMask",
            params.PointerParam,
            pointerClass="VolumeMask",
            allowsNull=True,
            label="Reference mask (optional)",
            help="Real-space mask (0..1, soft edge recommended) applied to "
            "the class averages before each alignment, so that only the "
            "masked region drives alignment and classification. The "
            "output averages are not masked.",
        )
        form.addParam(
            "inputFocusMask",
            params.PointerParam,
            pointerClass="VolumeMask",
            allowsNull=True,
            condition="useReferences",
            label="Classification mask (optional)",
            help="Focused classification: a mask (0..1, soft edge) on the part "
            "where the classes should differ, e.g. a subunit that is "
            "present or absent. Each class is represented by its own "
            "average inside the mask and by the average of all classes "
            "outside it, so variation elsewhere does not split the "
            "classes; poses still come from the whole particle. In the "
            "frame of the references (e.g. made on a consensus average): "
            "start from the consensus map with 'Classes from a single "
            "reference' > 1, or from one map per class.",
        )
        form.addParam(
            "overrideTiltRange",
            params.BooleanParam,
            default=False,
            label="Override the tilt range?",
            help="No: the missing wedge of each subtomogram comes from its "
            "acquisition (minimum and maximum tilt angle). Yes: use the "
            "range below for all of them.",
        )
        line = form.addLine(
            "Tilt range (deg)",
            condition="overrideTiltRange",
            help="Tilt range about the Y axis; asymmetric ranges are allowed.",
        )
        line.addParam("tiltMin", params.FloatParam, default=-60.0, label="min")
        line.addParam("tiltMax", params.FloatParam, default=60.0, label="max")

    @staticmethod
    def _defineClassificationParams(form):
        form.addSection(label="Classification")
        form.addParam(
            "numberOfClasses",
            params.IntParam,
            default=form_default("numberOfClasses"),
            condition="not useReferences",
            validators=[params.Positive],
            label="Number of classes",
            help="K; 1 gives a single reference-free average.",
        )
        form.addParam(
            "numberOfIterations",
            params.IntParam,
            default=form_default("numberOfIterations"),
            validators=[params.Positive],
            label="Iterations (at most)",
            help="Largest number of EM iterations (the paper runs 20); the run "
            "stops earlier when converged. Each iteration is one step: "
            "'Continue' resumes after the last finished one.",
        )
        form.addParam(
            "mode",
            params.EnumParam,
            choices=list(MODES),
            default=form_default("mode"),
            display=params.EnumParam.DISPLAY_HLIST,
            label="Mode",
            help="FAML: maximum likelihood over the candidate transforms. "
            "FA: alignment only (each subtomogram at its best "
            "transform), the paper's comparator.",
        )
        form.addParam(
            "symmetry",
            params.StringParam,
            default=form_default("symmetry"),
            label="Symmetry",
            help="Point group of the particle, as in RELION and Scipion: C1 "
            "(none), Cn (n-fold axis along Z), Dn (plus a 2-fold axis "
            "along X), T, O, I (= I2, Crowther 222; also I1, I3, I4 and "
            "Scipion's I222, I222r, In25...). The averages are "
            "symmetrised and the search treats symmetry-related poses as "
            "one. Without references the first iterations run without "
            "symmetry, then each average is turned so that its symmetry "
            "axes lie on the standard ones.",
        )
        form.addParam(
            "c1Iterations",
            params.IntParam,
            default=form_default("c1Iterations"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Iterations before imposing symmetry",
            help="Without references: iterations run without symmetry before "
            "each average is turned into its symmetry frame and the "
            "symmetry imposed. Lower it for strong data, raise it when "
            "the first averages are still blurred.",
        )
        form.addParam(
            "goldStandard",
            params.BooleanParam,
            default=form_default("goldStandard"),
            label="Independent half-sets (gold standard)?",
            help="Yes: the subtomograms are split at random into two halves "
            "before the first iteration and each half is refined against "
            "its own averages (shared only up to the initial resolution), "
            "so their FSC measures signal: the resolution of each class "
            "is where it falls below 0.143. Costs no extra time; each "
            "half's averages see half the data, which can cost accuracy "
            "at very low SNR. No: one set; the FSC of even and odd "
            "subtomograms shares the reference and is optimistic (read "
            "at 0.5).",
        )

    @staticmethod
    def _defineSamplingParams(form):
        """The rest of the Classification section: seed, search and sampling."""
        form.addParam(
            "seed",
            params.IntParam,
            default=form_default("seed"),
            label="Random seed",
            help="Seeds the initial split and the Voronoi samples; the same "
            "seed gives the same result.",
        )
        form.addParam(
            "maxCandidates",
            params.IntParam,
            default=form_default("maxCandidates"),
            validators=[params.Positive],
            label="Candidates per subtomogram and class",
            help="Largest number of candidate transforms kept per "
            "subtomogram and class (local maxima of the rotational "
            "correlation).",
        )
        form.addParam(
            "angularBandwidth",
            params.IntParam,
            default=form_default("angularBandwidth"),
            label="Angular bandwidth (lmax)",
            help="Spherical-harmonic degree of the fast rotational search; the "
            "Euler grid has 2 lmax + 2 samples per angle (35: 5 deg). "
            "Between 4 and 64.",
        )
        form.addParam(
            "voronoiSamples",
            params.IntParam,
            default=form_default("voronoiSamples"),
            validators=[params.Positive],
            label="Voronoi samples",
            help="Monte-Carlo samples that estimate the Voronoi weight of each "
            "candidate transform.",
        )
        form.addParam(
            "alphaTrd",
            params.FloatParam,
            default=form_default("alphaTrd"),
            label="Translation weight (alpha_trd)",
            help="Weight of translation (per voxel) against rotation (per "
            "radian) in the transform distance of the Voronoi weights.",
        )
        form.addParam(
            "resolution",
            params.FloatParam,
            allowsNull=True,
            default=form_default("resolution"),
            label="Low-pass limit (Å, optional)",
            help="Highest resolution used for alignment and likelihood "
            "(empty: Nyquist). Helps at very low SNR.",
        )
        form.addParam(
            "startResolution",
            params.FloatParam,
            allowsNull=True,
            default=form_default("startResolution"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Initial resolution (Å, optional)",
            help="Frequency marching starts at this resolution and widens with "
            "the half-set FSC (empty: 8 voxels, i.e. box/8 Fourier shells). "
            "With initial references that differ only in finer detail, "
            "start at a resolution where they differ.",
        )
        form.addParam(
            "convergenceTol",
            params.FloatParam,
            default=form_default("convergenceTol"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Convergence tolerance",
            help="Converged when every class average changes by less than this "
            "fraction between iterations (and at most 0.5% of the "
            "subtomograms change class).",
        )
        form.addParam(
            "initialization",
            params.EnumParam,
            choices=list(INITS),
            default=form_default("initialization"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Initial split",
            display=params.EnumParam.DISPLAY_HLIST,
            help="Without initial references, how the classes start. consensus: "
            "align all subtomograms to one average first, then split them "
            "by the principal components of their differences to it (finds "
            "small differences at low SNR). random: the paper's random "
            "even split. kmeans: k-means of rotation-invariant shell-power "
            "descriptors (classes of different size). auto: consensus for "
            "FAML without gold-standard half-sets, random otherwise.",
        )
        form.addParam(
            "consensusIterations",
            params.IntParam,
            default=form_default("consensusIterations"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Consensus iterations",
            help="Initial split 'consensus' (or 'auto' in FAML mode): iterations "
            "of the one-class alignment before the classes are split; it "
            "stops earlier once converged. Raise it when the consensus "
            "average is still sharpening after 20.",
        )
        form.addParam(
            "minClassSize",
            params.FloatParam,
            default=form_default("minClassSize"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Re-seed classes smaller than (subtomograms)",
            help="Without initial references: a class left with fewer "
            "subtomograms than this is re-seeded once from the worst-fitting "
            "half of the largest class (small data sets otherwise lose "
            "classes for good). 0: never.",
        )
        form.addParam(
            "fullBand",
            params.BooleanParam,
            default=form_default("fullBand"),
            expertLevel=params.LEVEL_ADVANCED,
            label="Full band from the start?",
            help="Yes: the paper's algorithm, the whole band from the first "
            "iteration and no FSC weighting. No (recommended): frequency "
            "marching driven by a half-set FSC, FSC-weighted averages.",
        )

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep)
        for it in range(1, self.numberOfIterations.get() + 1):
            self._insertFunctionStep(self.iterationStep, it)
        self._insertFunctionStep(self.createOutputStep)

    # --------------------------- helpers -------------------------------------
    def _runDir(self):
        return self._getExtraPath(RUN_DIR)

    def _inputStar(self):
        return self._getExtraPath(INPUT_STAR)

    def _references_list(self):
        """Reference volumes (Scipion objects) in class order, or None."""
        if not self.useReferences or self.inputReferences.get() is None:
            return None
        ref = self.inputReferences.get()
        if hasattr(ref, "iterItems"):
            return [r.clone() for r in ref.iterItems(orderBy="id")]
        return [ref]

    def _focusMask(self):
        """The classification mask pointer when it applies (with references)."""
        if self.useReferences and self.inputFocusMask.get() is not None:
            return self.inputFocusMask
        return None

    def _numberOfClasses(self):
        refs = self._references_list()
        if refs is None:
            return int(self.numberOfClasses.get() or 0)
        return len(refs) if len(refs) > 1 else int(self.classesFromReference.get() or 1)

    def _tiltRange(self, item, fallback=None):
        """(min, max) tilt angle of a subtomogram, or None if unknown."""
        if self.overrideTiltRange:
            return float(self.tiltMin.get()), float(self.tiltMax.get())
        for acq in (item.getAcquisition() if hasattr(item, "getAcquisition") else None, fallback):
            if acq is None:
                continue
            lo, hi = acq.getAngleMin(), acq.getAngleMax()
            if lo is not None and hi is not None and hi > lo:
                return float(lo), float(hi)
        return None

    def _job(self, iteration=None):
        """The :class:`~faml_tomo.averaging.job.ClassifyJob` of the form,
        running up to ``iteration`` (default: the form's iterations), on the
        files of ``convertInputStep``."""
        from ..averaging.job import ClassifyJob

        values = formjob.form_values(self, FORM_FIELDS, FORM_CHOICES)
        values["classes"] = self._numberOfClasses()
        values["symmetry"] = str(self.symmetry.get()).strip()
        if self.fullBand:
            values["start_resolution"] = None
        if iteration is not None:
            values["iterations"] = int(iteration)
        folder = self._getExtraPath("input")
        refs = (
            sorted(f for f in os.listdir(folder) if f.startswith("reference_"))
            if os.path.isdir(folder)
            else []
        )
        optional = {name: os.path.join(folder, f"{name}.mrc") for name in ("mask", "focus_mask")}
        inset = self.inputSubtomograms.get()
        return ClassifyJob(
            star=Path(self._inputStar()),
            references=tuple(Path(folder, f) for f in refs) or None,
            **{k: Path(v) for k, v in optional.items() if os.path.exists(v)},
            workers=max(1, self.numberOfThreads.get() or 1),
            voxel_size=float(inset.getSamplingRate()) if inset is not None else None,
            **values,
        )

    # --------------------------- STEPS functions -----------------------------
    def convertInputStep(self):
        """Particle STAR file (paths, per-particle tilt range, object ids) and
        the references / mask as MRC files in ``extra/input``."""
        from ..io.mrc import read_mrc, write_mrc
        from ..io.star import write_star_blocks

        inset = self.inputSubtomograms.get()
        folder = self._getExtraPath("input")
        os.makedirs(folder, exist_ok=True)
        names, ids, lo, hi = [], [], [], []
        fallback = inset.getAcquisition() if hasattr(inset, "getAcquisition") else None
        for item in inset.iterItems(orderBy="id"):
            tr = self._tiltRange(item, fallback)
            if tr is None:
                raise InputError(
                    f"subtomogram {item.getObjId()}: no tilt range in its "
                    f"acquisition; set 'Override the tilt range'"
                )
            names.append(os.path.abspath(_volume_path(item)))
            ids.append(item.getObjId())
            lo.append(tr[0])
            hi.append(tr[1])
        sr = inset.getSamplingRate()
        parts = {
            "rlnImageName": names,
            "famlObjId": ids,
            "famlTiltMin": lo,
            "famlTiltMax": hi,
            **relion_columns(inset),
        }
        # RELION 5 reads the results (particles.star) with this optics table
        write_star_blocks(self._inputStar(), {"optics": relion_optics(inset), "particles": parts})
        for k, ref in enumerate(self._references_list() or []):
            vol, _ = read_mrc(_volume_path(ref))
            write_mrc(os.path.join(folder, f"reference_{k + 1:02d}.mrc"), vol, sr)
        for name, pointer in (("mask.mrc", self.inputMask), ("focus_mask.mrc", self._focusMask())):
            if pointer is not None and pointer.get() is not None:
                vol, _ = read_mrc(_volume_path(pointer.get()))
                write_mrc(os.path.join(folder, name), vol, sr)
        print(
            f"{len(names)} subtomograms, tilt ranges "
            f"{sorted(set(zip(lo, hi)))[:5]}{' ...' if len(set(lo)) > 5 else ''}",
            flush=True,
        )

    def iterationStep(self, iteration):
        """Run the classification up to ``iteration`` (resumes the checkpoint
        of the previous step; nothing to do once converged)."""
        from ..averaging.outputs import read_history

        try:
            hist = read_history(self._runDir())
        except InputError:
            hist = None
        if hist is not None and hist["converged"] and hist["iterations"] < iteration:
            print(f"converged after iteration {hist['iterations']}: nothing to do", flush=True)
            return
        job = self._job(iteration)
        n_mpi = max(1, self.numberOfMpi.get() or 1)
        try:
            if n_mpi > 1:
                self._runMpi(job, n_mpi)
            else:
                from ..averaging.job import run

                run(job, self._runDir(), progress=lambda line: print(line, flush=True))
        except CheckpointMismatch as exc:
            raise InputError(
                f"{exc}. The input or the parameters changed since the "
                f"last run: use Restart instead of Continue"
            ) from exc

    def _runMpi(self, job, n_mpi):
        """``faml-tomo run`` of the job under ``n_mpi`` MPI ranks."""
        import json

        from pyworkflow.utils import Environ

        from ..io.mrc import atomic_path
        from ..jobs import job_to_json

        path = self._getExtraPath("input", JOB_FILE)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"job": job_to_json(job)}, indent=1))
        env = Environ(os.environ)
        # mpirun (pip's mpich) and the interpreter live in this environment
        env.set("PATH", os.path.dirname(sys.executable), position=Environ.BEGIN)
        self.runJob(
            sys.executable,
            "-m faml_tomo.cli " + shlex.join(["run", path, "--out", self._runDir()]),
            numberOfMpi=n_mpi,
            env=env,
        )

    def createOutputStep(self):
        from pwem.objects import Transform
        from tomo.objects import AverageSubTomogram

        from ..averaging.outputs import class_average_path, read_history, read_iteration
        from ..io.star import read_star

        run = self._runDir()
        res = read_iteration(run, averages=False)
        hist = read_history(run)
        table = read_star(self._inputStar())
        ids = [int(i) for i in table["famlObjId"]]
        k_total = len(res["alpha"])
        sizes = np.bincount(res["classes"], minlength=k_total)
        inset = self.inputSubtomograms.get()
        sr = inset.getSamplingRate()

        subtomos = self._createSetOfSubTomograms()
        subtomos.copyInfo(inset)
        subtomos.setAlignment3D()
        row = {obj_id: i for i, obj_id in enumerate(ids)}
        for item in inset.iterItems(orderBy="id"):
            i = row[item.getObjId()]
            k = int(res["classes"][i])
            sub = item.clone()
            sub.setTransform(Transform(scipion_matrix(res["rotations"][i], res["shifts"][i])))
            sub.setClassId(k + 1)
            sub._famlClass = Integer(k + 1)
            sub._famlMaxPosterior = Float(float(res["max_posterior"][i]))
            sub._famlLogLikelihood = Float(float(res["logliks"][i]))
            sub._famlCandidates = Integer(int(res["n_candidates"][i]))
            sub._famlScore = Float(float(res["scores"][i]))
            subtomos.append(sub)
        self._defineOutputs(**{OUT_SUBTOMOS: subtomos})
        self._defineSourceRelation(self.inputSubtomograms, subtomos)

        averages = self._createSetOfAverageSubTomograms()
        averages.copyInfo(inset)
        averages.setSamplingRate(sr)
        for k in range(k_total):
            avg = AverageSubTomogram()
            avg.setFileName(str(class_average_path(run, k)))
            avg.setSamplingRate(sr)
            avg.setClassId(k + 1)
            avg._famlClassSize = Integer(int(sizes[k]))
            avg._famlClassWeight = Float(float(res["alpha"][k]))
            averages.append(avg)
        self._defineOutputs(**{OUT_AVERAGES: averages})
        self._defineSourceRelation(self.inputSubtomograms, averages)

        classes = self._createSetOfClassesSubTomograms(Pointer(self, extended=OUT_SUBTOMOS))

        def update_class(cls):
            k = cls.getObjId() - 1
            rep = AverageSubTomogram()
            rep.setFileName(str(class_average_path(run, k)))
            rep.setSamplingRate(sr)
            cls.setRepresentative(rep)
            cls.setSamplingRate(sr)

        classes.classifyItems(updateClassCallback=update_class)
        self._defineOutputs(**{OUT_CLASSES: classes})
        self._defineSourceRelation(self.inputSubtomograms, classes)
        print(f"{hist['iterations']} iterations, class sizes {sizes.tolist()}", flush=True)

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        from ..averaging.checks import particle_problems
        from ..averaging.wedge import check_tilt_range

        errors = []
        inset = self.inputSubtomograms.get()
        if inset is None:
            return ["Select the input subtomograms"]
        n_part = inset.getSize()
        if n_part == 0:
            return ["The input set of subtomograms is empty"]
        fallback = inset.getAcquisition() if hasattr(inset, "getAcquisition") else None
        paths, no_wedge = [], []
        for item in inset.iterItems(orderBy="id"):
            path = _volume_path(item)
            if item.getIndex() not in (None, 0, 1):
                errors.append(
                    f"{path}: subtomogram {item.getObjId()} is volume "
                    f"{item.getIndex()} of a stack; stacks are not supported "
                    f"(extract one file per subtomogram)"
                )
                break
            paths.append(path)
            if self._tiltRange(item, fallback) is None:
                no_wedge.append(item.getObjId())
        sr = inset.getSamplingRate()
        if not sr or sr <= 0:
            errors.append("The input subtomograms have no sampling rate: set it on the set")
        # the checks the command line runs (headers, box), shared
        problems, info = particle_problems(paths, sr if sr and sr > 0 else None)
        errors.extend(problems)
        shape = (info.box,) * 3 if info is not None else None
        if no_wedge:
            errors.append(
                f"{len(no_wedge)} subtomograms (e.g. id {no_wedge[0]}) have no "
                f"tilt range in their acquisition: set 'Override the tilt "
                f"range' to give the missing wedge"
            )
        if self.overrideTiltRange:
            try:
                check_tilt_range((self.tiltMin.get(), self.tiltMax.get()))
            except InputError as exc:
                errors.append(f"Tilt range: {exc}")
        errors.extend(self._validateVolumes(shape, inset.getSamplingRate()))
        errors.extend(self._validateJob(n_part))
        if (self.numberOfMpi.get() or 1) > 1:
            try:
                import mpi4py  # noqa: F401
            except ImportError:
                errors.append("MPI > 1 needs mpi4py: pip install 'scipion-em-faml-tomo[mpi]'")
        return errors

    def _validateVolumes(self, shape, sampling):
        """Problems of the references and masks (box, sampling, values)."""
        errors = []
        if self.useReferences:
            refs = self._references_list()
            if not refs:
                errors.append("'Start from references' is set: select the initial references")
            elif shape is not None:
                errors.extend(self._checkVolumes(refs, "reference", shape, sampling))
        if self.inputMask.get() is not None and shape is not None:
            errors.extend(self._checkVolumes([self.inputMask.get()], "mask", shape, sampling))
        # (a classification mask is only offered, and used, with references:
        # it is drawn in their frame, reference-free averages come out in any)
        if self._focusMask() is not None and shape is not None:
            errors.extend(
                self._checkVolumes(
                    [self.inputFocusMask.get()], "classification mask", shape, sampling
                )
            )
        for pointer, what in (
            (self.inputMask, "Reference mask"),
            (self._focusMask(), "Classification mask"),
        ):
            if pointer is not None and pointer.get() is not None:
                errors.extend(self._checkMaskValues(pointer.get(), what))
        return errors

    def _validateJob(self, n_part):
        """Problems of the settings: the job's checks (shared with the command
        line and the API), symmetry against iterations, Nyquist."""
        errors = []
        inset = self.inputSubtomograms.get()
        job = self._job()
        problems = job.problems(n_part)
        errors.extend(problems)
        em = job.em_params() if not problems else None
        if (
            em is not None
            and em.align.symmetry != "C1"
            and not self.useReferences
            and em.c1_iterations >= em.max_iter
        ):
            errors.append(
                f"Symmetry {em.align.symmetry} is imposed after "
                f"{em.c1_iterations} iterations without it, but the run "
                f"stops after {em.max_iter}: raise 'Iterations' or lower "
                f"'Iterations before imposing symmetry'"
            )
        for value, what in (
            (self.resolution.get(), "Low-pass limit"),
            (self.startResolution.get(), "Initial resolution"),
        ):
            if value is not None and value <= 2 * inset.getSamplingRate():
                errors.append(
                    f"{what} {value:g} Å is beyond Nyquist ({2 * inset.getSamplingRate():g} Å)"
                )
        return errors

    @staticmethod
    def _checkVolumes(objs, what, shape, sampling):
        from ..io.mrc import read_mrc_header

        errors = []
        for obj in objs:
            path = _volume_path(obj)
            try:
                info = read_mrc_header(path)
            except InputError as exc:
                errors.append(f"{what}: {exc}")
                continue
            if tuple(info.shape) != tuple(shape):
                errors.append(
                    f"{what} {path} has {'x'.join(map(str, info.shape[::-1]))} "
                    f"voxels, the subtomograms {'x'.join(map(str, shape[::-1]))}"
                )
            sr = obj.getSamplingRate() if hasattr(obj, "getSamplingRate") else None
            if sr and sampling and abs(sr - sampling) > 1e-3 * sampling:
                errors.append(f"{what} {path} has {sr:g} Å/px, the subtomograms {sampling:g} Å/px")
        return errors

    @staticmethod
    def _checkMaskValues(obj, what):
        from ..io.mrc import read_mrc

        try:
            vol = read_mrc(_volume_path(obj))[0]
        except InputError as exc:
            return [f"{what}: {exc}"]
        lo, hi = float(np.min(vol)), float(np.max(vol))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            return [
                f"{what} {_volume_path(obj)}: values from {lo:.3g} to {hi:.3g}; a mask "
                f"takes values from 0 to 1"
            ]
        if hi <= 0:
            return [f"{what} {_volume_path(obj)} is empty (all zero)"]
        return []

    def _warnings(self):
        warns = []
        inset = self.inputSubtomograms.get()
        k = self._numberOfClasses()
        if inset is not None and k > 0 and inset.getSize() / k < MIN_PER_CLASS:
            warns.append(
                f"{inset.getSize()} subtomograms for {k} classes: fewer than "
                f"{MIN_PER_CLASS} per class on average; classes and averages "
                f"may not be reliable"
            )
        return warns

    def _history(self):
        from ..averaging.outputs import read_history

        try:
            return read_history(self._runDir())
        except (InputError, OSError, ValueError):
            return None

    def _summary(self):
        hist = self._history()
        if hist is None:
            return ["No iteration finished yet."]
        n_it = hist["iterations"]
        sizes = hist["class_sizes"][-1] or []
        state = (
            "converged"
            if hist["converged"]
            else "running"
            if n_it < self.numberOfIterations.get() and not self.hasAttribute(OUT_CLASSES)
            else "iteration limit reached"
        )
        out = [
            f"{MODES[self.mode.get()]}: {hist['n_particles']} subtomograms, "
            f"{hist['n_classes']} classes, {n_it} of {self.numberOfIterations.get()} "
            f"iterations ({state}).",
            "Class sizes: "
            + ", ".join(f"class {k + 1}: {s}" for k, s in enumerate(sizes))
            + " subtomograms",
            f"Final log-likelihood: {hist['log_likelihood'][-1]:.6g}",
        ]
        out += self._resolutionLines(hist)
        if self._focusMask() is not None:
            out.append(
                "Focused classification: classes told apart inside the classification mask only."
            )
        sym = str(self.symmetry.get() or "C1").strip()
        if sym.upper() != "C1":
            when = (
                "from the start (references)"
                if self.useReferences
                else f"from iteration {self.c1Iterations.get() + 1}"
            )
            out.append(f"Symmetry {sym} imposed {when}.")
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

    def _resolutionLines(self, hist):
        """Resolution from the last iteration's FSC, saying which kind it is."""
        sr = self.inputSubtomograms.get().getSamplingRate()
        n = hist.get("box")
        if not (hist.get("fsc_radius") and n and sr):
            return []
        if hist.get("gold_standard") and hist.get("class_fsc_radius"):
            r_join = hist.get("join_radius") or 0
            parts = [
                f"class {k + 1}: {n * sr / r:.1f} Å"
                if r > r_join + 1
                else f"class {k + 1}: not beyond the shared {n * sr / r_join:.0f} Å"
                for k, r in enumerate(hist["class_fsc_radius"])
            ]
            return [
                "Gold-standard resolution (independent half-sets, FSC 0.143): " + ", ".join(parts)
            ]
        r = hist["fsc_radius"][-1]
        if r <= 0:
            return []
        return [
            f"Even/odd FSC 0.5 resolution: {n * sr / r:.1f} Å (optimistic: the halves "
            f"share the reference; use independent half-sets for a resolution)"
        ]

    def _methods(self):
        hist = self._history()
        if hist is None:
            return []
        inset = self.inputSubtomograms.get()
        mode = MODES[self.mode.get()]
        k = hist["n_classes"]
        what = f"classified into {k} classes and averaged" if k > 1 else "averaged"
        text = (
            f"{hist['n_particles']} subtomograms ({inset.getSamplingRate():g} Å/px) "
            f"were {what} without a reference by "
            f"{'FAML' if mode == 'FAML' else 'fast alignment (FA)'} [{CITE_FAML}] as "
            f"implemented in faml_tomo: fast rotational alignment with spherical "
            f"harmonics up to degree {self.angularBandwidth.get()}, at most "
            f"{self.maxCandidates.get()} candidate transforms per subtomogram and "
            f"class"
        )
        if mode == "FAML":
            text += (
                f", {self.voronoiSamples.get()} Voronoi samples (alpha_trd {self.alphaTrd.get():g})"
            )
        text += (
            f", {hist['iterations']} EM iterations"
            f"{' (converged)' if hist['converged'] else ''}, random seed "
            f"{self.seed.get()}."
        )
        return [text]
