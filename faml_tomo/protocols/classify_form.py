"""Form of :class:`~faml_tomo.protocols.protocol_faml_classify.ProtFAMLClassify`:
its sections and parameters, and the table of form parameter -> job field.

The form's defaults are the :class:`~faml_tomo.averaging.job.ClassifyJob`'s
(:func:`form_default`).  Sections as in scipion-em-reliontomo: Input,
Optimisation, Sampling (expert settings of the pose search) and Scipion's
Parallelization.  Saved Scipion projects store the parameters by name: never
rename one (their order on the form may change).
"""

from pyworkflow.protocol import params
from pyworkflow.protocol.params import Form

from . import formjob

__all__ = [
    "MODES",
    "INITS",
    "FORM_FIELDS",
    "FORM_CHOICES",
    "form_default",
    "define_input_params",
    "define_mask_params",
    "define_tilt_range_params",
    "define_classification_params",
    "define_search_params",
    "define_resolution_params",
    "define_start_params",
]

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
    "independentStarts": "starts",
    "fullBand": "full_band",
}
# enumerations: form index <-> job value
FORM_CHOICES = {"mode": tuple(m.lower() for m in MODES), "initialization": INITS}


def form_default(name: str) -> object:
    """The form default of parameter ``name``: the job's (an index for
    enumerations)."""
    from ..averaging.job import job_defaults

    return formjob.form_default(job_defaults(), FORM_FIELDS, FORM_CHOICES, name)


def define_input_params(form: Form) -> None:
    """The Input section: the subtomograms and the optional initial references."""
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


def define_mask_params(form: Form) -> None:
    """Input section, masks: the reference mask and the classification mask."""
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


def define_tilt_range_params(form: Form) -> None:
    """Input section, missing wedge: the tilt range from the acquisition or
    given."""
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
        "Tilt range (°)",
        condition="overrideTiltRange",
        help="Tilt range about the Y axis; asymmetric ranges are allowed.",
    )
    line.addParam("tiltMin", params.FloatParam, default=-60.0, label="min")
    line.addParam("tiltMax", params.FloatParam, default=60.0, label="max")


def define_classification_params(form: Form) -> None:
    """The Optimisation section: classes, iterations, mode, symmetry and
    half-sets."""
    form.addSection(label="Optimisation")
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


def define_search_params(form: Form) -> None:
    """The Sampling section (expert): candidates, rotational bandwidth and the
    weights of the pose integrals."""
    form.addSection(label="Sampling")
    form.addParam(
        "maxCandidates",
        params.IntParam,
        default=form_default("maxCandidates"),
        validators=[params.Positive],
        expertLevel=params.LEVEL_ADVANCED,
        label="Candidate poses per subtomogram and class",
        help="Largest number of candidate poses (local maxima of the "
        "rotational correlation) kept per subtomogram and class; the "
        "likelihood integrates over them. Raise it (e.g. to 100) at very low "
        "SNR, where the right pose is often not among the best few; lower "
        "it to save time on clean data.",
    )
    form.addParam(
        "angularBandwidth",
        params.IntParam,
        default=form_default("angularBandwidth"),
        expertLevel=params.LEVEL_ADVANCED,
        label="Rotational search bandwidth",
        help="Highest spherical-harmonic degree L of the fast rotational "
        "search: the rotation grid has 2L + 2 samples per Euler angle "
        "(35: 5°). Raise it (45-64) for large boxes aligned at high "
        "resolution; lower it (20-30) for a faster search of small or "
        "low-resolution data. Between 4 and 64.",
    )
    form.addParam(
        "voronoiSamples",
        params.IntParam,
        default=form_default("voronoiSamples"),
        validators=[params.Positive],
        expertLevel=params.LEVEL_ADVANCED,
        label="Samples per pose weight",
        help="Random samples that estimate the weight of each candidate "
        "pose in the likelihood integral (the size of its Voronoi cell). "
        "The default is enough; raise it only if results change with the "
        "random seed.",
    )
    form.addParam(
        "alphaTrd",
        params.FloatParam,
        default=form_default("alphaTrd"),
        expertLevel=params.LEVEL_ADVANCED,
        label="Shift against rotation in pose distances",
        help="How much one voxel of shift counts against one radian of "
        "rotation when the pose weights are computed. Keep the default; "
        "raise it when shifts are large compared to the box.",
    )


def define_resolution_params(form: Form) -> None:
    """Optimisation section, resolution: low-pass limit, initial resolution
    and convergence."""
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


def define_start_params(form: Form) -> None:
    """Optimisation section, start (expert): initial split, consensus,
    re-seeding, full band and the random seed."""
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
        "FAML, random for FA. With gold-standard half-sets the classes "
        "start from the consensus split low-passed to the initial "
        "resolution, which both halves share anyway.",
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
        "independentStarts",
        params.IntParam,
        default=form_default("independentStarts"),
        expertLevel=params.LEVEL_ADVANCED,
        label="Independent starts",
        help="Run the refinement this many times side by side, each from "
        "its own random start, and keep the run with the highest "
        "log-likelihood. Without references at low SNR, runs from "
        "different starts can end in different averages, and the "
        "log-likelihood picks the better one. Each iteration takes this "
        "many times longer. 1: one run.",
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
    form.addParam(
        "seed",
        params.IntParam,
        default=form_default("seed"),
        expertLevel=params.LEVEL_ADVANCED,
        label="Random seed",
        help="Seeds the initial split and the Voronoi samples; the same "
        "seed gives the same result.",
    )
