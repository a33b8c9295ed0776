"""Long fuzz run: the suite's schemathesis test (tests/reliability/test_fuzz.py) with many more generated cases.

    .venv/bin/python load_tests/fuzz.py                     # 200 examples per operation: ≥ 1,000 cases in all
    .venv/bin/python load_tests/fuzz.py --examples 400

It runs pytest on that test with R3HF_FUZZ_EXAMPLES set, against a server on 127.0.0.1 over the fake runner, and
prints how many cases each operation got and which statuses came back. Exits non-zero if any case produced a 5xx
or a response that does not match the schema, or if fewer than --min-cases cases ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/reliability/test_fuzz.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="generated examples per operation (≤ 2000)")
    parser.add_argument("--min-cases", type=int, default=1000, help="fail if fewer cases ran in all")
    args = parser.parse_args(argv)
    if not 1 <= args.examples <= 2000:
        parser.error("--examples must be in 1..2000")
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "cases.json"
        env = {**os.environ, "R3HF_FUZZ_EXAMPLES": str(args.examples), "R3HF_FUZZ_REPORT": str(report)}
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=ROOT,
                                env=env, timeout=3600)
        counts = json.loads(report.read_text()) if report.exists() else {}
    operations = {k: v for k, v in counts.items() if not k.startswith("status ")}
    total = sum(operations.values())
    print(json.dumps({"cases": total, "per_operation": operations,
                      "statuses": {k: v for k, v in counts.items() if k.startswith("status ")}}, indent=2))
    if result.returncode != 0:
        return result.returncode
    if total < args.min_cases:
        print(f"only {total} cases ran (< {args.min_cases}); raise --examples", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
