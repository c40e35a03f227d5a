"""A faithful local emulator of the Gemini Developer API (and its Vertex AI paths).

It speaks the real wire format, so the real google-genai SDK works against it, and it
reproduces the defect the gateway exists for: Nano Banana 2 calls that overlap while
sharing a reference image answer with an inconsistent character (see `defect`).
"""

from .app import create_emulator, create_upload_app
from .config import DEFECT_MODELS, KNOWN_MODELS, EmulatorConfig
from .content import decode_base64
from .defect import character_of, expected_character
from .errors import GoogleError
from .records import Record, generate_records, overlapping_pairs
from .responses import answer_png
from .server import Emulator, run_emulator
from .state import EmulatorState

__all__ = [
    "DEFECT_MODELS",
    "KNOWN_MODELS",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "GoogleError",
    "Record",
    "answer_png",
    "character_of",
    "create_emulator",
    "create_upload_app",
    "decode_base64",
    "expected_character",
    "generate_records",
    "overlapping_pairs",
    "run_emulator",
]
