"""Operations: one file each, all with validate / expand / sync / contract / rollback."""

from .add_column import AddColumnOp, add_column
from .base import Op, Sync
from .block_writes import BlockWritesOp, block_writes
from .drop_column import DropColumnOp, drop_column
from .merge_columns import MergeColumnsOp, merge_columns
from .rename_column import RenameColumnOp, rename_column
from .replace_column import ReplaceColumnOp, replace_column
from .set_not_null import SetNotNullOp, set_not_null
from .split_column import SplitColumnOp, split_column

__all__ = [
    "AddColumnOp",
    "BlockWritesOp",
    "DropColumnOp",
    "MergeColumnsOp",
    "Op",
    "RenameColumnOp",
    "ReplaceColumnOp",
    "SetNotNullOp",
    "SplitColumnOp",
    "Sync",
    "add_column",
    "block_writes",
    "drop_column",
    "merge_columns",
    "rename_column",
    "replace_column",
    "set_not_null",
    "split_column",
]
