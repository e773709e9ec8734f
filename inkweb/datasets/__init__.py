"""Datasets: versioned collections of approved slides and their de-identified exports."""
