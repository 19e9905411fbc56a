"""Reference crash-dump collectors that run against the mock (and real machines)."""
