"""Multipart upload to the lab's object store.

The store's API (README.md): POST ?uploads, GET ?uploads, PUT ?uploadId&partNumber,
GET ?uploadId, POST ?uploadId (complete), DELETE ?uploadId (abort).
This version starts over every time, and trusts the network with every byte.
"""

import json
import urllib.request
from urllib.parse import quote


def _call(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"{}")


def upload(store_url, key, path, part_size):
    """Upload the file at `path` to `key`."""
    base = f"{store_url}/{quote(key, safe='/')}"
    upload_id = _call("POST", f"{base}?uploads")["upload_id"]
    done = []
    with open(path, "rb") as f:
        number = 1
        while chunk := f.read(part_size):
            reply = _call("PUT", f"{base}?uploadId={upload_id}&partNumber={number}", chunk)
            done.append({"part_number": number, "etag": reply["etag"]})
            number += 1
    body = json.dumps({"parts": done}).encode()
    _call("POST", f"{base}?uploadId={upload_id}", body, {"Content-Type": "application/json"})
