"""Workflows composed from models and formats: pkggen, and later featuremerge, imggen, provisioning, smoketest."""
