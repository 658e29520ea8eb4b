"""A small server on 127.0.0.1 speaking Gemini's generateContent wire format, for Vertex AI
(/v1beta1/projects/P/locations/L/publishers/google/models/M:generateContent, bearer token) and the
Developer API (/v1/models/M:generateContent, or v1beta; x-goog-api-key), plus an OAuth token endpoint
(/token) for refreshing Application Default Credentials.

It behaves as the real API does where that decides an outcome:
- thinking counts against ``maxOutputTokens``: a model thinks ``thinking`` tokens (at most its
  ``thinkingBudget``), and the review gets what is left of the cap; a reply that reaches the cap
  ends with finish reason MAX_TOKENS, with part of the review or, when thinking took it all, none;
- settings every request would be refused for answer 400 INVALID_ARGUMENT: a budget together
  with a level, a budget of 0 on a Pro model, a cap above ``max_output_limit``;
- Gemini 3 models are served on ``locations/global`` only; elsewhere 404 NOT_FOUND;
- every error body echoes the credential the request carried (a key or bearer token), so tests
  can check that none reaches a message.

Faults per paper title and attempt (``script(title, attempt)``): 429 with Retry-After, 429 with
``google.rpc.RetryInfo`` only ("429-retryinfo"), a 400 about the paper's own input ("too-long"),
503, a safety-blocked candidate, RECITATION with part of a review, a blocked prompt, an empty
candidate list, a review three times as long as usual ("long"), a model that thinks past the cap
("overthink"), a reply slower than the client's timeout.
"""

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
RETRY_INFO_DELAY = "0.3s"


def thinking_of(config: dict) -> dict:
    """The thinkingConfig as camelCase keys: the SDK sends its fields as named in Python
    (``thinking_budget``), which the API accepts as protobuf JSON does."""
    raw = config.get("thinkingConfig") or {}
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), key): value for key, value in raw.items()}


def review_for(title: str) -> str:
    verdict = "ACCEPTANCE" if sum(map(ord, title)) % 3 else "REJECTION"
    return f"## Summary\nA scripted teacher review of {title}.\n\nI recommend this paper for {verdict}."


class GeminiServer(LocalServer):
    def __init__(self, *, token: str | None = None, api_key: str | None = None, model: str = "gemini-test",
                 script: Callable[[str, int], str | None] | None = None, thinking: int = 40, cached: int = 0,
                 max_output_limit: int = 65536, token_script: Callable[[int], str | None] | None = None):
        self.token, self.api_key, self.model, self.script = token, api_key, model, script
        self.thinking, self.cached, self.max_output_limit = thinking, cached, max_output_limit
        self.token_script = token_script
        self.bodies: list[dict] = []
        self.paths: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}
        self.token_requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?")[0]
                if path == "/token":
                    return self._token()
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.paths[path] += 1
                refused = self._route(path)
                if refused is not None:
                    return refused
                text = "\n".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
                found = _TITLE_RE.search(text)
                title = found.group(1) if found else text[:40]
                invalid = self._invalid(body.get("generationConfig") or {})
                if invalid:
                    return self._error(400, "INVALID_ARGUMENT", invalid)
                with server._lock:
                    server.bodies.append(body)
                    server.attempts[title] += 1
                    attempt = server.attempts[title]
                    server.arrivals.setdefault(title, []).append(time.monotonic())
                fault = server.script(title, attempt) if server.script else None
                return self._answer(fault, title, len(text.split()), body.get("generationConfig") or {})

            def _route(self, path):
                vertex, developer = _VERTEX_RE.match(path), _DEVELOPER_RE.match(path)
                if not (vertex or developer):
                    return self._error(404, "NOT_FOUND", f"no route {path}")
                if vertex and server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                if developer and server.api_key and self.headers.get("x-goog-api-key") != server.api_key:
                    return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
                model = (vertex or developer).group(3 if vertex else 1)
                missing = model != server.model or (
                    vertex and model.startswith("gemini-3") and vertex.group(2) != "global")
                if missing:
                    where = f"projects/{vertex.group(1)}/locations/{vertex.group(2)}/" if vertex else ""
                    return self._error(404, "NOT_FOUND", f"Publisher Model `{where}publishers/google/models/{model}`"
                                                         " was not found or your project does not have access to it.")
                return None

            def _invalid(self, config):
                thinking = thinking_of(config)
                budget, cap = thinking.get("thinkingBudget"), config.get("maxOutputTokens")
                if budget is not None and thinking.get("thinkingLevel"):
                    return "Unable to submit request because thinking_budget and thinking_level are not supported " \
                           "together."
                if budget == 0 and "-pro" in server.model:
                    return "Budget 0 is invalid. This model only works in thinking mode."
                if cap is not None and cap >= server.max_output_limit:
                    return (f"Unable to submit request because it has a maxOutputTokens value of {cap} but the "
                            f"supported range is from 1 (inclusive) to {server.max_output_limit} (exclusive).")
                return None

            def _answer(self, fault, title, prompt_words, config):
                if fault == "429":
                    return self._error(429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.",
                                       {"Retry-After": "0.2"})
                if fault == "429-retryinfo":
                    return self._error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details=[
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}]},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": RETRY_INFO_DELAY}])
                if fault == "too-long":  # this paper's own input: only this paper fails
                    return self._error(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum "
                                                                "number of tokens allowed (1048576).")
                if fault == "503":
                    return self._error(503, "UNAVAILABLE", "The service is currently unavailable.")
                if fault == "slow":
                    server.release.wait(10.0)
                    self.close_connection = True
                    return None
                budget = thinking_of(config).get("thinkingBudget")
                cap = config.get("maxOutputTokens") or server.max_output_limit
                thinking = server.thinking if budget is None or budget < 0 else min(server.thinking, budget)
                thinking = min(cap, cap if fault == "overthink" else thinking)
                words = review_for(title).split(" ") * (3 if fault == "long" else 1)
                shown = words[:max(cap - thinking, 0)]
                finish = "MAX_TOKENS" if len(shown) < len(words) else "STOP"
                usage = {"promptTokenCount": prompt_words, "candidatesTokenCount": len(shown),
                         "thoughtsTokenCount": thinking, "totalTokenCount": prompt_words + len(shown) + thinking}
                if fault in ("blocked", "safety", "empty"):  # nothing was generated
                    usage = {"promptTokenCount": prompt_words, "totalTokenCount": prompt_words}
                if server.cached:
                    usage["cachedContentTokenCount"] = server.cached
                if fault == "blocked":
                    return self.send_json(200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage})
                if fault == "safety":
                    return self.send_json(200, {"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
                        "usageMetadata": usage})
                if fault == "empty":
                    return self.send_json(200, {"candidates": [], "usageMetadata": usage})
                if fault == "recitation":
                    shown, finish = words[:4], "RECITATION"
                parts = [{"text": "Thinking about it...", "thought": True}]
                if shown:
                    parts.append({"text": " ".join(shown)})
                self.send_json(200, {"candidates": [{"content": {"role": "model", "parts": parts},
                                                     "finishReason": finish}],
                                     "usageMetadata": usage, "modelVersion": server.model})

            def _token(self):
                with server._lock:
                    server.token_requests += 1
                    attempt = server.token_requests
                what = server.token_script(attempt) if server.token_script else None
                if what == "drop":  # no answer at all: the client sees a dropped connection
                    self.close_connection = True
                    return None
                if what == "invalid_grant":
                    return self.send_json(400, {"error": "invalid_grant",
                                                "error_description": "Token has been expired or revoked."})
                return self.send_json(200, {"access_token": server.token, "expires_in": 3600, "token_type": "Bearer"})

            def _error(self, code, status, message, headers=None, details=None):
                credential = self.headers.get("x-goog-api-key") or self.headers.get("Authorization") or "none"
                error = {"code": code, "message": f"{message} (request credential: {credential})", "status": status}
                if details:
                    error["details"] = details
                self.send_json(code, {"error": error}, headers)

        super().__init__(Handler)
        self.base_url = self.root_url
