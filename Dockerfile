# Multi-stage build of the `sextant` executable.
#   docker build -t sextant .
#   docker run -p 8080:8080 -v sextant-data:/data -v ./api-key:/run/secrets/api-key:ro sextant \
#     up --data /data --api-listen 0.0.0.0:8080 --api-key-file /run/secrets/api-key
# deploy/docker-compose.yml runs the parts as separate services; deploy/cloudrun/ has a Cloud Run example.
FROM swift:6.1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      liburing-dev libjemalloc-dev libsqlite3-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY proto ./proto
RUN swift build -c release --product sextant --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/sextant" /sextant

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      liburing2 libjemalloc2 libsqlite3-0 zlib1g ca-certificates openssl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /sextant /usr/local/bin/sextant
# Certificates for TLS between the parts (deploy/docker-compose.yml's certs service).
COPY tools/make-certs /usr/local/bin/sextant-make-certs
# The demo sample `sextant up` loads on a first start (found relative to the binary).
COPY tools/demo/debian-sample.jsonl.gz /usr/local/share/sextant/demo/debian-sample.jsonl.gz
VOLUME /data
ENTRYPOINT ["/usr/local/bin/sextant"]
CMD ["up", "--data", "/data"]
