"""Errors with a field name, so every front end (Python, CLI, HTTP) can say what was wrong."""

from __future__ import annotations


class CartwheelError(Exception):
    """Base class: a message for a person and the offending field (or None)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ContextError(CartwheelError, ValueError):
    """A context that does not fit the shop's feature schema."""

    code = "invalid_context"


class PersonalDataError(ContextError):
    """A context that carries (or looks like it carries) personal data."""

    code = "personal_data"


class ConfigError(CartwheelError, ValueError):
    """A configuration file with a missing, unknown or ill-typed key."""

    code = "invalid_config"


class UnknownEventError(CartwheelError, KeyError):
    """An outcome for an event id the store never saw (HTTP 404)."""

    code = "unknown_event"

    def __str__(self) -> str:
        return self.message


class ClosedEventError(CartwheelError):
    """A new outcome for an event whose attribution already closed (HTTP 409)."""

    code = "event_closed"


class SnapshotMismatchError(CartwheelError):
    """A model snapshot that does not fit the current config (schema or policy changed)."""

    code = "snapshot_mismatch"


class StorageError(CartwheelError):
    """The event log cannot be written now (disk full, read-only, I/O error): HTTP 503.

    The failed group was rolled back whole, so nothing of it is stored or learned; the same
    requests may be retried once the store can write again.
    """

    code = "storage_unavailable"


class WindowClosedError(ClosedEventError):
    """An outcome that arrived after its decision's attribution window (HTTP 409)."""

    code = "window_closed"


class OutcomeConflictError(ClosedEventError):
    """An ``outcome_id`` already used for another event (HTTP 409)."""

    code = "outcome_id_conflict"


class RateLimitedError(CartwheelError):
    """Too many decisions for one visitor id in a short time (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, message: str, *, field: str | None = None, retry_after: int = 1):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class UnsupportedMediaError(CartwheelError):
    """A body that is not uncompressed ``application/json`` (HTTP 415)."""

    code = "unsupported_media_type"


class BusUnavailableError(StorageError):
    """The bus (Redis) did not acknowledge in time: nothing of the request group counts (503)."""

    code = "bus_unavailable"


class BusConfigError(CartwheelError):
    """This process's config differs from the one the other processes on the bus run."""

    code = "bus_config_mismatch"


class UnknownPlacementError(CartwheelError):
    """A decide request names no placement, or one the shop does not have (HTTP 400)."""

    code = "unknown_placement"


class InactiveEventError(ClosedEventError):
    """An outcome for a deferred decision that was never activated (HTTP 409)."""

    code = "not_activated"
