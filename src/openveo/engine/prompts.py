"""Encoded prompts, kept for reuse.

A service encodes the same negative prompt (usually the default) for nearly every job, and the same
prompt again for retries, extra videos and seed variations. The text encoder (umT5-XXL for Wan, 5.7B
parameters) costs a forward pass each time; a cached embedding costs nothing and is the same tensor.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

import torch


class PromptCache:
    def __init__(self, pipe: Any, family: str, dtype: torch.dtype, size: int = 16) -> None:
        self.pipe = pipe
        self.family = family
        self.dtype = dtype  # the denoiser's: the pipeline then passes these very tensors on unchanged
        self.size = size
        self.max_length = inspect.signature(pipe.__call__).parameters["max_sequence_length"].default
        self._entries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()

    def arguments(self, prompt: str, negative_prompt: str | None, guided: bool = True) -> dict[str, Any]:
        """Pipeline call arguments that replace `prompt` and `negative_prompt` with their embeddings.
        Unguided (guidance 1: the fast presets), the negative prompt is never used, so never encoded."""
        positive, positive_mask = self._encoded(prompt)
        args: dict[str, Any] = {"prompt_embeds": positive}
        if positive_mask is not None:  # LTX attends with the text's padding mask
            args["prompt_attention_mask"] = positive_mask
        if guided:
            negative, negative_mask = self._encoded(negative_prompt or "")  # the pipelines' own default
            args["negative_prompt_embeds"] = negative
            if negative_mask is not None:
                args["negative_prompt_attention_mask"] = negative_mask
        return args

    def discard(self, text: str) -> None:
        """Forget one prompt (the benchmark times each run with its prompt not yet encoded)."""
        self._entries.pop(text, None)

    def _encoded(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if text in self._entries:
            self._entries.move_to_end(text)
            return self._entries[text]
        with torch.no_grad():
            out = self.pipe.encode_prompt(
                prompt=text,
                do_classifier_free_guidance=False,
                max_sequence_length=self.max_length,
                device=self.pipe._execution_device,
            )
        embeds, mask = (out[0], out[1]) if self.family == "ltx" else (out[0], None)
        entry = (embeds.to(self.dtype), mask)
        self._entries[text] = entry
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry
