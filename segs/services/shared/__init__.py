"""The plumbing every room uses: Redis key names (keyspace) and scripts (lua), paging, and
which failures are outages. It has no face: any room may import any of its modules."""
