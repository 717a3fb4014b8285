"""Facts about the Hugging Face Hub every fetch shares (the checkpoint, the tagger model, the
tokenizers): where it is (HF_ENDPOINT, as huggingface_hub reads it) and what to do for a gated repo."""

from __future__ import annotations

import importlib


def endpoint() -> str:
    """The Hub's base URL huggingface_hub uses (HF_ENDPOINT, default https://huggingface.co)."""
    value: str = importlib.import_module("huggingface_hub.constants").ENDPOINT
    return value.rstrip("/")


def gated_hint(repo_id: str) -> str:
    """Where to accept a gated repo's licence, and which variable carries the token."""
    return (f"{repo_id} is gated: accept its licence at {endpoint()}/{repo_id} (logged in), "
            f"then set HF_TOKEN to an access token of that account")
