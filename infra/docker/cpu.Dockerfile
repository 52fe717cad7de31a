# syntax=docker/dockerfile:1
# The CPU image: every role (api, encoder-worker, decoder-worker) with the bundled model in models/e2llm-tiny.
# Build from the repository root:  docker build -f infra/docker/cpu.Dockerfile -t e2llm:cpu .
# Run one role:                    docker run e2llm:cpu node apps/cli/bin/e2llm.js encoder-worker

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY . .
# --ignore-scripts: npm 10 (in the node image) would run onnxruntime-node's install script, which downloads CUDA
# libraries a CPU image never loads (the CPU provider ships inside the package). The build is then run explicitly.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    MODEL_PATH=/app/models/e2llm-tiny \
    EXECUTION_PROVIDERS=cpu \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
# Only what runs: built workspaces (node_modules/@lib/* and @app/* are links into libs/ and apps/), the model.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/libs ./libs
COPY --from=build /app/apps ./apps
COPY --from=build /app/models ./models
USER node
EXPOSE 8080
# The roles stop on SIGTERM after finishing the jobs in hand (see terminationGracePeriodSeconds in infra/k8s).
STOPSIGNAL SIGTERM
CMD ["node", "apps/cli/bin/e2llm.js", "api"]
