"""FAML expectation-maximisation and the FA comparator (paper §2.3-2.4).

Data model (eq. 7): ``X_i = R_phi_i A_k_i + G_i`` in Fourier space, ``G_i``
white Gaussian noise of variance ``sigma^2`` per component, observed only
inside each subtomogram's wedge.  With the orthonormal centred transform of
:mod:`.fourier` and sums over the full spectrum inside the shell band, the
likelihood is the real-space Gaussian likelihood, ``sigma`` the real-space
noise level.

One iteration (Algorithm 1):

1. E-step, per subtomogram ``i`` and class ``k``: fast alignment
   (:func:`.align.align`) gives the candidate set ``Phi_ik`` with squared
   distances ``D = sum_j w_ij |(R_phi A_k)_j - X_ij|^2``; Monte-Carlo Voronoi
   weights ``v~`` (:func:`.voronoi.voronoi_weights`); posteriors (eqs. 14-15)
   in log space::

       log e(phi, k) = log alpha_k - D / (2 sigma^2) - |t|^2 / (2 xi^2)
       P(k, phi | X_i) v~ = softmax over (k, phi) of [log e + log v~]

2. M-step: eqs. 10-13 (averages with the unobserved part of each back-rotated
   subtomogram filled by the current average, class weights, noise level,
   translation prior).

The E-step of one subtomogram is a pure function of the subtomogram, the
prepared averages, the model scalars, the seed and the iteration number (its
Voronoi samples come from ``SeedSequence([seed, iteration, index, k])``), and
returns additive sufficient statistics.  Statistics are summed over fixed
chunks of subtomograms in index order and the chunks are summed in order, so
the result does not depend on how chunks are spread over workers.

Resolution control and initialisation (defaults; ``marching=False,
fsc_weight=False, leave_one_out=False`` give the paper's algorithm):

* frequency marching: the E-step sees the averages low-passed to a radius
  that starts at ``n / 8`` shells and widens with the half-set FSC (even/odd
  subtomogram index) computed from the M-step sums each iteration;
* FSC weighting of the references and the returned averages,
  ``sqrt(2 FSC / (1 + FSC))`` per shell;
* leave-one-out (FAML): each subtomogram is scored against its previous class
  average minus its own contribution (self-bias at low SNR);
* FAML with ``K > 1`` (``init="auto"``): a one-class consensus run first,
  then the classes start from k-means of the principal components of the
  wedge-masked differences to the consensus (:mod:`.consensus`), instead of
  the paper's random split (``init="random"``; ``init="kmeans"``: k-means of
  rotation-invariant shell-power descriptors);
* FAML with ``K > 1``: every class is scored on the same candidate
  rotations (``shared_candidates``), the union of each class's best.

FA mode (the paper's comparator) assigns each subtomogram to its single best
candidate over all classes (highest constrained correlation) and averages
the aligned subtomograms with missing-wedge compensation
(``sum R^-1 (w X) / sum R^-1 w`` where at least ``fa_min_weight`` subtomograms
observed a component, zero elsewhere).

Each finished iteration can be written to a checkpoint (``.npz``, atomic
rename); a run started again with the same data, settings and folder resumes
after the last finished iteration and ends identical to an uninterrupted run.

The package, one concern per module: :mod:`.params` (settings), :mod:`.state`
(model state, statistics, result, checkpoint), :mod:`.runkey` (the checkpoint's
key), :mod:`.estep`, :mod:`.estep_inputs` (an iteration's E-step references and
leave-one-out data), :mod:`.model` (references and the M-step), :mod:`.band`
(resolution and marching), :mod:`.start` (initial model), :mod:`.reseed`,
:mod:`.symframe` (point groups in a reference-free run) and :mod:`.driver`
(:func:`classify`).
"""

from .driver import classify, prepare_data
from .estep import estep_chunk
from .model import check_mask
from .params import EMParams
from .state import (
    CHECKPOINT_NAME,
    CONSENSUS_CHECKPOINT_NAME,
    ChunkStats,
    ClassificationResult,
    EMState,
    result_from_state,
)

__all__ = [
    "EMParams",
    "EMState",
    "ChunkStats",
    "ClassificationResult",
    "classify",
    "prepare_data",
    "estep_chunk",
    "result_from_state",
    "check_mask",
    "CHECKPOINT_NAME",
    "CONSENSUS_CHECKPOINT_NAME",
]
