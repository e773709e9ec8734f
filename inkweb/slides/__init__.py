"""Slides: upload, content validation, ingest (metadata, thumbnail, checksum) and import."""
