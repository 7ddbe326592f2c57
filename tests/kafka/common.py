"""What the client scripts here share.

Each script reads one JSON spec on standard input and prints one JSON result on standard output
(logs go to standard error). Records travel in Kafdo's JSON form (design/http-api.md): key, value
and header values are base64 or null, headers are a list of {"key", "value"} in order.
"""

import base64
import json
import sys


def read_spec():
    return json.load(sys.stdin)


def write_result(result):
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def decode(text):
    return None if text is None else base64.b64decode(text)


def encode(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def record_parts(record):
    """(key, value, headers) of a record in Kafdo's JSON form; headers as (str, bytes) pairs."""
    headers = [(h["key"], decode(h.get("value"))) for h in record.get("headers", [])]
    return decode(record.get("key")), decode(record.get("value")), headers


def consumed(partition, offset, timestamp, key, value, headers):
    """A record read back, in Kafdo's JSON form plus its partition."""
    return {
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp,
        "key": encode(key),
        "value": encode(value),
        "headers": [{"key": k, "value": encode(v)} for k, v in headers or []],
    }


def log(*args):
    print(*args, file=sys.stderr, flush=True)
