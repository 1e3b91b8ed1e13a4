"""spark-submit entry point for an export on Spark.

    spark-submit jobs/export_spark.py --config lakehouse.toml --user olga REQUEST_ID

Workers read, de-identify and stage objects and Parquet files; the driver
gates and commits to Delta through deltalake (no Delta jars needed).
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import SparkSession

from lakehouse.config import load_settings
from lakehouse.errors import LakehouseError
from lakehouse.export import run_export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("request_id")
    parser.add_argument("--config", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName(f"lakehouse-export-{args.request_id}").getOrCreate()
    try:
        outcome = run_export(load_settings(args.config, require_file=True), args.request_id, user=args.user, engine="spark", spark=spark)
    except LakehouseError as exc:
        print(f"lakehouse: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        spark.stop()
    print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
