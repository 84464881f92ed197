#!/usr/bin/env python3
"""Where a proxy's CPU goes, per request, by part of the stack.

    breakdown.py A.perf A_REQUESTS B.perf B_REQUESTS

Reads two `perf record --call-graph dwarf` profiles (meshwork's gateway and
the floor proxy under the same load, from `scripts/bench-peers profile`),
charges each sample to the innermost frame of its stack that belongs to a
named part (tracing, the transcoder, h2, axum...), and prints each part's
samples per 1,000 requests for both, largest difference first. A sample in
the kernel goes to the part that made the system call or that the kernel
interrupted (a reschedule or a timer lands in whatever code was running),
and is also shown apart.
At 999 samples a second, samples per 1,000 requests read as about one
microsecond of CPU per request.
"""

import re
import subprocess
import sys
from collections import Counter

# Checked in order against each frame, innermost first: the first part a
# frame matches takes the sample. `Instrumented` wraps whole requests, so it
# names no part of its own.
PARTS = [
    ("tracing, OpenTelemetry", r"^(?!<tracing::instrument::Instrumented).*(tracing|opentelemetry)"),
    ("metrics", r"^metrics|metrics_util|metrics_exporter|resilience::metrics|gateway::rest::count"),
    ("token, rate limit, access", r"gateway::guard|gateway::auth|governor|ratelimit|platform::access"),
    ("JSON and protobuf transcoding", r"prost_reflect|gateway::transcode|gateway::codec|serde_json|gateway::template|gateway::routes"),
    ("header mapping", r"gateway::headers"),
    ("resilience (breaker, bulkhead, retry)", r"resilience::"),
    ("tonic", r"tonic::"),
    ("tower buffer", r"tower::buffer"),
    ("h2 (HTTP/2)", r"^h2::|<h2::|hyper::proto::h2"),
    ("hyper HTTP/1", r"hyper::proto::h1|hyper::server::conn::http1"),
    ("axum", r"axum::"),
    ("connection guards", r"platform::connections|hyper_util::server"),
    ("the gateway's own code", r"gateway::"),
    ("the platform's own code", r"platform::"),
    ("tokio and its I/O", r"tokio::|mio::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]


def part_of(stack):
    for symbol, _ in stack:
        for name, pattern in COMPILED:
            if pattern.search(symbol):
                return name
    return "other"


def samples(profile):
    """Counts each part's samples in one profile."""
    script = subprocess.run(
        ["perf", "script", "-i", profile, "-F", "ip,sym"], capture_output=True, text=True, check=True
    ).stdout
    counts, in_kernel, stack = Counter(), Counter(), []
    for line in script.splitlines() + [""]:
        fields = line.split(None, 1)
        if not fields:
            if stack:
                part = part_of(stack)
                counts[part] += 1
                in_kernel[part] += stack[0][1]
            stack = []
        elif len(fields) == 2 and re.fullmatch(r"[0-9a-f]+", fields[0]):
            stack.append((fields[1], fields[0].startswith("ffff")))
    return counts, in_kernel


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    a, a_requests, b, b_requests = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    (ours, our_kernel), (theirs, their_kernel) = samples(a), samples(b)
    per = lambda counts, requests, part: counts[part] * 1000 / requests
    parts = sorted(set(ours) | set(theirs), key=lambda p: per(theirs, b_requests, p) - per(ours, a_requests, p))
    print(f"{'samples per 1,000 requests':38} {'meshwork':>9} {'(kernel)':>9} {'floor':>9} {'(kernel)':>9}")
    for part in parts:
        print(
            f"{part:38} {per(ours, a_requests, part):9.1f} {per(our_kernel, a_requests, part):9.1f}"
            f" {per(theirs, b_requests, part):9.1f} {per(their_kernel, b_requests, part):9.1f}"
        )
    total = lambda counts, requests: sum(counts.values()) * 1000 / requests
    print(
        f"{'all':38} {total(ours, a_requests):9.1f} {total(our_kernel, a_requests):9.1f}"
        f" {total(theirs, b_requests):9.1f} {total(their_kernel, b_requests):9.1f}"
    )


if __name__ == "__main__":
    main()
