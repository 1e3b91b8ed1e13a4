"""One governance decision in its own process, started at the same moment as others.

argv: config path, go-file path, JSON action {"do": "approve"|"reject"|"revoke", "request_id", "user", …}.
Prints one JSON line: {"status": <request status after>} or {"refused": <reason>}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from lakehouse import governance
from lakehouse.config import load_settings
from lakehouse.errors import Refused


def main() -> None:
    config, go, action = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    settings = load_settings(config)
    governance.get_request(settings, action["request_id"])  # warm up: imports, first table load
    Path(f"{go}.ready.{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.005)
    try:
        if action["do"] == "approve":
            req = governance.approve(
                settings,
                action["request_id"],
                user=action["user"],
                expires=date.fromisoformat(action["expires"]),
            )
        elif action["do"] == "reject":
            req = governance.reject(settings, action["request_id"], user=action["user"], reason="race")
        else:
            req = governance.revoke(settings, action["request_id"], user=action["user"], reason="race")
        print(json.dumps({"status": req.status}))
    except Refused as exc:
        print(json.dumps({"refused": str(exc)}))


if __name__ == "__main__":
    main()
