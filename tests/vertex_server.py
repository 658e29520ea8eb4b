"""A small server on 127.0.0.1 speaking Gemini's generateContent wire format, for Vertex AI
(/v1beta1/projects/P/locations/L/publishers/google/models/M:generateContent, bearer token) and the
Developer API (/v1beta/models/M:generateContent, x-goog-api-key). Faults per paper title and
attempt: 429 RESOURCE_EXHAUSTED with Retry-After, 503, a safety-blocked candidate, a blocked
prompt with no candidates, an empty candidate list, a reply slower than the client's timeout."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from local_http import LocalServer, QuietHandler

_TITLE_RE = re.compile(r"^Title: (.*)$", re.MULTILINE)
_VERTEX_RE = re.compile(r"^/v1beta1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+)"
                        r":generateContent$")
_DEVELOPER_RE = re.compile(r"^/v1(?:beta)?/models/([^/:]+):generateContent$")


class GeminiServer(LocalServer):
    def __init__(self, *, token: str | None = None, api_key: str | None = None, model: str = "gemini-test",
                 script: Callable[[str, int], str | None] | None = None):
        self.token, self.api_key, self.model, self.script = token, api_key, model, script
        self.bodies: list[dict] = []
        self.paths: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                vertex, developer = _VERTEX_RE.match(path), _DEVELOPER_RE.match(path)
                with server._lock:
                    server.paths[path] += 1
                if not (vertex or developer):
                    return self._error(404, "NOT_FOUND", f"no route {path}")
                if vertex and server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                if developer and server.api_key and self.headers.get("x-goog-api-key") != server.api_key:
                    return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
                model = (vertex or developer).group(3 if vertex else 1)
                if model != server.model:
                    return self._error(404, "NOT_FOUND", f"Publisher Model `{model}` was not found.")
                text = "\n".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
                found = _TITLE_RE.search(text)
                title = found.group(1) if found else text[:40]
                with server._lock:
                    server.bodies.append(body)
                    server.attempts[title] += 1
                    attempt = server.attempts[title]
                    server.arrivals.setdefault(title, []).append(time.monotonic())
                fault = server.script(title, attempt) if server.script else None
                if fault == "429":
                    return self._error(429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.",
                                       {"Retry-After": "0.2"})
                if fault == "503":
                    return self._error(503, "UNAVAILABLE", "The service is currently unavailable.")
                if fault == "slow":
                    server.release.wait(10.0)
                    self.close_connection = True
                    return None
                usage = {"promptTokenCount": len(text.split()), "candidatesTokenCount": 9, "thoughtsTokenCount": 40,
                         "totalTokenCount": len(text.split()) + 49}
                if fault == "blocked":
                    return self.send_json(200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage})
                if fault == "safety":
                    return self.send_json(200, {"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
                        "usageMetadata": usage})
                if fault == "empty":
                    return self.send_json(200, {"candidates": [], "usageMetadata": usage})
                verdict = "ACCEPTANCE" if sum(map(ord, title)) % 3 else "REJECTION"
                review = f"## Summary\nA scripted teacher review of {title}.\n\nI recommend this paper for {verdict}."
                self.send_json(200, {"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Thinking about it...", "thought": True}, {"text": review}]}, "finishReason": "STOP"}],
                    "usageMetadata": usage, "modelVersion": server.model})

            def _error(self, code, status, message, headers=None):
                self.send_json(code, {"error": {"code": code, "message": message, "status": status}}, headers)

        super().__init__(Handler)
        self.base_url = self.root_url
