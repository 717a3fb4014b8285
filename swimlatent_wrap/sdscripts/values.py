"""Values sd-scripts accepts where its parser accepts any string (facts §0.4, §2).

`optimizer_type` and `lr_scheduler` are free strings in sd-scripts' parser; a typo only fails when
training starts. The scheduler names come from the manifest (generated from transformers/diffusers
in sd-scripts' environment); the optimizer names below are the ones `train_util.get_optimizer`
matches at the pinned commit (case-insensitively), plus the torch.optim classes it falls back to
(case-sensitively). A dotted `module.Class` path is passed through as sd-scripts does.
"""

from __future__ import annotations

# train_util.get_optimizer at 48d368fa: names compared after .lower().
NAMED_OPTIMIZERS = (
    "AdamW", "AdamW8bit", "SGDNesterov8bit", "Lion8bit", "PagedLion8bit", "PagedAdamW8bit",
    "PagedAdamW", "PagedAdamW32bit", "Lion", "SGDNesterov", "DAdaptation", "DAdaptAdamPreprint",
    "DAdaptAdaGrad", "DAdaptAdam", "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion", "DAdaptSGD",
    "Prodigy", "Adafactor", "RAdamScheduleFree", "AdamWScheduleFree", "SGDScheduleFree",
)

# The fallback: getattr(torch.optim, name), case-sensitive (torch 2.x).
TORCH_OPTIMIZERS = (
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam",
    "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam",
)


def optimizer_problem(value: str) -> str | None:
    """None when sd-scripts would construct this optimizer name, else what is wrong."""
    import difflib

    if value == "" or value.lower() in {n.lower() for n in NAMED_OPTIMIZERS}:
        return None
    if value in TORCH_OPTIMIZERS:
        return None
    if "." in value and all(part.isidentifier() for part in value.split(".")):
        return None  # e.g. "bitsandbytes.optim.AdEMAMix8bit": imported by sd-scripts as given
    known = list(NAMED_OPTIMIZERS) + [n for n in TORCH_OPTIMIZERS if n not in NAMED_OPTIMIZERS]
    by_lower = {n.lower(): n for n in known}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"; did you mean {by_lower[close[0]]!r}?" if close else f"; sd-scripts knows {', '.join(NAMED_OPTIMIZERS)} (or a dotted module.Class path)"
    return f"unknown optimizer_type {value!r}{hint}"


def scheduler_problem(value: str, known: tuple[str, ...]) -> str | None:
    import difflib

    if value in known or value.startswith("adafactor:"):
        return None
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; sd-scripts accepts {', '.join(known)}"
    return f"unknown lr_scheduler {value!r}{hint}"
