"""InkWeb: the Django project that uploads slides, runs ink removal and records reviews."""
