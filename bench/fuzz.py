"""Coverage-guided fuzzing (atheris) of the transcript parser, the PII masker and the importers.

A finding is any exception other than the clear error users get
(:class:`~hotline.errors.HotlineError`), or a masked text that still holds a
valid ID card or mobile number.

    python bench/fuzz.py --target transcript|pii|import [-atheris_runs=100000]
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from hotline.errors import HotlineError
    from hotline.ingest import CaseBuilder, ColumnMap, read_records
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy
    from hotline.text import pii, transcript

SCRATCH = Path(tempfile.mkdtemp(prefix="hotline-fuzz-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)  # libFuzzer's exit at the end of the runs still runs these
BUILDER = None


def fuzz_transcript(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(4000)
    parsed = transcript.parse(text)
    parsed.caller_account()
    transcript.caller_account(text)


def fuzz_pii(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(2000)
    masked = pii.mask(text)
    leaked = [s for s in pii.find(masked) if s.kind in ("mobile", "id")]
    if leaked:
        raise AssertionError(f"masked text still holds {leaked}: {masked!r}")
    if pii.mask(masked) != masked:
        raise AssertionError(f"masking is not idempotent: {masked!r}")


def fuzz_import(data: bytes) -> None:
    global BUILDER
    provider = atheris.FuzzedDataProvider(data)
    suffix = provider.PickValueInList([".csv", ".tsv", ".jsonl", ".xlsx"])
    path = SCRATCH / f"input{suffix}"
    path.write_bytes(provider.ConsumeBytes(8000))
    BUILDER = BUILDER or CaseBuilder(default_gazetteer(), default_taxonomy(), max_chars=2000, source="fuzz")
    try:
        header, records, _ = read_records(path)
        columns = ColumnMap().resolve(header)
    except HotlineError:
        return
    for record in records:
        if record.error:
            continue
        try:
            BUILDER.build(record.values, columns)
        except HotlineError:
            continue


TARGETS = {"transcript": fuzz_transcript, "pii": fuzz_pii, "import": fuzz_import}


def main() -> None:
    args = [a for a in sys.argv if not a.startswith("--target")]
    name = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--target=")), "pii")
    target = TARGETS[name]

    def one(data: bytes) -> None:
        try:
            target(data)
        except HotlineError:
            pass

    atheris.Setup(args, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
