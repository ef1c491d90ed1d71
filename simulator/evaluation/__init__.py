"""Judging policies from logs: off-policy estimators, reward models, replay and the bake-off on
public datasets."""
