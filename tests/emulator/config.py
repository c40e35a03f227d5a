"""Emulator settings and the model catalogue it answers for."""

from __future__ import annotations

from dataclasses import dataclass

#: Nano Banana 2: the models whose parallel calls sharing reference images drift.
DEFECT_MODELS: frozenset[str] = frozenset(
    {"gemini-3.1-flash-image", "gemini-3.1-flash-image-preview"}
)

#: Models the emulator knows, in listing order, with (display name, input, output limits).
KNOWN_MODELS: dict[str, tuple[str, int, int]] = {
    "gemini-2.5-flash": ("Gemini 2.5 Flash", 1_048_576, 65_536),
    "gemini-2.5-pro": ("Gemini 2.5 Pro", 1_048_576, 65_536),
    "gemini-2.0-flash": ("Gemini 2.0 Flash", 1_048_576, 8_192),
    "gemini-2.5-flash-image": ("Nano Banana", 32_768, 32_768),
    "gemini-3.1-flash-image-preview": ("Nano Banana 2 (preview)", 131_072, 32_768),
    "gemini-3.1-flash-image": ("Nano Banana 2", 131_072, 32_768),
    "gemini-3-pro-image-preview": ("Nano Banana Pro (preview)", 65_536, 32_768),
}


@dataclass
class EmulatorConfig:
    """Knobs for one emulator; handlers read it per request, so tests may change it live."""

    valid_keys: frozenset[str] = frozenset({"test-key"})
    valid_bearer_tokens: frozenset[str] = frozenset({"test-token"})
    #: Simulated upstream time per call (seconds); 0 means no sleep at all.
    latency: float = 0.0
    #: When set, latency is drawn uniformly from [lo, hi] per call instead.
    latency_range: tuple[float, float] | None = None
    stream_events: int = 3
    stream_event_delay: float = 0.0
    #: Size of the answer image; > 0 also adds an image to non-image models' answers.
    answer_image_bytes: int = 0
    #: Answer image size for image models when answer_image_bytes is 0.
    default_image_bytes: int = 256
    models: tuple[str, ...] = tuple(KNOWN_MODELS)
    defect_models: frozenset[str] = DEFECT_MODELS
    #: Benchmarks turn this off so long runs do not hold every request body in memory.
    keep_records: bool = True

    def answer_image_size(self, model: str) -> int:
        """Bytes of the image part to answer with for `model`; 0 means no image part."""
        if self.answer_image_bytes > 0:
            return self.answer_image_bytes
        return self.default_image_bytes if "image" in model else 0

    def knows(self, model: str) -> bool:
        """Whether `model` exists (listing and generate both consult this)."""
        return model in self.models

    def model_info(self, model: str) -> tuple[str, int, int]:
        """Display name and token limits of a known model."""
        return KNOWN_MODELS.get(model, (model, 32_768, 8_192))
