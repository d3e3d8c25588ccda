"""MatchCapacity's AWS side: the per-fleet lease, demand observation from CloudWatch.
The policy itself is pure and lives in eiplane.capacity."""
