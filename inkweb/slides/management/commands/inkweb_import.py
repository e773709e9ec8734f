"""Import slide files from the server's disk: every readable slide, duplicates skipped."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inkweb.slides.errors import SlideDuplicateError, SlideRejectedError, SlideTooLargeError
from inkweb.slides.models import Slide
from inkweb.slides.services import slide_import


def _expand(paths: list[Path], *, recursive: bool) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files.extend(
                sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith("."))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path} does not exist; pass slide files or folders of them")
    return files


class Command(BaseCommand):
    """manage.py inkweb_import PATH... (files, or folders whose files are imported)."""

    help = (
        "Import slide files or folders of them into storage and ingest them in this process. "
        "Unreadable files are reported with the reason; files already stored (same SHA-256) "
        "are skipped."
    )

    def add_arguments(self, parser):  # noqa: D102
        parser.add_argument("paths", nargs="+", type=Path, help="slide files or folders")
        parser.add_argument("--recursive", action="store_true", help="descend into subfolders")
        parser.add_argument("--user", help="username recorded as the uploader")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="queue the ingest on the ingest queue instead of running it here",
        )

    def handle(self, *args, **options):  # noqa: D102
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"user {options['user']!r} does not exist")

        files = _expand(options["paths"], recursive=options["recursive"])
        imported = skipped = rejected = 0
        for path in files:
            try:
                slide = slide_import(path=path, imported_by=user, ingest_now=not options["enqueue"])
            except SlideDuplicateError as error:
                skipped += 1
                self.stdout.write(f"skipped  {path}: duplicate of slide {error.existing_slide_id}")
                continue
            except (SlideRejectedError, SlideTooLargeError) as error:
                rejected += 1
                self.stdout.write(f"rejected {path}: {error.detail}")
                continue

            if slide.ingest_status == Slide.IngestStatus.FAILED:
                rejected += 1
                self.stdout.write(
                    f"rejected {path}: {slide.ingest_error} (stored as slide {slide.pk})"
                )
            else:
                imported += 1
                size = f"{slide.width}x{slide.height}" if slide.width else "ingest queued"
                self.stdout.write(f"imported {path} as slide {slide.pk} ({slide.format}, {size})")

        self.stdout.write(
            f"{imported} imported, {skipped} skipped as duplicates, {rejected} rejected"
        )
