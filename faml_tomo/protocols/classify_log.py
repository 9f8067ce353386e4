"""What a step of the FAML protocol logs: each iteration is one Scipion step
that resumes the previous step's checkpoint, so the lines every step would
repeat (reading the particles, expanding them, resuming) are left out after
the first."""

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet_repeats"]


class _DropRepeats(logging.Filter):
    """Drops the log records that every iteration step repeats."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.messages


@contextlib.contextmanager
def quiet_repeats(active: bool = True) -> Iterator[None]:
    """While active, leave out of the log what each iteration step after the
    first would repeat: reading the particle file, expanding the subtomograms,
    resuming the previous step's checkpoint."""
    from ..averaging.em.driver import RESUME_MESSAGE
    from ..averaging.parallel import EXPANDED_MESSAGE
    from ..io.relion import READ_MESSAGE

    if not active:
        yield
        return
    names = ("faml_tomo.averaging.em.driver", "faml_tomo.averaging.parallel", "faml_tomo.io.relion")
    drop = _DropRepeats((RESUME_MESSAGE, EXPANDED_MESSAGE, READ_MESSAGE))
    for name in names:
        logging.getLogger(name).addFilter(drop)
    try:
        yield
    finally:
        for name in names:
            logging.getLogger(name).removeFilter(drop)
