"""One record per student from nbgrader's autograde pass to the coordinator: what the pass did.

``TrustedExecute`` (inside nbgrader's pass) writes, for each student it handles, one JSON file in
the folder named by ``TrustedExecute.record_dir`` (``make grade`` sets it; a plain ``nbgrader
autograde`` writes none).  The coordinator reads these files, never nbgrader's log text, to learn
whether the verdicts came from the workers' cache, whether the grading machinery failed (and why),
the seed, the grader's notes and the flagged cells.  A student without a record after a pass was
not graded by it.

Shape of a record (``<record_dir>/<quoted student id>.json``)::

    {"student": "1001", "from_cache": true, "machinery": null, "seed": 123, "isolated": true,
     "notes": ["..."], "seconds": 1.5, "flagged": ["test_x"]}

No nbgrader, no torch: importing this module is free.
"""
from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional


@dataclass
class PassRecord:
    """What nbgrader's pass did for one student."""

    student: str
    from_cache: bool = False  # the verdicts came from the workers' cache (not graded again in the pass)
    machinery: Optional[str] = None  # the machinery's failure (Spanish reason): the student stays ungraded
    seed: Optional[int] = None
    isolated: Optional[bool] = None  # graded in bubblewrap
    notes: List[str] = field(default_factory=list)  # the grader's Spanish notes (cells out of time, cuts...)
    seconds: float = 0.0  # sandbox seconds the student's grading took
    flagged: List[str] = field(default_factory=list)  # test cells the static review flagged


def record_path(folder: str, student: str) -> str:
    """The file of ``student``'s record in ``folder`` (any student id gives one plain file name)."""
    return os.path.join(folder, urllib.parse.quote(student, safe="") + ".json")


def write_record(folder: str, record: PassRecord) -> None:
    """Write ``record`` into ``folder`` (atomically: a reader sees the whole record or none)."""
    os.makedirs(folder, exist_ok=True)
    path = record_path(folder, record.student)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(record), fh, ensure_ascii=False)
    os.replace(tmp, path)


def _strings(value) -> List[str]:
    """The strings of a decoded JSON list ([] for anything else)."""
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def _number(value):
    """A decoded JSON number (not a boolean), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_record(data) -> Optional[PassRecord]:
    """A record from its decoded JSON; None when it does not have the record's shape."""
    if not isinstance(data, dict) or not isinstance(data.get("student"), str):
        return None
    machinery, seed, isolated = data.get("machinery"), _number(data.get("seed")), data.get("isolated")
    return PassRecord(data["student"], data.get("from_cache") is True,
                      machinery if isinstance(machinery, str) else None,
                      seed if isinstance(seed, int) else None,
                      isolated if isinstance(isolated, bool) else None,
                      _strings(data.get("notes")), float(_number(data.get("seconds")) or 0.0),
                      _strings(data.get("flagged")))


def read_record(folder: str, student: str) -> Optional[PassRecord]:
    """``student``'s record in ``folder``; None when there is none (or it is unreadable, or another
    student's)."""
    try:
        with open(record_path(folder, student), encoding="utf-8") as fh:
            record = parse_record(json.load(fh))
    except (OSError, ValueError):
        return None
    return record if record is not None and record.student == student else None


def read_records(folder: str) -> Dict[str, PassRecord]:
    """{student: record} for every record in ``folder``."""
    found: Dict[str, PassRecord] = {}
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    for name in names:
        if name.endswith(".json"):
            record = read_record(folder, urllib.parse.unquote(name[:-len(".json")]))
            if record is not None:
                found[record.student] = record
    return found


def forget(folder: str, students=None) -> None:
    """Remove the records of ``students`` from ``folder`` (every record when None)."""
    if not os.path.isdir(folder):
        return
    paths = ([os.path.join(folder, n) for n in os.listdir(folder)] if students is None
             else [record_path(folder, s) for s in students])
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
