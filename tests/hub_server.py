"""A hub on loopback for tests: a small HTTP server that answers the requests huggingface_hub makes (a repository's
file list, a HEAD per file with its commit, ETag and size, and ranged GETs), serving files under real repository
names. Point the download code at `Hub.endpoint`."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
HF_FILES = ("config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", "model.safetensors")


class Hub:
    """repo id -> {file name -> bytes}; records every request it answers."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.drop_after: int | None = None  # cut the next file GET off after this many bytes
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _file(self):
                for repo, files in hub.repos.items():
                    prefix = f"/{repo}/resolve/"
                    if self.path.startswith(prefix):
                        _revision, _, name = self.path[len(prefix):].partition("/")
                        return files.get(name)
                return None

            def _send(self, status, body=b"", headers=None, send_body=True):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                hub.requests.append(("HEAD", self.path, None))
                data = self._file()
                if data is None:
                    return self._send(404, send_body=False)
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self):  # noqa: N802
                hub.requests.append(("GET", self.path, self.headers.get("Range")))
                if self.path.startswith("/api/models/"):
                    repo = self.path[len("/api/models/"):].split("/revision/")[0].split("?")[0]
                    if repo not in hub.repos:
                        return self._send(404, b'{"error": "Repository not found"}')
                    siblings = [{"rfilename": n, "size": len(d)} for n, d in hub.repos[repo].items()]
                    body = json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                data = self._file()
                if data is None:
                    return self._send(404)
                wanted = self.headers.get("Range")
                if hub.drop_after is not None and not wanted:
                    cut, hub.drop_after = hub.drop_after, None
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if wanted:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    return self._send(206, data[start:], {
                        "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
                return self._send(200, data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
