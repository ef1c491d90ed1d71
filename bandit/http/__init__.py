"""The aiohttp apps (one process, the trainer and decide replicas), API types, metrics and the
dashboard. The only folder that imports aiohttp."""
