"""A small OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It speaks the chat-completions wire format (plus vLLM's /tokenize) and writes scripted reviews, so
the real ``openai`` SDK and peerbench's backend run unchanged against it. Faults are injected per
paper title and per attempt: 429 with Retry-After, 500, a hang past the client's timeout, a
dropped connection, a malformed JSON body, an empty choices list, 400 context-too-long, 401.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from local_http import LocalServer, QuietHandler

_TITLE_RE = re.compile(r"^Title: (.*)$", re.MULTILINE)

Script = Callable[[str, int], "str | None"]  # (title, attempt number from 1) -> fault name or None


def default_decision(title: str) -> float:
    """P(accept) the scripted reviewer holds for a paper: fixed by the title, spread over (0, 1)."""
    return (sum(map(ord, title)) % 97 + 1) / 99


class OpenAIChatServer(LocalServer):
    def __init__(self, model: str = "tiny-reviewer", *, port: int = 0, latency: float = 0.0, api_key: str | None = None,
                 tokenize: bool = True, max_model_len: int = 12288, script: Script | None = None,
                 p_accept: Callable[[str], float] = default_decision, logprobs: bool = True,
                 sample_by_seed: bool = False, gullible: tuple[str, ...] = (),
                 logprob_reply: Callable[[str], tuple[str, list[dict]]] | None = None,
                 reply: Callable[[dict], str] | None = None):
        self.model = model
        self.latency = latency
        self.api_key = api_key
        self.tokenize = tokenize
        self.max_model_len = max_model_len
        self.script = script
        self.p_accept = p_accept
        self.logprobs = logprobs
        self.sample_by_seed = sample_by_seed  # decide by a draw seeded with (title, seed), as sampling would
        self.gullible = gullible  # phrases that, found in the prompt, make this reviewer accept
        # title -> (content, logprobs "content" list as on the wire): a review and its token logprobs as given
        self.logprob_reply = logprob_reply
        self.reply = reply  # request body -> the review text (an echoing model, say); no logprobs
        self.hits: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()  # title -> chat requests seen
        self.arrivals: dict[str, list[float]] = {}  # title -> monotonic arrival times
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                server.hits["GET " + self.path] += 1
                if not self._authorised():
                    return
                if self.path == "/stats":  # for benchmarks: what the server saw
                    times = sorted(t for ts in server.arrivals.values() for t in ts)
                    return self.send_json(200, {"chat_requests": len(times), "max_in_flight": server.max_in_flight,
                                            "span_s": (times[-1] - times[0] + server.latency) if times else 0.0})
                if self.path == "/reset":
                    with server._lock:
                        server.arrivals.clear()
                        server.attempts.clear()
                        server.max_in_flight = 0
                    return self.send_json(200, {})
                if self.path.rstrip("/") == "/v1/models":
                    return self.send_json(200, {"object": "list", "data": [
                        {"id": server.model, "object": "model", "created": 0, "owned_by": "peerbench-tests"}]})
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.hits["POST " + self.path] += 1
                if not self._authorised():
                    return
                if self.path == "/tokenize" and server.tokenize:
                    text = "".join(m["content"] for m in body.get("messages", [])) or body.get("prompt", "")
                    return self.send_json(200, {"count": len(text.split()) + 8, "max_model_len": server.max_model_len,
                                            "tokens": []})
                if self.path != "/v1/chat/completions":
                    return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.bodies.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._chat(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _authorised(self) -> bool:
                sent = self.headers.get("Authorization") or ""
                if server.api_key and sent != f"Bearer {server.api_key}":
                    # Some servers echo the refused key: peerbench must mask it everywhere.
                    self.send_json(401, {"error": {"message": f"Incorrect API key provided: {sent.removeprefix('Bearer ')}",
                                                   "type": "invalid_request_error"}})
                    return False
                return True

            def _chat(self, body: dict) -> None:
                if body.get("model") != server.model:
                    return self.send_json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                user = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
                found = _TITLE_RE.search(user)
                title = found.group(1) if found else user[:40]
                with server._lock:
                    server.attempts[title] += 1
                    attempt = server.attempts[title]
                    server.arrivals.setdefault(title, []).append(time.monotonic())
                fault = server.script(title, attempt) if server.script else None
                if server.latency:
                    time.sleep(server.latency)
                if fault == "429":
                    return self.send_json(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0.2"})
                if fault == "500":
                    return self.send_json(500, {"error": {"message": "internal error"}})
                if fault == "hang":  # the client gives up first; nothing is sent
                    server.release.wait(10.0)
                    self.close_connection = True
                    return None
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if fault == "malformed":
                    return self.send_body(200, b'{"id": "x", "choices": [', "application/json")
                if fault == "error200":  # a 200 that carries an error object instead of choices
                    return self.send_json(200, {"error": {"message": "upstream provider overloaded", "code": 503}})
                if fault == "empty":
                    return self.send_json(200, {"id": "x", "object": "chat.completion", "created": 0,
                                            "model": server.model, "choices": []})
                if fault == "null":  # a 200 whose message has no content
                    reply = server.completion(title, body)
                    reply["choices"][0]["message"]["content"] = None
                    return self.send_json(200, reply)
                if fault == "400":
                    return self.send_json(400, {"error": {"message": "This model's maximum context length is 12288 tokens"
                                                      ". However, you requested 13000 tokens."}})
                if fault == "401":
                    return self.send_json(401, {"error": {"message": "Incorrect API key provided"}})
                self.send_json(200, server.completion(title, body))

        super().__init__(Handler, port)
        self.base_url = self.root_url + "/v1"

    def completion(self, title: str, body: dict) -> dict:
        if self.reply is not None:
            choice = {"index": 0, "message": {"role": "assistant", "content": self.reply(body)}, "finish_reason": "stop"}
            return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": self.model,
                    "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        if self.logprob_reply is not None:
            text, content = self.logprob_reply(title)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                      "logprobs": {"content": content} if body.get("logprobs") else None}
            return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": self.model,
                    "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": len(content),
                                                   "total_tokens": 10 + len(content)}}
        p = self.p_accept(title)
        user = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        if any(phrase in user for phrase in self.gullible):
            p = 0.99
        if self.sample_by_seed:
            import random

            word = "ACCEPTANCE" if random.Random(f"{title}/{body.get('seed')}").random() < p else "REJECTION"
        else:
            word = "ACCEPTANCE" if p >= 0.5 else "REJECTION"
        pieces = ["## Summary\n", f"A scripted review of {title}.\n\n", "## Final Recommendation\n",
                  "I recommend this paper for ", word[:3], word[3:], "."]
        text = "".join(pieces)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if body.get("logprobs") and self.logprobs:
            k = int(body.get("top_logprobs") or 1)
            content = []
            for piece in pieces:
                top = [{"token": piece, "logprob": 0.0}]
                if piece == word[:3]:
                    top = [{"token": "ACC", "logprob": math.log(p)}, {"token": "REJ", "logprob": math.log(1 - p)}]
                    chosen = top[0] if word == "ACCEPTANCE" else top[1]
                    content.append({"token": piece, "logprob": chosen["logprob"], "top_logprobs": top[:k]})
                    continue
                content.append({"token": piece, "logprob": 0.0, "top_logprobs": top[:k]})
            choice["logprobs"] = {"content": content}
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": self.model,
                "choices": [choice], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                                               "total_tokens": prompt_tokens + len(pieces)}}



def main() -> None:
    """Serve until killed: ``python tests/openai_server.py --port 8000 --latency 0.2``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat completion")
    parser.add_argument("--model", default="tiny-reviewer")
    args = parser.parse_args()
    with OpenAIChatServer(args.model, port=args.port, latency=args.latency) as server:
        print(f"serving {args.model} at {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
