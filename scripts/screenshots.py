"""The README's pictures of the dashboard and of a trace, drawn from a real
run (scripts/screenshots drives it). Grafana and Jaeger are not packaged
for Debian, so this draws the same data itself: each panel of
ops/grafana/dashboards/meshwork.json with its own PromQL, evaluated by a
real Prometheus that scraped the run; and one trace as a waterfall, from
the spans the processes exported over OTLP/gRPC to the receiver here.

    screenshots.py receive PORT SPANS.jsonl      an OTLP/gRPC trace receiver
    screenshots.py dashboard PROMETHEUS START END OUT.png
    screenshots.py trace SPANS.jsonl TRACE_ID OUT.png
"""

import json
import re
import sys
import urllib.parse
import urllib.request
from concurrent import futures
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent.parent / "ops/grafana/dashboards/meshwork.json"
KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def receive(port, out):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    sink = open(out, "a", buffering=1)

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), "?"
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: value_of(a.value) for a in span.attributes}
                        sink.write(json.dumps({
                            "service": service,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": KINDS.get(span.kind, "unspecified"),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": attributes,
                            "events": [e.name for e in span.events],
                        }) + "\n")
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def value_of(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def query_range(prometheus, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}") as reply:
        return json.load(reply)["data"]["result"]


def legend(template, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template or "") or ",".join(
        f"{k}={v}" for k, v in labels.items()
    )


def dashboard(prometheus, start, end, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from datetime import datetime

    board = json.load(open(DASHBOARD))
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    # One grid cell per Grafana unit: 24 columns, the rows as laid out.
    fig = plt.figure(figsize=(24, rows * 0.62), facecolor="#111217")
    grid = fig.add_gridspec(rows, 24, hspace=1.2, wspace=1.6, left=0.03, right=0.99, top=0.97, bottom=0.02)
    fig.suptitle(
        f"{board['title']}: four components on PostgreSQL, RabbitMQ and a MongoDB-wire server under a minute of load;"
        " every panel's own query, evaluated by Prometheus",
        color="white", fontsize=16,
    )
    step = max(1, int((end - start) / 240))
    for panel in panels:
        pos = panel["gridPos"]
        if panel["type"] == "row":
            ax = fig.add_subplot(grid[pos["y"], :])
            ax.axis("off")
            ax.text(0, 0.1, panel["title"], color="#ccccdc", fontsize=14, weight="bold", transform=ax.transAxes)
            continue
        ax = fig.add_subplot(grid[pos["y"] + 1 : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        ax.set_facecolor("#181b1f")
        ax.set_title(panel["title"], color="#ccccdc", fontsize=11, loc="left")
        ax.tick_params(colors="#8e8e9e", labelsize=8)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.5)
        drawn = 0
        for target in panel.get("targets", []):
            # Grafana's $__rate_interval: four scrape intervals at least.
            expr = target["expr"].replace("$__rate_interval", "8s")
            for series in query_range(prometheus, expr, start, end, step):
                points = [(float(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points or drawn >= 14:
                    continue
                times = [datetime.fromtimestamp(t) for t, _ in points]
                ax.plot(times, [v for _, v in points], linewidth=1.3, label=legend(target.get("legendFormat"), series["metric"]))
                drawn += 1
        if drawn:
            ax.legend(fontsize=7, loc="upper left", facecolor="#181b1f", edgecolor="#2c3235", labelcolor="#ccccdc")
        else:
            ax.text(0.5, 0.5, "no data", color="#8e8e9e", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    fig.savefig(out, dpi=60, facecolor=fig.get_facecolor())


def trace(spans_file, trace_id, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spans = [s for s in map(json.loads, open(spans_file)) if s["trace_id"] == trace_id]
    if not spans:
        sys.exit(f"no spans of trace {trace_id} in {spans_file}")
    ids = {s["span_id"] for s in spans}
    children = {}
    for span in spans:
        children.setdefault(span["parent"] if span["parent"] in ids else None, []).append(span)
    ordered = []

    def walk(parent, depth):
        for span in sorted(children.get(parent, []), key=lambda s: s["start"]):
            ordered.append((depth, span))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    t0 = min(s["start"] for s in spans)
    total = (max(s["end"] for s in spans) - t0) / 1e6
    colors = {"gateway": "#7eb26d", "orders": "#eab839", "users": "#6ed0e0", "products": "#ef843c"}
    fig, ax = plt.subplots(figsize=(20, 0.32 * len(ordered) + 1.4))
    for row, (depth, span) in enumerate(ordered):
        start, length = (span["start"] - t0) / 1e6, (span["end"] - span["start"]) / 1e6
        service = span["service"].removeprefix("meshwork-")
        ax.barh(row, max(length, total / 600), left=start, color=colors.get(service, "#a0a0a0"), height=0.7)
        detail = " ".join(
            f"{key}={span['attributes'][key]}"
            for key in ("rpc.grpc.status_code", "http.response.status_code", "db.system.name", "messaging.system")
            if key in span["attributes"]
        )
        label = f"{'  ' * depth}{service}: {span['name']}  [{span['kind']}]  {length:.2f} ms  {detail}"
        ax.text(-total * 0.01, row, label, ha="right", va="center", fontsize=8, family="monospace")
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_xlim(0, total * 1.02)
    ax.set_xlabel("milliseconds since the gateway received POST /orders")
    fig.suptitle(
        f"trace {trace_id}: the {len(spans)} spans of one POST /orders, as the four components exported them over OTLP",
        x=0.01, ha="left",
    )
    fig.subplots_adjust(left=0.5, right=0.99, top=1 - 0.6 / fig.get_figheight())
    fig.savefig(out, dpi=70)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "receive":
        receive(int(args[0]), args[1])
    elif command == "dashboard":
        dashboard(args[0], float(args[1]), float(args[2]), args[3])
    elif command == "trace":
        trace(*args)
    else:
        sys.exit(__doc__)
