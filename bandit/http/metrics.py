"""Prometheus metrics of the serving processes: what every endpoint counts
(:class:`RequestMetrics`), plus the engine's state in one process (:class:`EngineMetrics`) or
the bus's on a decide replica (:class:`ReplicaMetrics`). Each has its own registry, so several
apps can live in one process (the tests run many); the trainer adds its own
(``bandit.scaleout.trainer.TrainerMetrics``) to the registry of the app it serves on.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bandit.core.gate import EVENT_KINDS


class RequestMetrics:
    """The request metrics every endpoint has, one process or a replica (own registry, so
    several apps can live in one process). ``grouped``: what a request group is there."""

    def __init__(self, config, grouped: str, endpoints: tuple[str, ...]):
        self.registry = CollectorRegistry()
        self.decisions = Counter("cartwheel_decisions", "Decisions made",
                                 ["placement", "action", "group"], registry=self.registry)
        # children looked up once: labels() takes a lock and a dict lookup on every call
        self.decided = {(p.id, a, g): self.decisions.labels(p.id, a, g)
                        for p in config.placements for a in p.actions
                        for g in ("treatment", "holdout")}
        self.outcomes = Counter("cartwheel_outcomes", "Outcomes received by status "
                                "(unattributed: an order by visitor with nothing open)",
                                ["status"], registry=self.registry)
        self.activations = Counter("cartwheel_activations", "Activations of deferred "
                                   "decisions received, by status", ["status"],
                                   registry=self.registry)
        self.latency = Histogram("cartwheel_request_seconds", "Request latency", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1))
        self.errors = Counter("cartwheel_request_errors", "Refused requests",
                              ["endpoint", "code"], registry=self.registry)
        self.timers = {e: self.latency.labels(e) for e in (*endpoints, "other")}
        # requests aiohttp could not parse reach no endpoint (serving.MalformedHttpLog)
        self.malformed_http = self.errors.labels("unparsed", "malformed_http")
        # connections the socket's limits closed before a request (bandit.http.connections)
        self._refused = Counter("cartwheel_connections_refused", "Connections closed by the "
                                "socket's limits, by reason", ["reason"], registry=self.registry)
        self.group_size = Histogram("cartwheel_group_size", grouped, registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.loop_lag = Histogram(
            "cartwheel_event_loop_lag_seconds", "How late the event loop ran a timer (work on "
            "the loop that kept every request waiting)", registry=self.registry,
            buckets=(.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1))

    def refused_connection(self, why: str) -> None:
        """A connection the socket's limits closed (the reason's first words label it)."""
        self._refused.labels(why.split(":")[0][:40]).inc()


class EngineMetrics(RequestMetrics):
    """One process's metrics: the request ones and the engine's."""

    def __init__(self, engine, endpoints: tuple[str, ...]):
        super().__init__(engine.config, "Requests decided and committed together (a request "
                                        "group)", endpoints)
        Gauge("cartwheel_model_updates", "Learning updates of the model",
              registry=self.registry).set_function(lambda: engine.update_count)
        Gauge("cartwheel_pending_events", "Decisions waiting for an outcome or expiry",
              registry=self.registry).set_function(lambda: engine.open_events)
        Gauge("cartwheel_held_closings", "Closed events a non-additive policy holds until every "
              "earlier decision has closed (it learns in decision order)",
              registry=self.registry).set_function(
            lambda: engine.models.held)
        Gauge("cartwheel_storage_degraded", "1 while the event log cannot be written",
              registry=self.registry).set_function(lambda: engine.degraded is not None)
        if engine.config.budget is not None:
            Gauge("cartwheel_incentive_spend_today", "Incentive spend of the budget day so far",
                  registry=self.registry).set_function(
                lambda: engine.guardrails.spend.spent(time.time()))
            Gauge("cartwheel_incentive_budget_daily", "Daily incentive budget",
                  registry=self.registry).set(engine.config.budget.daily)
        if any(p.challengers for p in engine.config.placements):
            self.registry.register(GateCollector(engine))


class GateCollector(Collector):
    """The promotion gates (bandit.core.gate), read at each scrape: promotions, retirements
    and rollbacks per placement (counters: the history their snapshots keep), and each
    policy's traffic share and estimated advantage over the champion with its bounds."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        changes = CounterMetricFamily(
            "cartwheel_gate_changes", "Promotions, retirements and rollbacks of the promotion "
            "gate", labels=["placement", "kind"])
        share = GaugeMetricFamily("cartwheel_gate_share", "Traffic share of each policy of "
                                  "the gate", labels=["placement", "policy", "role"])
        advantage = GaugeMetricFamily(
            "cartwheel_gate_advantage", "A policy's estimated advantage over the champion "
            "(reward per visitor) and its running bounds", labels=["placement", "policy", "bound"])
        for pid, view in self.engine.models.gates().items():
            for kind in EVENT_KINDS:
                changes.add_metric([pid, kind], len(view[kind]))
            for p in view["policies"]:
                share.add_metric([pid, p["spec"], p["role"]], p["share"])
                for bound in ("estimate", "lower", "upper"):
                    if p.get(bound) is not None:
                        advantage.add_metric([pid, p["spec"], bound], p[bound])
        yield from (changes, share, advantage)


class ReplicaMetrics(RequestMetrics):
    """A replica's metrics: the request ones (named as on one process) and the bus's."""

    def __init__(self, replica, endpoints: tuple[str, ...]):
        super().__init__(replica.config, "Requests appended as one bus entry", endpoints)
        r = self.registry
        self.bus_latency = Histogram("cartwheel_bus_append_seconds", "Time Redis took to "
                                     "acknowledge a group's entry", registry=r,
                                     buckets=(.0002, .0005, .001, .002, .005, .01, .025, .05, .1,
                                              .5))
        self.bus_errors = Counter("cartwheel_bus_errors", "Failed bus calls", registry=r)
        Gauge("cartwheel_model_version", "Version of the model this replica decides with",
              registry=r).set_function(lambda: replica.model_version)
        Gauge("cartwheel_model_age_seconds", "Seconds since this replica loaded its model",
              registry=r).set_function(lambda: time.time() - replica.loaded_at)
        Gauge("cartwheel_storage_degraded", "1 while the bus cannot be written",
              registry=r).set_function(lambda: replica.degraded is not None)
