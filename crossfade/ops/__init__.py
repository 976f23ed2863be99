"""Operations: one file each, all with validate / expand / sync / contract / rollback."""

from .add_column import AddColumnOp, add_column
from .base import Op, Sync
from .drop_column import DropColumnOp, drop_column
from .rename_column import RenameColumnOp, rename_column
from .replace_column import ReplaceColumnOp, replace_column
from .set_not_null import SetNotNullOp, set_not_null

__all__ = [
    "AddColumnOp",
    "DropColumnOp",
    "Op",
    "RenameColumnOp",
    "ReplaceColumnOp",
    "SetNotNullOp",
    "Sync",
    "add_column",
    "drop_column",
    "rename_column",
    "replace_column",
    "set_not_null",
]
