"""Long texts must not stall the service: an agent's routing p99 alone, then beside clients sending 20,000 characters.

Before the fix, four clients routing 20,000-character texts moved a normal
client's p99 from 19 ms to 500 ms: each took ~100 ms of the one event loop.
Now routing reads a bounded head and tail of the caller's account, and long
texts are routed in the thread pool. One worker, so that nothing hides the
effect; the baseline (the normal client alone) is measured in the same run.

    python bench/long_texts.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import report
from api_load import drive, running_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=40.0, help="the normal clients' requests/s")
    parser.add_argument("--long-rate", type=float, default=8.0, help="the long-text clients' requests/s")
    args = parser.parse_args()
    with running_service("hotline-bench-long-", days=45, seed=8, role="agent", workers=1) as (work, _, port):
        with (work / "calls.csv").open(encoding="utf-8-sig") as fh:
            transcripts = [row["transcript"] for row in csv.DictReader(fh)][:2000]
        normal = [{"text": t[:400]} for t in transcripts]
        long = [{"text": "".join(transcripts[i:i + 200])[:19_000]} for i in range(0, 2000, 200)]
        asyncio.run(drive(port, "/v1/route", normal[:200], 5, 3, 50))  # warm-up

        async def mixed() -> tuple[dict[str, float], dict[str, float]]:
            return await asyncio.gather(drive(port, "/v1/route", normal, 5, args.seconds, args.rate),
                                        drive(port, "/v1/route", long, 4, args.seconds, args.long_rate))

        figures: dict[str, object] = {"seconds": args.seconds, "workers": 1,
                                      "long text characters": len(long[0]["text"])}
        for key, value in asyncio.run(drive(port, "/v1/route", normal, 5, args.seconds, args.rate)).items():
            figures[f"baseline, normal clients alone: {key}"] = value
        beside, longs = asyncio.run(mixed())
        for key, value in beside.items():
            figures[f"normal clients beside 4 long-text clients: {key}"] = value
        for key, value in longs.items():
            figures[f"long-text clients: {key}"] = value
        figures["p99 ratio (beside / alone)"] = (figures["normal clients beside 4 long-text clients: p99 ms"]  # type: ignore[operator]
                                                 / figures["baseline, normal clients alone: p99 ms"])
        report("long_texts", figures)


if __name__ == "__main__":
    main()
