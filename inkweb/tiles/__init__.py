"""Tiles: large-image backed pyramid tiles of original, restored and ink-mask images."""
