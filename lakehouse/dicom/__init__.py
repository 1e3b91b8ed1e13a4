"""DICOM helpers shared by the stages: header-only parsing, value typing, DICOM JSON."""
