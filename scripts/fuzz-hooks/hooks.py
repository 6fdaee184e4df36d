"""schemathesis hooks of scripts/fuzz: keep generated requests valid, but keep them from measuring the wrong thing.

- A read with `waitMs` waits that long for a version random data never reaches: valid, but thousands of them would
  spend the run waiting. Generated waits are capped at 50 ms; the waiting itself is covered by the tests.
- The dashboard's `from` and `to` must be in order and at most 366 days apart, which a schema cannot say: two
  generated dates are put in order and brought within 366 days, so a schema-valid request stays valid; anything that
  is not two dates is left as generated, so its rejection is still checked (the range rules have tests of their own).
- schemathesis sends one generated `Idempotency-Key` with many different bodies, and a key reused for a different
  request is rightly refused with 422 (docs/decisions/0003). A valid key gets a unique suffix, so each request is a
  first use; invalid keys are left as generated, so their rejection is still checked.
"""
import datetime
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_DAYS = 366


def as_day(value):
    """The date `value` writes as YYYY-MM-DD, or None."""
    if not isinstance(value, str) or not DAY.fullmatch(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@schemathesis.hook
def map_query(ctx, query):
    if query and isinstance(query.get("waitMs"), int) and query["waitMs"] > 50:
        query["waitMs"] = 50
    first, last = as_day((query or {}).get("from")), as_day((query or {}).get("to"))
    if first and last:
        first, last = sorted([first, last])
        if (last - first).days >= MAX_DAYS:
            last = first + datetime.timedelta(days=MAX_DAYS - 1)
        query["from"], query["to"] = first.isoformat(), last.isoformat()
    return query


@schemathesis.hook
def map_headers(ctx, headers):
    key = headers.get("Idempotency-Key") if headers else None
    if isinstance(key, str) and VALID_KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:222]}-{uuid.uuid4().hex}"
    return headers
