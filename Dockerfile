# Builds Parallax on Debian 12 with the same scripts a developer uses.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j2 --target parallax parallax-agent

FROM debian:12
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libcaf-core0.17 libzmq5 liblmdb0 libfmt9 libre2-9 libzstd1 libsqlite3-0 \
      libvirt0 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/tools/parallax /usr/local/bin/parallax
COPY --from=build /build/tools/parallax-agent /usr/local/bin/parallax-agent
COPY --from=build /src/etc/scenarios /etc/parallax/scenarios
ENTRYPOINT []
CMD ["parallax", "serve", "--data", "/var/lib/parallax"]
