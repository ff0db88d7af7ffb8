# syntax=docker/dockerfile:1
# The operator's image: a static binary on a distroless base, run as a fixed non-root user.
#
#   docker build -t ams-security-operator:0.1.0 .
#
# Build stage: musl gives a fully static binary; aws-lc-sys (the one TLS crypto provider of the
# process) compiles its C code with musl-gcc from musl-tools, without cmake. The toolchain is the
# one rust-toolchain.toml pins, so the musl target is added after the sources are copied in.
# NB: no `--features`. Keep it so: the `test-endpoints` feature (which `emulator` brings) adds
# `--azure-extra-ca` and `--azure-host-override`, which send Azure traffic, tokens included,
# elsewhere; the shipped binary must not have them (scripts/test.sh checks a featureless build:
# tests/chart.rs, the_test_endpoint_flags_and_variables_exist_only_in_test_endpoints_builds).
FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN rustup target add x86_64-unknown-linux-musl
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin ams-security-operator \
 && cp target/x86_64-unknown-linux-musl/release/ams-security-operator /ams-security-operator

# Final stage: no shell, no package manager; CA roots for Azure's TLS, /etc/passwd with the
# `nonroot` user (65532), the uid the Helm chart's restricted security context fixes.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ams-security-operator /usr/local/bin/ams-security-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ams-security-operator"]
CMD ["run"]
