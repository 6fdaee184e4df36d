"""schemathesis hooks of scripts/fuzz: keep generated requests valid, but keep them from measuring the wrong thing.

- A read with `waitMs` waits that long for a version random data never reaches: valid, but thousands of them would
  spend the run waiting. Generated waits are capped at 50 ms; the waiting itself is covered by the tests.
- schemathesis sends one generated `Idempotency-Key` with many different bodies, and a key reused for a different
  request is rightly refused with 422 (docs/decisions/0003). A valid key gets a unique suffix, so each request is a
  first use; invalid keys are left as generated, so their rejection is still checked.
"""
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def map_query(ctx, query):
    if query and isinstance(query.get("waitMs"), int) and query["waitMs"] > 50:
        query["waitMs"] = 50
    return query


@schemathesis.hook
def map_headers(ctx, headers):
    key = headers.get("Idempotency-Key") if headers else None
    if isinstance(key, str) and VALID_KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:222]}-{uuid.uuid4().hex}"
    return headers
