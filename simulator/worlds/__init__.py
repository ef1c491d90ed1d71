"""Simulated shops: populations, responses, scenarios, the runner that scores policies in them, and
simulated logs."""
