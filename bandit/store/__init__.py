"""Everything on disk: the SQLite event log (all SQL), WAL checkpoints, schema and migrations,
snapshots, the data dir's lock, and reading and writing log files."""
