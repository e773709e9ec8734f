"""Run a ResidentWorker on the ingest queue, the GPU queue, or both."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rq import Queue

from inkweb.core.redis import redis_connection
from inkweb.worker import ResidentWorker


class Command(BaseCommand):
    """manage.py inkweb_worker ingest|gpu [...] [--burst]."""

    help = (
        "Run an RQ worker that executes jobs in this process and keeps pipeline models "
        "loaded. Queues: 'ingest' (reading new slides and dataset exports, CPU) and "
        "'gpu' (pipeline runs)."
    )

    def add_arguments(self, parser):  # noqa: D102
        parser.add_argument("queues", nargs="+", help="queue names: ingest, gpu")
        parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
        parser.add_argument("--name", help="worker name shown in RQ (default: host and pid)")
        parser.add_argument("--max-jobs", type=int, help="exit after this many jobs")

    def handle(self, *args, **options):  # noqa: D102
        known = {settings.INKWEB_INGEST_QUEUE, settings.INKWEB_GPU_QUEUE}
        unknown = [name for name in options["queues"] if name not in known]
        if unknown:
            raise CommandError(
                f"unknown queue(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
            )

        connection = redis_connection()
        queues = [Queue(name, connection=connection) for name in options["queues"]]
        worker = ResidentWorker(queues, connection=connection, name=options["name"])
        worker.work(
            burst=options["burst"],
            max_jobs=options["max_jobs"],
            logging_level=settings.INKWEB_LOG_LEVEL,
        )
