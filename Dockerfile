FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GEMINI_GATEWAY_CACHE_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY config ./config
RUN pip install --no-cache-dir '.[fast]' \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
    && mkdir -p /data && chown gateway /data

USER gateway
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/_gateway/healthz', timeout=2).status == 200 else 1)"
CMD ["gemini-gateway", "serve", "--host", "0.0.0.0"]
