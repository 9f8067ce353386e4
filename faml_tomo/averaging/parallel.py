"""Where the per-subtomogram work of a run happens: serially, in a process
pool on one machine, or over MPI ranks.

All three split the subtomograms into the same fixed chunks (``chunk_size``
consecutive subtomograms) and return one result per chunk, in chunk order, to
every caller; reductions are then done in that order everywhere, so serial,
pool and MPI runs give bit-identical results for the same seed.

* :class:`SerialRunner` expands every chunk once and keeps it.
* :class:`PoolRunner` reads the subtomograms chunk by chunk (any sequence
  works, e.g. a lazy reader of MRC files), expands them in worker processes
  and sends each chunk to a worker per task.
* :class:`MPIRunner` gives chunk ``c`` to rank ``c % size``: each rank reads and
  expands only its own chunks (memory is split over ranks) and the chunk
  results are exchanged with one ``allgather`` per step.  Run the same script
  on every rank, e.g. ``mpirun -n 8 python script.py`` or ``srun`` under SLURM.

Subtomograms are expanded once per run (not per iteration) and only the
compact expansions are kept (about 0.3 MB per 32^3 subtomogram), so a data
set that does not fit in memory as volumes can be streamed from disk once.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar, cast

import numpy as np

from ..errors import InputError
from ..typealiases import PathLike
from .align import AlignParams, PreparedSubtomogram, check_volume, prepare_subtomogram

if TYPE_CHECKING:
    from .em import EMParams

logger = logging.getLogger(__name__)

EXPANDED_MESSAGE = "expanded %d subtomograms in %.1f s"

_T = TypeVar("_T")
TiltRanges = Sequence[Sequence[float]]

__all__ = [
    "VolumeFiles",
    "prepare_chunk",
    "make_runner",
    "SerialRunner",
    "PoolRunner",
    "MPIRunner",
    "add_arrays",
    "VolumeSource",
]


class VolumeSource(Protocol):
    """What the runners read subtomograms from: ``len(source)`` volumes,
    ``source[i]`` the ``i``-th (an array, a list of arrays, :class:`VolumeFiles`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int, /) -> Any: ...


class VolumeFiles:
    """A sequence of MRC subtomograms read from disk on access (streaming).

    Pass it to :func:`.em.classify` instead of an array: each file is read
    once, when its chunk is expanded, so the volumes never all sit in memory.

    Parameters
    ----------
    paths : sequence of str or Path
    """

    def __init__(self, paths: Iterable[PathLike]) -> None:
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from ..io.mrc import read_mrc

        return read_mrc(self.paths[i], dtype=np.float32)[0]


def prepare_chunk(
    volumes: Sequence[np.ndarray],
    start: int,
    tilt_ranges: TiltRanges,
    align_params: AlignParams,
    normalize: bool,
    n: int | None = None,
) -> list[PreparedSubtomogram]:
    """Check and expand consecutive subtomograms ``start, start + 1, ...``.

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
    start : int
        Index of the first one in the data set.
    tilt_ranges : sequence of (float, float)
        Their tilt ranges.
    align_params : AlignParams
    normalize : bool
        Scale each to mean 0, standard deviation 1 first.
    n : int, optional
        Expected box size.

    Returns
    -------
    list of PreparedSubtomogram
    """
    out = []
    for j, vol in enumerate(volumes):
        v = check_volume(vol, start + j, n)
        n = v.shape[0]
        if normalize:
            v = (v - v.mean()) / v.std()
        out.append(prepare_subtomogram(v, tilt_ranges[j], align_params, index=start + j))
    return out


def _add(total, result):
    return total.add(result)


def add_arrays(
    total: tuple[np.ndarray, ...], result: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """``add`` for results that are tuples of arrays (element-wise sums)."""
    return tuple(a + b for a, b in zip(total, result))


def _bounds(n_items, chunk_size):
    return [(s, min(s + chunk_size, n_items)) for s in range(0, n_items, chunk_size)]


def _first_box(source):
    v = np.asarray(source[0])
    return v.shape[0] if v.ndim == 3 else None


class SerialRunner:
    """Chunks expanded and processed in this process.

    Parameters
    ----------
    source : sequence of volumes
        ``len(source)`` subtomograms; ``source[i]`` returns volume ``i``.
    tilt_ranges : list of (float, float)
    params : EMParams
    """

    def __init__(self, source: VolumeSource, tilt_ranges: TiltRanges, params: EMParams) -> None:
        self.n_particles = len(source)
        self.bounds = _bounds(self.n_particles, int(params.chunk_size))
        self.box = _first_box(source)
        t0 = time.perf_counter()
        self.parts = self._prepare(source, tilt_ranges, params)
        logger.info(EXPANDED_MESSAGE, self.n_particles, time.perf_counter() - t0)

    def _prepare(self, source, tilt_ranges, params):
        return {
            c: prepare_chunk(
                [source[i] for i in range(s, e)],
                s,
                tilt_ranges[s:e],
                params.align,
                params.normalize,
                self.box,
            )
            for c, (s, e) in enumerate(self.bounds)
        }

    @property
    def n_chunks(self) -> int:
        return len(self.bounds)

    def map(self, func: Callable[..., _T], *args: Any) -> list[_T]:
        """``[func(parts_of_chunk_c, *args) for every chunk c]``, in order."""
        return [func(self.parts[c], *args) for c in range(self.n_chunks)]

    def imap(self, func: Callable[..., _T], *args: Any) -> Iterator[_T]:
        """The results of :meth:`map` one at a time, in chunk order, for a
        caller that reduces them as they come (large statistics per chunk
        never all sit in memory)."""
        for c in range(self.n_chunks):
            yield func(self.parts[c], *args)

    def reduce(
        self, func: Callable[..., _T], *args: Any, add: Callable[[_T, _T], _T] | None = None
    ) -> _T:
        """``func`` over every chunk, the results added in chunk order with
        ``add(total, result)`` (default: their ``add`` method) -- the same
        order, hence the same bits, on every runner."""
        add = add or _add
        total = None
        for r in self.imap(func, *args):
            total = r if total is None else add(total, r)
        return cast(_T, total)  # every runner has at least one chunk

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False


class PoolRunner(SerialRunner):
    """Chunks processed by a pool of ``workers`` processes.

    The volumes are read here chunk by chunk and expanded by the workers;
    each task sends one chunk's expansions to a worker.
    """

    def __init__(
        self, source: VolumeSource, tilt_ranges: TiltRanges, params: EMParams, workers: int
    ) -> None:
        ctx = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        )
        self.workers = int(workers)
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        try:
            super().__init__(source, tilt_ranges, params)
        except BaseException:
            self.pool.shutdown(cancel_futures=True)
            raise

    def _prepare(self, source, tilt_ranges, params):
        # At most two chunks per worker in flight: volumes are read as they
        # are needed, never all at once.
        parts, pending = {}, {}
        limit = 2 * self.workers
        for c, (s, e) in enumerate(self.bounds):
            if len(pending) >= limit:
                done = min(pending)
                parts[done] = pending.pop(done).result()
            pending[c] = self.pool.submit(
                prepare_chunk,
                [np.asarray(source[i]) for i in range(s, e)],
                s,
                tilt_ranges[s:e],
                params.align,
                params.normalize,
                self.box,
            )
        for c in sorted(pending):
            parts[c] = pending[c].result()
        return parts

    def map(self, func: Callable[..., _T], *args: Any) -> list[_T]:
        return list(self.imap(func, *args))

    def imap(self, func: Callable[..., _T], *args: Any) -> Iterator[_T]:
        # At most two tasks per worker in flight: each carries a chunk's
        # expansions and returns its statistics, so memory stays bounded
        # however many subtomograms there are.
        pending, head = {}, 0
        for c in range(self.n_chunks):
            pending[c] = self.pool.submit(func, self.parts[c], *args)
            if len(pending) >= 2 * self.workers:
                yield pending.pop(head).result()
                head += 1
        while pending:
            yield pending.pop(head).result()
            head += 1

    def close(self) -> None:
        self.pool.shutdown()


class MPIRunner(SerialRunner):
    """Chunks spread over MPI ranks (chunk ``c`` on rank ``c % size``).

    Every rank must construct it with the same arguments and call
    :meth:`map` the same number of times (SPMD).
    """

    def __init__(
        self, source: VolumeSource, tilt_ranges: TiltRanges, params: EMParams, comm: Any
    ) -> None:
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        super().__init__(source, tilt_ranges, params)

    def _own(self):
        return [c for c in range(len(self.bounds)) if c % self.size == self.rank]

    def _prepare(self, source, tilt_ranges, params):
        parts, error = {}, None
        try:
            for c in self._own():
                s, e = self.bounds[c]
                parts[c] = prepare_chunk(
                    [source[i] for i in range(s, e)],
                    s,
                    tilt_ranges[s:e],
                    params.align,
                    params.normalize,
                    self.box,
                )
        except InputError as exc:
            error = str(exc)
        # A bad volume on one rank must stop every rank with the same message.
        errors = [m for m in self.comm.allgather(error) if m]
        if errors:
            raise InputError(errors[0])
        return parts

    def map(self, func: Callable[..., _T], *args: Any) -> list[_T]:
        local = {c: func(self.parts[c], *args) for c in self._own()}
        merged = {}
        for d in self.comm.allgather(local):
            merged.update(d)
        return [merged[c] for c in range(self.n_chunks)]

    def imap(self, func: Callable[..., _T], *args: Any) -> Iterator[_T]:
        # every rank receives every chunk's result (allgather): for small
        # results only; large statistics go through reduce()
        return iter(self.map(func, *args))

    def reduce(
        self, func: Callable[..., _T], *args: Any, add: Callable[[_T, _T], _T] | None = None
    ) -> _T:
        """As :meth:`SerialRunner.reduce`: rank 0 receives the chunk results
        one at a time in chunk order and adds them (the serial order, so the
        same bits), then sends the total to every rank.  No rank holds more
        than its own chunks' results, whatever the number of chunks."""
        add = add or _add
        local = {c: func(self.parts[c], *args) for c in self._own()}
        total = None
        if self.rank == 0:
            for c in range(self.n_chunks):
                owner = c % self.size
                r = local.pop(c) if owner == 0 else self.comm.recv(source=owner, tag=c)
                total = r if total is None else add(total, r)
        else:
            for c in sorted(local):
                self.comm.send(local.pop(c), dest=0, tag=c)
        return self.comm.bcast(total, root=0)

    @property
    def is_root(self) -> bool:
        return self.rank == 0


def make_runner(
    source: VolumeSource,
    tilt_ranges: TiltRanges,
    params: EMParams,
    workers: int | None = 1,
    comm: Any = None,
) -> SerialRunner:
    """The runner for a run: MPI if ``comm`` has more than one rank, a
    process pool if ``workers > 1``, else serial."""
    if comm is not None and comm.Get_size() > 1:
        return MPIRunner(source, tilt_ranges, params, comm)
    if workers is not None and int(workers) > 1:
        return PoolRunner(source, tilt_ranges, params, workers)
    return SerialRunner(source, tilt_ranges, params)
