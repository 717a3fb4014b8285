"""Secrets, declared once (DESIGN.md "Non-negotiables"): they come from the environment only and
never reach a log, a file, a plan or a model's metadata.

    SECRET_ENV               the environment variables whose values are secrets wherever they appear
    SECRET_OPTIONS           sd-scripts options that carry a secret, and the variable to use instead
    is_secret_name(name)     an option or key named like a secret (huggingface_token, wandb_api_key)
    secret_values(env)       the values to redact, longest first
    looks_like_secret(text)  a token, key or password pattern in a value, or a secret's value itself
    redact(text, secrets)    the text with every secret value replaced by ***
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

SECRET_ENV = (
    "DANBOORU_LOGIN",
    "DANBOORU_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_TOKEN",
    "WANDB_API_KEY",
)

# sd-scripts options whose value is a secret: refused in a recipe (it is written into plans and run records).
SECRET_OPTIONS = {
    "huggingface_token": "HF_TOKEN",
    "wandb_api_key": "WANDB_API_KEY",
}

# A name ending with one of these carries a secret value (--huggingface_token, --wandb_api_key);
# max_token_length and tokenizer_cache_dir do not.
_SECRET_ENDINGS = ("token", "api_key", "apikey", "password", "secret")

# Patterns of well-known tokens and keys, and "password=…"-style assignments.
_SECRET_PATTERN = re.compile(
    r"\bhf_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9_-]{20,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"
    r"|\bAKIA[0-9A-Z]{16}\b|-----BEGIN [A-Z ]*PRIVATE KEY|\bBearer\s+\S{12,}|://[^/\s:@]+:[^/\s@]+@"
    r"|(?:api[_-]?key|token|password|passwd|secret)\s*[=:]\s*\S+", re.IGNORECASE)

REDACTED = "***"


def is_secret_name(name: str) -> bool:
    return name.lower().replace("-", "_").endswith(_SECRET_ENDINGS)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values to redact: the secret environment variables of ours and of a child's environment."""
    values = set()
    for source in (os.environ, env or {}):
        for name in SECRET_ENV:
            value = source.get(name)
            if value and len(value) >= 4:
                values.add(value)
    return sorted(values, key=len, reverse=True)


def looks_like_secret(value: str) -> bool:
    return bool(_SECRET_PATTERN.search(value)) or any(secret in value for secret in secret_values())


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
