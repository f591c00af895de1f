"""Multipart upload to the lab's object store, resumable, every part checksummed.

The store's API (README.md): POST ?uploads, GET ?uploads, PUT ?uploadId&partNumber,
GET ?uploadId, POST ?uploadId (complete), DELETE ?uploadId (abort).
"""

import base64
import hashlib
import json
import urllib.error
import urllib.request
from urllib.parse import quote

RETRIES = 3


def _call(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"{}")


def _parts(path, part_size):
    with open(path, "rb") as f:
        number = 1
        while chunk := f.read(part_size):
            yield number, chunk
            number += 1


def upload(store_url, key, path, part_size):
    """Upload the file at `path` to `key`, resuming an upload already open for it."""
    base = f"{store_url}/{quote(key, safe='/')}"
    open_uploads = _call("GET", f"{base}?uploads")["uploads"]
    if open_uploads:
        upload_id = open_uploads[-1]["upload_id"]
        held = _call("GET", f"{base}?uploadId={upload_id}")["parts"]
    else:
        upload_id = _call("POST", f"{base}?uploads")["upload_id"]
        held = []
    etags = {p["part_number"]: p["etag"] for p in held}
    sizes = {p["part_number"]: p["size"] for p in held}
    done = []
    for number, chunk in _parts(path, part_size):
        md5 = hashlib.md5(chunk).hexdigest()
        if etags.get(number) == md5 and sizes.get(number) == len(chunk):
            done.append({"part_number": number, "etag": md5})  # the store has it already
            continue
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        url = f"{base}?uploadId={upload_id}&partNumber={number}"
        for attempt in range(RETRIES):
            try:
                reply = _call("PUT", url, chunk)
                break
            except urllib.error.HTTPError as error:
                if error.code != 400 or attempt == RETRIES - 1:
                    raise  # a 400 BadDigest: damaged on the way, send it again
        done.append({"part_number": number, "etag": reply["etag"]})
    body = json.dumps({"parts": done}).encode()
    _call("POST", f"{base}?uploadId={upload_id}", body, {"Content-Type": "application/json"})
