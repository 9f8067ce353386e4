"""Scipion protocol: reference-free subtomogram averaging and classification
by FAML (Zhao et al. 2018).

Glue only: the input set is written as a particle STAR file, the form is
turned into a :class:`~faml_tomo.averaging.job.ClassifyJob` through one
table (:data:`~.classify_form.FORM_FIELDS`; the form's defaults are the
job's), and every iteration runs that job (:func:`faml_tomo.averaging.job.run`, in this process, or
``faml-tomo run`` under MPI through ``runJob``) on the run folder
``extra/run``, whose checkpoint makes each step continue the previous one;
the outputs are read back with :mod:`faml_tomo.averaging.outputs`.
The form is defined in :mod:`.classify_form`, the output sets are filled by
:mod:`.classify_outputs`, the references and masks are checked by
:mod:`.classify_checks` and the summary and methods are written by
:mod:`.classify_summary`.

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
import time
from pathlib import Path

import numpy as np
from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.object import Pointer
from pyworkflow.protocol.params import Form
from tomo.protocols import ProtTomoBase

from ..constants import CITE_FAML, CITE_FAST_ALIGN, CITE_ML, CITE_ROT_MATCH
from ..errors import CheckpointMismatch, InputError
from . import classify_form, classify_outputs, formjob
from .classify_checks import mask_value_problems, volume_problems
from .classify_form import FORM_CHOICES, FORM_FIELDS, MODES
from .classify_log import quiet_repeats
from .classify_form import INITS, form_default  # noqa: F401  (importable from here as before)
from .classify_summary import methods_text, summary_lines
from .convert import _volume_path, relion_columns, relion_optics

logger = logging.getLogger(__name__)

OUT_CLASSES = "outputClasses"
OUT_AVERAGES = "outputAverages"
OUT_SUBTOMOS = "outputSubtomograms"
JOB_FILE = "job_request.json"
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
    def _defineParams(self, form: Form) -> None:
        """The form (:mod:`.classify_form`): Input, Optimisation, Sampling,
        Parallelization; saved projects store the parameters by name."""
        classify_form.define_input_params(form)
        classify_form.define_mask_params(form)
        classify_form.define_tilt_range_params(form)
        classify_form.define_classification_params(form)
        classify_form.define_resolution_params(form)
        classify_form.define_start_params(form)
        classify_form.define_search_params(form)
        form.addParallelSection(threads=1, mpi=1)

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self) -> None:
        self._insertFunctionStep(self.convertInputStep)
        for it in range(1, self.numberOfIterations.get() + 1):
            self._insertFunctionStep(self.iterationStep, it)
        self._insertFunctionStep(self.createOutputStep)

    # --------------------------- helpers -------------------------------------
    def _runDir(self) -> str:
        return self._getExtraPath(RUN_DIR)

    def _inputStar(self) -> str:
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
    def convertInputStep(self) -> None:
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

    def iterationStep(self, iteration: int) -> None:
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
                self._runInProcess(job, iteration)
        except CheckpointMismatch as exc:
            raise InputError(
                f"{exc}. The input or the parameters changed since the "
                f"last run: use Restart instead of Continue"
            ) from exc

    def _runInProcess(self, job, iteration):
        """Run the job up to ``iteration``, telling the log what is new: the
        iteration (of the form's total), and the run's summary once, after
        the last iteration or when converged; what every step repeats
        (reading the particles, expanding them, resuming the previous step's
        checkpoint) only in the first step."""
        from ..averaging.job import run
        from ..averaging.runjob import summary

        total = int(self.numberOfIterations.get())
        step = f"iteration {iteration}/{iteration}:"

        def say(line):
            print(line.replace(step, f"iteration {iteration}/{total}:", 1), flush=True)

        t0 = time.perf_counter()
        with quiet_repeats(iteration > 1):
            res = run(job, self._runDir(), progress=say, summarize=False)
        if res is not None and (res.converged or iteration >= total):
            box, voxel = res.averages.shape[-1], float(job.voxel_size or 1.0)
            seconds = max(self.getElapsedTime().total_seconds(), time.perf_counter() - t0)
            for line in summary(job, res, self._runDir(), box, voxel, seconds):
                say(line)

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

    def createOutputStep(self) -> None:
        """The aligned subtomograms, the class averages and the classes
        (:mod:`.classify_outputs`) of the last iteration."""
        from ..averaging.outputs import read_history, read_iteration
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
        classify_outputs.fill_aligned_subtomograms(subtomos, inset, res, ids)
        self._defineOutputs(**{OUT_SUBTOMOS: subtomos})
        self._defineSourceRelation(self.inputSubtomograms, subtomos)

        averages = self._createSetOfAverageSubTomograms()
        classify_outputs.fill_class_averages(averages, inset, run, sizes, res["alpha"], sr)
        self._defineOutputs(**{OUT_AVERAGES: averages})
        self._defineSourceRelation(self.inputSubtomograms, averages)

        classes = self._createSetOfClassesSubTomograms(Pointer(self, extended=OUT_SUBTOMOS))
        update_class = classify_outputs.class_representative_setter(run, sr)
        classes.classifyItems(updateClassCallback=update_class)
        self._defineOutputs(**{OUT_CLASSES: classes})
        self._defineSourceRelation(self.inputSubtomograms, classes)
        print(f"{hist['iterations']} iterations, class sizes {sizes.tolist()}", flush=True)

    # --------------------------- INFO functions ------------------------------
    def _validate(self) -> list[str]:
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
                errors.extend(volume_problems(refs, "reference", shape, sampling))
        if self.inputMask.get() is not None and shape is not None:
            errors.extend(volume_problems([self.inputMask.get()], "mask", shape, sampling))
        # (a classification mask is only offered, and used, with references:
        # it is drawn in their frame, reference-free averages come out in any)
        if self._focusMask() is not None and shape is not None:
            errors.extend(
                volume_problems([self.inputFocusMask.get()], "classification mask", shape, sampling)
            )
        for pointer, what in (
            (self.inputMask, "Reference mask"),
            (self._focusMask(), "Classification mask"),
        ):
            if pointer is not None and pointer.get() is not None:
                errors.extend(mask_value_problems(pointer.get(), what))
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

    def _warnings(self) -> list[str]:
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

    def _summary(self) -> list[str]:
        hist = self._history()
        if hist is None:
            return ["No iteration finished yet."]
        return summary_lines(
            hist,
            mode=MODES[self.mode.get()],
            max_iterations=self.numberOfIterations.get(),
            finished=self.hasAttribute(OUT_CLASSES),
            voxel_size=self.inputSubtomograms.get().getSamplingRate(),
            focused=self._focusMask() is not None,
            symmetry=str(self.symmetry.get() or "C1").strip(),
            use_references=bool(self.useReferences),
            c1_iterations=self.c1Iterations.get(),
            curves=self._lastCurves(hist),
        )

    def _lastCurves(self, hist):
        """The last finished iteration's FSC curves (None if unreadable)."""
        from ..averaging.outputs import read_iteration

        try:
            return read_iteration(self._runDir(), hist["iterations"], averages=False)
        except (InputError, OSError, KeyError) as exc:
            logger.debug("no FSC curves for the summary: %s", exc)
            return None

    def _methods(self) -> list[str]:
        hist = self._history()
        if hist is None:
            return []
        text = methods_text(
            hist,
            mode=MODES[self.mode.get()],
            voxel_size=self.inputSubtomograms.get().getSamplingRate(),
            lmax=self.angularBandwidth.get(),
            max_candidates=self.maxCandidates.get(),
            voronoi_samples=self.voronoiSamples.get(),
            alpha_trd=self.alphaTrd.get(),
            seed=self.seed.get(),
        )
        return [text]
