"""File drops: process a dropped payment file, report every record, archive the file.

Imported on the first file (`payments.lazy`): a worker that only answers webhooks never loads the readers.
"""

from typing import TYPE_CHECKING

from ..errors import FileBusy
from ..lazy import exports

if TYPE_CHECKING:
    from .process import DropResult, FileDrop, on_blob, target_of

__getattr__ = exports(
    __name__, {name: ".process" for name in ("DropResult", "FileDrop", "on_blob", "target_of")}
)
__all__ = ["DropResult", "FileBusy", "FileDrop", "on_blob", "target_of"]
