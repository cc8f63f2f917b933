# CityWatch services (ingest, simulator; later analytics and the API): one image, `citywatch <command>`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CITYWATCH_VAR_DIR=/var/lib/citywatch
WORKDIR /app
COPY pyproject.toml README.md ./
COPY citywatch citywatch
COPY devices devices
COPY ingest ingest
COPY analytics analytics
COPY api api
COPY dashboards dashboards
COPY firmware_sim firmware_sim
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --home /var/lib/citywatch citywatch \
    && mkdir -p /var/lib/citywatch && chown citywatch /var/lib/citywatch
USER citywatch
ENTRYPOINT ["citywatch"]
CMD ["--help"]
