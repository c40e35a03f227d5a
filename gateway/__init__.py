"""gemini-gateway: a caching, image-aware gateway in front of the Gemini API."""

__version__ = "0.1.0"
