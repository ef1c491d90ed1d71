"""More than one process: the bus on Redis Streams (all Redis), decide replicas, the trainer and
its ingest."""
