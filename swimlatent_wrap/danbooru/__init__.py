"""Danbooru datasets: query planning, a polite HTTP client, the SQLite manifest and verified downloads."""
