"""The part of the exchange that talks to a hashfed node: feed paging, checkpoints, retries,
deletions, opinions. Standard library only, so it runs and is tested without pytx.

A checkpoint is the feed's cursor (a string; "" is the beginning). fetch_updates() yields, page by
page, a dict of updates keyed by (pytx signal type, signal) and the cursor to resume after that
page. A value is None when no member lists the signal any more (a deletion), otherwise
{"members": [...], "labels": {member: [labels]}}. Apply a page's updates with merge() and store
the cursor only after the page is applied: resuming from the stored cursor then repeats nothing
that matters (merge is idempotent) and misses nothing.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request

# hashfed's type names -> python-threatexchange's (pytx 1.2.16 signal type get_name()).
PYTX_NAMES = {"md5": "video_md5", "sha256": "video_sha256", "pdq": "pdq", "url": "url"}
# hashfed keeps a URL only as the SHA-256 of its canonical form; pytx has no such type.
HASHED_URL = "hashfed_url_sha256"
# pytx's names -> hashfed's, for opinions.
HASHFED_NAMES = {"video_md5": "md5", "video_sha256": "sha256", "pdq": "pdq", "url": "url", "md5": "md5", "sha256": "sha256"}


class HashfedError(Exception):
    """The node refused a request (the message is the node's) or could not be reached."""


def pytx_key(signal):
    """The (pytx type, signal) key of a hashfed signal {"type":..., "value":...}."""
    t, v = signal["type"], signal["value"]
    if t == "url" and v.startswith("sha256:"):
        return (HASHED_URL, v[len("sha256:"):])
    return (PYTX_NAMES.get(t, t), v)


def record_update(rec):
    """The update a feed record makes: (key, value), or None for a record about no signal."""
    sig = rec.get("signal")
    if not sig:
        return None
    members = list(rec.get("listed_by") or [])
    if not members:
        return pytx_key(sig), None
    labels = {}
    if rec.get("op") == "add" and not rec.get("rejected") and not rec.get("cutoff") and rec.get("member") in members:
        labels[rec["member"]] = list(rec.get("labels") or [])
    return pytx_key(sig), {"members": members, "labels": labels}


def merge(old, new):
    """Merges an update into what is stored: None deletes; otherwise the members are the new
    ones, with the labels known for each kept."""
    if new is None:
        return None
    members = list(new["members"])
    labels = {m: l for m, l in ((old or {}).get("labels") or {}).items() if m in members}
    labels.update({m: l for m, l in new["labels"].items() if m in members})
    return {"members": members, "labels": labels}


class NodeClient:
    """A client of one node's HTTP API (the node's http.listen address)."""

    def __init__(self, base_url, token="", page_size=1000, timeout=30.0, retries=5, backoff=0.5):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _request(self, method, path, body=None):
        """Sends a request, retrying what may pass (no answer, 429, 5xx); returns (headers, bytes)."""
        data = None
        headers = {"Accept": "application/x-ndjson, application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                msg = _error_message(e)
                if e.code != 429 and e.code < 500 or attempt == self.retries:
                    raise HashfedError("%s %s: %d %s" % (method, path.split("?")[0], e.code, msg)) from None
                wait = e.headers.get("Retry-After")
                time.sleep(float(wait) if wait and wait.isdigit() else delay)
            except (urllib.error.URLError, OSError) as e:
                if attempt == self.retries:
                    raise HashfedError("%s %s: %s" % (method, path.split("?")[0], e)) from None
                time.sleep(delay)
            delay = min(delay * 2, 10)
        raise AssertionError("unreachable")

    def feed_page(self, cursor, wait=0):
        """One page of the feed after cursor: (records, cursor to resume from)."""
        q = {"limit": str(self.page_size)}
        if cursor:
            q["cursor"] = cursor
        if wait:
            q["wait"] = str(wait)
        headers, body = self._request("GET", "/v1/feed?" + urllib.parse.urlencode(q))
        records = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        nxt = headers.get("Hashfed-Cursor")
        if nxt is None:
            raise HashfedError("the node's feed answer has no Hashfed-Cursor header")
        return records, nxt

    def fetch_updates(self, cursor):
        """Yields (updates, cursor) page by page from cursor to the end of the feed."""
        while True:
            records, nxt = self.feed_page(cursor)
            updates = {}
            for rec in records:
                u = record_update(rec)
                if u is None:
                    continue
                key, val = u
                updates[key] = merge(updates.get(key), val)
            yield updates, nxt
            if len(records) < self.page_size:
                return
            cursor = nxt

    def report_opinion(self, pytx_type, signal, stance, text=""):
        """Writes a signed opinion on the signal in this node's member's log; returns its index."""
        t = HASHFED_NAMES.get(pytx_type)
        value = signal
        if pytx_type == HASHED_URL:
            t, value = "url", "sha256:" + signal
        if t is None:
            raise HashfedError("hashfed has no signal type for pytx's %r" % pytx_type)
        _, body = self._request("POST", "/v1/opinion", {"type": t, "value": value, "stance": stance, "text": text})
        return json.loads(body)["index"]


def _error_message(e):
    try:
        b = json.loads(e.read())
        return b.get("error") or b.get("message") or ""
    except Exception:
        return e.reason or ""
