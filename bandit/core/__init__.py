"""The engine and its parts: decider, learner, joiner, guardrails, pacing, the policy's model and
its explanations."""
