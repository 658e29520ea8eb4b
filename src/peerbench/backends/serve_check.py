"""`peerbench serve-check`: what a user wants to know about a server before a 95-paper run.

Each failure is one line that says what is wrong (down, key refused, model not served, context too
short for the task) rather than the first of many failed requests.
"""

from __future__ import annotations

import time

from peerbench.backends import secret_from_env
from peerbench.backends.openai_compat import (MALFORMED, check_context, check_models, served_models, server_error,
                                              server_root)
from peerbench.backends.token_counting import server_counter
from peerbench.errors import BackendError, MissingDependency
from peerbench.task import Task


async def check_server(base_url: str, model: str | None, api_key_env: str = "OPENAI_API_KEY",
                       task: Task | None = None) -> list[str]:
    """Lines describing a healthy server; raises BackendError with one line otherwise."""
    try:
        import openai
    except ImportError:
        raise MissingDependency("openai", "openai") from None
    api_key = secret_from_env(api_key_env) or "EMPTY"
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60.0)
    try:
        if model is not None:
            served = await check_models(client, base_url, model, api_key_env)
        else:
            served = await served_models(client, base_url, api_key_env)
            if served and len(served) == 1:
                model = served[0]
            elif served:
                raise BackendError(f"{base_url} serves several models ({', '.join(served)}); pass --model")
            else:
                raise BackendError(f"{base_url} lists no models; pass --model")
        lines = [f"server: {base_url} is up" + (f"; serves {', '.join(served)}" if served else "")]

        counter = server_counter(server_root(base_url), model, api_key)
        if counter is None:
            lines.append("token counting: no /tokenize route; peerbench uses the model's local tokenizer "
                         "if transformers has it, else a character budget")
        else:
            limit = counter.max_model_len
            lines.append(f"token counting: {counter.url}" + (f" (max_model_len {limit})" if limit else ""))
            if task is not None:
                check_context(base_url, model, limit, task)

        started = time.perf_counter()
        messages = [{"role": "user", "content": "Reply with one word."}]
        try:
            reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=4,
                                                         temperature=0.0, logprobs=True, top_logprobs=2)
            logprobs = bool(getattr(getattr(reply.choices[0], "logprobs", None), "content", None)) \
                if reply.choices else False
        except openai.BadRequestError:
            reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=4,
                                                         temperature=0.0)
            logprobs = False
        if not getattr(reply, "choices", None):
            raise BackendError(f"{base_url}: a test chat completion came back with no choices")
        lines.append(f"chat completion: {model} answered in {time.perf_counter() - started:.2f} s; "
                     f"logprobs {'returned (P(accept) available)' if logprobs else 'not returned (no P(accept))'}")
        lines.append(f"ok: peerbench run --backend openai --base-url {base_url} --model {model}")
        return lines
    except (openai.OpenAIError, *MALFORMED) as exc:  # a garbage body: one line, not a traceback
        error = server_error(exc, base_url, api_key_env, f"a test chat completion for {model!r}", 60.0, api_key)
        if error is None:
            raise
        raise error from None
    finally:
        await client.close()
