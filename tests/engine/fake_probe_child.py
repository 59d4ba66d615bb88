"""A misbehaving probe process for tests/engine/test_probe_processes.py: reads its job, says
ready, waits for go, then does what the last segment of the job's URL says: ``huge`` writes a
report far over the size limit, ``liar`` reports requests it was not given, ``crash`` exits
with code 3 without reporting."""

from __future__ import annotations

import json
import os
import sys

from certification.engine.histogram import Histogram

job = json.loads(sys.stdin.readline())
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
behaviour = job["request"]["url"].rsplit("/", 1)[-1]
if behaviour == "crash":
    os._exit(3)
if behaviour == "huge":
    sys.stdout.write("x" * (40 * 1024 * 1024) + "\n")
elif behaviour == "liar":
    report = {"histogram": Histogram().to_dict(), "statuses": {"200": 2_000_000_000},
              "errors_by_kind": {}, "wall_ms": 1.0, "cpu_percent": 1.0, "wait_percent": None,
              "busy_percent": 1.0,
              "lag_max_ms": 0.0, "lag_p95_ms": 0.0, "processes": 1}  # fmt: skip
    sys.stdout.write(json.dumps(report) + "\n")
sys.stdout.flush()
