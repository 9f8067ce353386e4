"""Type aliases shared by the annotations of the package (core layer)."""

import os
from typing import Union

__all__ = ["PathLike"]

PathLike = Union[str, "os.PathLike[str]"]
