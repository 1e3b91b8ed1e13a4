"""Synthetic DICOM archives for trying and testing lakehouse (fake identities only)."""

from lakehouse.synth.archive import LAYOUTS, generate_archive, synthesize_archive

__all__ = ["LAYOUTS", "generate_archive", "synthesize_archive"]
