"""Operations: one file each, all with validate / expand / sync / contract / rollback."""

from .add_check import AddCheckOp, add_check
from .add_column import AddColumnOp, add_column
from .add_foreign_key import AddForeignKeyOp, add_foreign_key
from .add_unique import AddUniqueOp, add_unique
from .base import Op, Sync
from .block_writes import BlockWritesOp, block_writes
from .compute_column import ComputeColumnOp, compute_column
from .create_index import CreateIndexOp, create_index
from .data_step import DataStepOp, data_step
from .derive_column import DeriveColumnOp, derive_column
from .drop_column import DropColumnOp, drop_column
from .merge_columns import MergeColumnsOp, merge_columns
from .move_column import MoveColumnOp, move_column
from .rename_column import RenameColumnOp, rename_column
from .rename_table import RenameTableOp, rename_table
from .replace_column import ReplaceColumnOp, replace_column
from .set_not_null import SetNotNullOp, set_not_null
from .split_column import SplitColumnOp, split_column
from .split_table import SplitTableOp, split_table

__all__ = [
    "AddCheckOp",
    "AddColumnOp",
    "AddForeignKeyOp",
    "AddUniqueOp",
    "BlockWritesOp",
    "ComputeColumnOp",
    "CreateIndexOp",
    "DataStepOp",
    "DeriveColumnOp",
    "DropColumnOp",
    "MergeColumnsOp",
    "MoveColumnOp",
    "Op",
    "RenameColumnOp",
    "RenameTableOp",
    "ReplaceColumnOp",
    "SetNotNullOp",
    "SplitColumnOp",
    "SplitTableOp",
    "Sync",
    "add_check",
    "add_column",
    "add_foreign_key",
    "add_unique",
    "block_writes",
    "compute_column",
    "create_index",
    "data_step",
    "derive_column",
    "drop_column",
    "merge_columns",
    "move_column",
    "rename_column",
    "rename_table",
    "replace_column",
    "set_not_null",
    "split_column",
    "split_table",
]
