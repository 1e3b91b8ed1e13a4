"""Synthetic DICOM archives for trying and testing lakehouse (fake identities only)."""
