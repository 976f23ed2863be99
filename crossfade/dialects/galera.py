"""MariaDB / MySQL under Galera (or Percona XtraDB Cluster): what differs from one server.

Every node takes writes; a transaction is certified against the others' at commit, and the one
that loses fails with error 1213 (a deadlock to the application). So on Galera:
- a read on one node may not yet see a write another node committed, unless the session waits
  for the node to catch up first (`wsrep_sync_wait`);
- a backfill batch that spans rows other nodes are writing loses certification, and a big one
  loses it again and again: batches start small here, and a lost batch runs again from the same
  checkpoint, half as big (backfill.AdaptiveBatches.lost).
"""

from __future__ import annotations

# Reads wait until this node has applied everything the cluster had committed when they began.
CONSISTENT_READS = ("SET SESSION wsrep_sync_wait = 1",)

# Measured with benchmarks/galera.py (three writers on each of two other nodes, one write per
# ~1 ms each): a first batch of 1000 rows lost certification again and again (2.9 s for 1000 rows
# against 0.1 s on the single server); batches of 50 rows rarely lose, and the adaptive sizing
# grows them as they commit. Below 50 rows a batch's time is its commit's replication: a slow one
# does not shrink the next further (only a lost one halves it).
FIRST_BATCH_ROWS = 50
