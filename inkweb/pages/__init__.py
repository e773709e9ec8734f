"""Server-rendered pages: sign-in, slide list and the side-by-side viewer."""
