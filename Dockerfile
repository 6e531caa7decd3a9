# fullstory-pipeline as a container image for Kubernetes CronJobs, Cloud Run jobs and the like.
# NOT VERIFIED: no Docker daemon was available where this was written (docs/release.md, "Container
# image"). What the image runs is the wheel that tests/test_release.py builds and runs outside
# the checkout.
#
#   docker build -t fullstory-dlt .
#   docker build --build-arg EXTRAS=snowflake -t fullstory-dlt .
#   docker run --rm -e SOURCES__FULLSTORY__API_KEY -e DESTINATION__BIGQUERY__CREDENTIALS fullstory-dlt
#   docker run --rm ... fullstory-dlt run --destination snowflake --window 1h
#
# Configuration and secrets come from the environment at run time (the scheduler's secrets), or a
# .dlt/ directory mounted at /home/fullstory/.dlt; none is baked into the image (.dockerignore).
# The container's disk is thrown away: load into a warehouse or MotherDuck, or mount a volume for
# a DuckDB file. The pipeline state comes back from the destination at every start.

# Pin the base image by digest in your own build (docker buildx imagetools inspect python:3.11-slim)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fullstory_source ./fullstory_source
COPY fullstory_sandbox ./fullstory_sandbox
COPY pipelines ./pipelines
COPY fullstory_analytics ./fullstory_analytics
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
# the warehouse clients to install: bigquery, snowflake, motherduck (comma list), or none
ARG EXTRAS=bigquery
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist /dist
RUN wheel="$(ls /dist/*.whl)" \
    && if [ -n "$EXTRAS" ] && [ "$EXTRAS" != none ]; then wheel="$wheel[$EXTRAS]"; fi \
    && pip install --no-cache-dir "$wheel" \
    && rm -rf /dist \
    && useradd --create-home --uid 10001 fullstory
USER fullstory
# dlt reads .dlt/ from the working directory
WORKDIR /home/fullstory
ENTRYPOINT ["fullstory-pipeline"]
CMD ["run", "--destination", "bigquery", "--window", "1h"]
