"""File drops: process a dropped payment file, report every record, archive the file."""

from ..errors import FileBusy
from .process import DropResult, FileDrop, on_blob, target_of

__all__ = ["DropResult", "FileBusy", "FileDrop", "on_blob", "target_of"]
