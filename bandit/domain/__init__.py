"""The ground floor: records, errors, the objective, rules, privacy checks, feature encoding
and the offline log record. Imports nothing of bandit's."""
