"""pytest plugin: options, fixtures and the end-of-session results table (filled in by the suites work)."""
