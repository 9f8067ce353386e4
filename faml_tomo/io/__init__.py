"""File input and output shared by all faml_tomo packages (no pyworkflow)."""

from .jobjson import read_job_json, write_job_json
from .mrc import (
    MRCError,
    VolumeInfo,
    atomic_path,
    check_volume,
    open_mrc,
    read_mrc,
    read_mrc_header,
    write_mrc,
)

__all__ = [
    "MRCError",
    "VolumeInfo",
    "atomic_path",
    "check_volume",
    "open_mrc",
    "read_mrc",
    "read_mrc_header",
    "write_mrc",
    "read_job_json",
    "write_job_json",
]
