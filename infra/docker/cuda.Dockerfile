# syntax=docker/dockerfile:1
# The GPU image for the workers: onnxruntime-node with its CUDA 12 execution provider on an NVIDIA CUDA runtime.
# Build from the repository root:  docker build -f infra/docker/cuda.Dockerfile -t e2llm:cuda .
# The build needs network access: onnxruntime-node's install script downloads the CUDA provider libraries.
# With EXECUTION_PROVIDERS=cuda,cpu a worker that cannot load the CUDA provider refuses to start (CONFIG_INVALID).

ARG NODE_IMAGE=node:20-bookworm-slim
# CUDA 12 with cuDNN 9: what onnxruntime's CUDA 12 provider links against.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS node

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY . .
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${CUDA_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Node.js from the official image: its binaries need only glibc 2.28, which every CUDA 12 Ubuntu base has.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    MODEL_PATH=/app/models/e2llm-tiny \
    EXECUTION_PROVIDERS=cuda,cpu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/libs ./libs
COPY --from=build /app/apps ./apps
COPY --from=build /app/models ./models
# npm ci above ran no install scripts (allowScripts denies this one; offline CI needs none); here it is wanted, with CUDA 12 present.
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js
# uid 1000: the Kubernetes manifests run as this numeric user (runAsNonRoot).
USER 1000:1000
STOPSIGNAL SIGTERM
CMD ["node", "apps/cli/bin/e2llm.js", "encoder-worker"]
