"""Parse and validate XML (and INF) inputs into dataclasses; every error carries file:line and a fix."""
