"""spark-submit entry point for an export on Spark.

    spark-submit jobs/export_spark.py --config lakehouse.toml [--user olga] REQUEST_ID

The operator is the identity of the configured mode (``[identity] mode``): ``--user`` may only
repeat it, except in mode ``asserted``.

Workers read, de-identify and stage objects and Parquet files; the driver
gates and commits to Delta through deltalake (no Delta jars needed). Executors need
lakehouse: ship the wheel (``--py-files``) or a packed venv (``--archives``), see the README.
They find the project key and their zone credentials themselves; no task carries them.
Progress goes to stderr as a log line every ``[export] progress_log_seconds``.
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import SparkSession

from lakehouse.config import load_settings
from lakehouse.errors import LakehouseError
from lakehouse.export import run_export
from lakehouse.export.progress import log_to_stderr, logged_progress
from lakehouse.governance.identity import ASSERTED_WARNING, current_identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("request_id")
    parser.add_argument("--config", required=True)
    parser.add_argument("--user")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, require_file=True)
        if settings.identity.mode == "asserted":
            print(f"lakehouse: {ASSERTED_WARNING}", file=sys.stderr)
        operator = current_identity(settings, args.user).name
    except LakehouseError as exc:
        print(f"lakehouse: {exc}", file=sys.stderr)
        return exc.exit_code
    spark = SparkSession.builder.appName(f"lakehouse-export-{args.request_id}").getOrCreate()
    log_to_stderr()
    try:
        with logged_progress(settings.export.progress_log_seconds) as progress:
            outcome = run_export(
                settings, args.request_id, user=operator, engine="spark", spark=spark,
                progress=progress.advance, on_plan=progress.plan,
            )
    except LakehouseError as exc:
        print(f"lakehouse: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        spark.stop()
    print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
