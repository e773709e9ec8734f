"""Users and their roles: uploaders add slides and start runs, reviewers approve or reject."""
