"""lakehouse: a governed research data-lake exporter for medical imaging."""

__version__ = "0.1.0"
