"""The checkpoint key of a run: a digest of the data, the settings, the
references and the masks (a checkpoint is resumed only by the run with its key)."""

import hashlib
import json

import numpy as np

from .model import check_mask


def _chunk_summary(parts):
    """Box size and a digest of a chunk (data fingerprint for checkpoints)."""
    h = hashlib.sha1()
    for p in parts:
        h.update(np.array([p.norm2, p.n_obs, *p.tilt_range]).tobytes())
        h.update(np.ascontiguousarray(p.values[:64]).tobytes())
    return parts[0].n, h.hexdigest()


def _digest(volumes):
    """Checkpoint key of the user references (``True`` without: the key of
    runs made before references were hashed)."""
    if volumes is None:
        return True
    h = hashlib.sha1()
    for v in volumes:
        h.update(np.asarray(v, dtype=np.float32).tobytes())
    return h.hexdigest()


def _fingerprint(params, n_part, summary, references, mask, focus_mask):
    """Checkpoint key of a run (data, settings, references, masks) and the
    checked masks."""
    n = summary[0][0]
    mask_digest = None
    if mask is not None:
        mask = check_mask(mask, n)
        mask_digest = hashlib.sha1(mask.astype(np.float32).tobytes()).hexdigest()
    extra = [mask_digest] if mask is not None else []
    if focus_mask is not None:
        focus_mask = check_mask(focus_mask, n)
        # "focus2": hybrid references low-passed to the band since 2026-12-06
        extra.append("focus2:" + hashlib.sha1(focus_mask.astype(np.float32).tobytes()).hexdigest())
    fingerprint = json.dumps(
        [
            params.fingerprint(),
            n_part,
            n,
            hashlib.sha1("".join(h for _, h in summary).encode()).hexdigest(),
            _digest(references),
        ]
        + extra
    )
    return fingerprint, mask, focus_mask
