# Build stage: a static, stripped logengine binary.
FROM golang:1.26-bookworm AS build

WORKDIR /src

# Dependencies first, so that this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/logengine .

# Final stage: no shell, no package manager, runs as the unprivileged "nonroot" user.
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/logengine /logengine

# gateway, producer, consumer. Without API keys a listener address without a
# host binds loopback, which a container cannot be reached on: bind every
# interface, and set --auth-keys-file (LOGENGINE_AUTH_KEYS_FILE) for anything
# but a local trial.
ENV LOGENGINE_GATEWAY_ADDR=0.0.0.0:8080 \
    LOGENGINE_PRODUCER_ADDR=0.0.0.0:8081 \
    LOGENGINE_CONSUMER_ADDR=0.0.0.0:8082
EXPOSE 8080 8081 8082

ENTRYPOINT ["/logengine"]
CMD ["serve", "--role=all"]
