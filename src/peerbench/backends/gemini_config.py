"""What a Gemini request is allowed to ask, decided before any request is sent: the options of
`vertex` and `gemini`, the combinations the API would refuse with a 400 on every paper, the
default Vertex location per model, and the output cap.

``max_output_tokens`` covers thinking *and* the answer. Sending the task's max_tokens alone lets
thinking eat the review (a 1,024-token budget under a 1,400-token cap leaves about 376 tokens), so
the cap sent is the task's max_tokens plus the thinking budget; when thinking has no fixed size
(``-1``, a thinking level, or the model's default) it is max_tokens plus ``thinking_allowance``.
A reply that still reaches the cap is a failed paper with that reason, never a review.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from peerbench.backends import BackendOptions, EnvName, ServerURL
from peerbench.errors import ConfigError

# Gemini 3 preview models are served on the global endpoint only; elsewhere Vertex answers 404.
GLOBAL_ONLY_PREFIX = "gemini-3"
REGIONAL_DEFAULT = "us-central1"
# Models that do not think: nothing to add to their cap (a larger cap can exceed their output limit).
NON_THINKING_PREFIXES = ("gemini-1.", "gemini-2.0", "gemma-")


class GeminiOptions(BackendOptions):
    thinking_budget: int | None = Field(None, ge=-1, description="thinking tokens, added to the output cap; -1 lets "
                                        "the model decide", json_schema_extra={"flag": "--thinking-budget"})
    thinking_level: Literal["minimal", "low", "medium", "high", "xhigh"] | None = Field(
        None, description="Gemini 3's thinking control (instead of --thinking-budget)",
        json_schema_extra={"flag": "--thinking-level"})
    thinking_allowance: int = Field(8192, ge=0, description="tokens added to the output cap for thinking when it "
                                                            "has no fixed budget (-1, a level, the model's default)")
    timeout: float = Field(600.0, gt=0, le=86400, description="seconds one whole request may take, reply included")
    max_retries: int = Field(6, ge=0, le=100)
    retry_backoff: float = Field(2.0, ge=0, le=600)
    base_url: ServerURL | None = Field(None, description="another endpoint (a proxy, a regional or test server)",
                                       json_schema_extra={"flag": "--base-url"})
    price_input_per_m: float | None = Field(None, ge=0, description="USD per million prompt tokens")
    price_cached_input_per_m: float | None = Field(None, ge=0, description="USD per million prompt tokens read "
                                                                           "from Gemini's context cache")
    price_output_per_m: float | None = Field(None, ge=0, description="USD per million output + thinking tokens")


class VertexOptions(GeminiOptions):
    project: str | None = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_PROJECT"),
                                json_schema_extra={"flag": "--project"})
    location: str | None = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_LOCATION") or None,
                                 description="default: $GOOGLE_CLOUD_LOCATION, else global for Gemini 3 models "
                                             "and us-central1 for the rest", json_schema_extra={"flag": "--location"})
    access_token_env: EnvName | None = Field(None, description="take an OAuth access token from this variable "
                                                           "instead of Application Default Credentials")
    use_metadata_server: bool = Field(False, description="allow ADC to ask the GCE metadata server")


class DeveloperOptions(GeminiOptions):
    api_key_env: EnvName | None = Field(None, description="default: GEMINI_API_KEY, then GOOGLE_API_KEY",
                                        json_schema_extra={"flag": "--api-key-env"})


def base_name(model: str) -> str:
    """``gemini-3.1-pro-preview`` from ``models/...`` or ``publishers/google/models/...``."""
    return model.rsplit("/", 1)[-1].lower()


def default_location(model: str) -> str:
    return "global" if base_name(model).startswith(GLOBAL_ONLY_PREFIX) else REGIONAL_DEFAULT


def thinks(model: str) -> bool:
    return not base_name(model).startswith(NON_THINKING_PREFIXES)


def check_options(model: str, options: GeminiOptions) -> None:
    """Combinations the API answers with a 400 for every paper, refused before the first one."""
    budget, level = options.thinking_budget, options.thinking_level
    if level is not None and budget is not None:
        raise ConfigError("--thinking-level: give --thinking-level or --thinking-budget, not both (Gemini refuses "
                          "the pair with HTTP 400)")
    if budget == 0 and "-pro" in base_name(model):
        raise ConfigError(f"--thinking-budget 0: {model} cannot turn thinking off (Pro models always think); give "
                          "128 or more, or -1 to let the model decide")
    prices = (options.price_input_per_m, options.price_cached_input_per_m, options.price_output_per_m)
    if any(p is not None for p in prices) and any(p is None for p in prices):
        raise ConfigError("--backend-arg price_cached_input_per_m: a cost estimate needs price_input_per_m, "
                          "price_cached_input_per_m and price_output_per_m (Gemini bills prompt tokens served from "
                          "its cache at a lower rate; give the input price for an upper bound)")


def output_cap(max_tokens: int, model: str, options: GeminiOptions) -> int:
    """max_output_tokens: the answer's max_tokens plus room for thinking (see the module docstring)."""
    budget = options.thinking_budget
    if budget is not None and budget >= 0:
        return max_tokens + budget
    if budget == -1 or options.thinking_level is not None or thinks(model):
        return max_tokens + options.thinking_allowance
    return max_tokens


def thinking_config(options: GeminiOptions) -> dict[str, Any] | None:
    if options.thinking_level is not None:
        return {"thinking_level": options.thinking_level.upper()}
    if options.thinking_budget is not None:
        return {"thinking_budget": options.thinking_budget}
    return None


def cost_usd(options: GeminiOptions, prompt: int | None, cached: int | None, output: int | None,
             thinking: int | None) -> float | None:
    """Prompt tokens (less those read from the cache) at the input price, cached ones at theirs,
    output and thinking at the output price; None without prices."""
    if options.price_input_per_m is None or options.price_output_per_m is None:
        return None
    cached = min(cached or 0, prompt or 0)
    fresh = (prompt or 0) - cached
    total = (fresh * options.price_input_per_m + cached * (options.price_cached_input_per_m or 0.0)
             + ((output or 0) + (thinking or 0)) * options.price_output_per_m)
    return round(total / 1e6, 8)
