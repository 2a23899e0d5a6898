# Build: a release binary, with migrations and Swagger UI embedded.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin gpuhour

# Run: a small image with the binary alone.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 gpuhour
COPY --from=build /src/target/release/gpuhour /usr/local/bin/gpuhour
USER gpuhour
ENV GPUHOUR_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["gpuhour"]
CMD ["serve"]
