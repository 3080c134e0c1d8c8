"""`GET /metrics` in Prometheus' text format. The numbers are the whole deployment's (see
`service/metrics.py`): scrape one API server, or take `max` across several."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from openveo.api.state import state_of
from openveo.service.billing import to_credits
from openveo.service.metrics import DeploymentStats, Histogram, deployment_stats

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    stats = await run_in_threadpool(deployment_stats, state_of(request).runtime.db)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(stats))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Families(Collector):
    def __init__(self, stats: DeploymentStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        yield _gauge("openveo_queue_depth", "Jobs waiting for a worker.", stats.queued)
        yield _gauge("openveo_jobs_running", "Jobs a worker is running.", stats.running)
        yield _counter(
            "openveo_jobs_finished", "Jobs that ended, by outcome.", ["model", "outcome"], stats.finished
        )
        yield _histogram(
            "openveo_job_latency_seconds", "Submit to finished video (succeeded).", stats.latency
        )
        yield _histogram(
            "openveo_denoising_step_seconds", "Mean seconds per denoising step (succeeded jobs).", stats.step
        )
        yield _gauge("openveo_workers_live", "Workers taking jobs, per model served.", stats.live_workers)
        yield CounterMetricFamily(
            "openveo_credits_charged",
            "Credits charged for succeeded jobs.",
            value=to_credits(stats.charged_micro),
        )
        yield _counter(
            "openveo_prompts_refused",
            "Prompts the content policy refused (never queued, never charged), by rule.",
            ["protocol", "source"],
            stats.refused,
        )


def _gauge(name: str, documentation: str, by_model: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["model"])
    for model, value in sorted(by_model.items()):
        family.add_metric([model], value)
    return family


def _counter(name: str, documentation: str, labels: list[str], counts: dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in sorted(counts.items()):
        family.add_metric(list(values), count)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=["model"])
    for model, (cumulative, count, total) in sorted(histogram.by_model.items()):
        buckets = [(str(bound), n) for bound, n in zip(histogram.bounds, cumulative, strict=True)]
        family.add_metric([model], [*buckets, ("+Inf", count)], total)
    return family
