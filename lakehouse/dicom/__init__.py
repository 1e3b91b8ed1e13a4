"""DICOM helpers shared by the stages: header-only parsing (``header``), value typing
(``values``), DICOM JSON (``json``), element access without decoding and the raw walker
(``elements``), and Part 10 files: file meta and the writer (``part10``)."""
