"""One self-contained HTML page for a `verify` run: the picture of the upgrade.

    crossfade verify changes/ --url ... --report upgrade.html

The page holds, per change, the check matrix (database x check, ok or FAIL with its summary),
the write latency per phase, and per database a timeline: every statement each release's writers
attempted, at its start time and its latency (log scale), the phases shaded, crossfade's DDL steps
and backfill batches marked, and the latency check's bound drawn across. A stall is a dot high
above the others; the step drawn over it is what crossfade was doing meanwhile.

Nothing is fetched: the CSS, the data (JSON) and the script that draws the SVG charts from it
are inline, so the file can be mailed, attached to a CI run, or opened offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..errors import CrossfadeError
from .report import CHECKS, CheckResult, DialectReport, Report


def check_destination(path: str | Path) -> Path:
    """The report's file, refused in one line before anything runs when it cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise CrossfadeError(f"--report {path}: is a directory; give a file name, e.g. {target / 'verify.html'}")
    if not target.parent.is_dir():
        raise CrossfadeError(f"--report {path}: the directory {target.parent} does not exist")
    return target


def write_report(path: str | Path, reports: list[Report]) -> Path:
    """Write the page for `reports` (one per change) to `path`; returns the path."""
    target = check_destination(path)
    target.write_text(render(reports), encoding="utf-8")
    return target


def render(reports: list[Report]) -> str:
    """The whole page, as text."""
    ok = all(r.ok for r in reports)
    title = "crossfade verify: " + ", ".join(r.change_id for r in reports)
    verdict = "every check passed on every database" if ok else "some checks FAILED (details below)"
    body = "\n".join(_change_section(i, report) for i, report in enumerate(reports))
    return _PAGE.format(title=_e(title), css=_CSS, verdict_class="ok" if ok else "fail", verdict=_e(verdict),
                        body=body, data=_script_json(_chart_data(reports)), script=_SCRIPT)


# --- the static parts (matrix, tables, details) ---------------------------------------------

def _change_section(index: int, report: Report) -> str:
    parts = [f'<section class="change" id="change-{index}">', f"<h2>{_e(report.change_id)}</h2>",
             _matrix(report), _legend()]
    for j, result in enumerate(report.results):
        parts.append(_timeline_figure(index, j, result))
        if result.latency:
            parts.append(_latency_table(result))
    parts.append(_failures(report))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _matrix(report: Report) -> str:
    head = "".join(f"<th>{_e(r.dialect)}<div class=url>{_e(r.url)}</div></th>" for r in report.results)
    rows = []
    for name, meaning in CHECKS:
        cells = "".join(_cell(r.checks.get(name)) for r in report.results)
        rows.append(f'<tr><th title="{_e(meaning)}">{_e(name)}<div class=meaning>{_e(meaning)}</div></th>{cells}</tr>')
    times = "".join(f"<td>{r.seconds:.1f} s, {r.writes} writes</td>" for r in report.results)
    rows.append(f"<tr><th>time</th>{times}</tr>")
    return f'<table class="matrix"><thead><tr><th>check</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _cell(check: CheckResult | None) -> str:
    if check is None:
        return '<td class="none">-</td>'
    word = "ok" if check.ok else "FAIL"
    summary = "" if check.summary == "ok" else f"<div class=summary>{_e(check.summary)}</div>"
    return f'<td class="{"ok" if check.ok else "fail"}"><b>{word}</b>{summary}</td>'


def _timeline_figure(index: int, j: int, result: DialectReport) -> str:
    if result.timeline is None or not result.timeline.phases:
        return ""  # the Hypothesis mode writes one statement at a time: no timeline
    caption = (f"{result.dialect}: every write's latency through the upgrade "
               f"({result.timeline.samples} statements, {result.seconds:.1f} s)")
    return (f'<figure class="timeline" data-chart="{index}-{j}"><figcaption>{_e(caption)}</figcaption>'
            f'<svg class="chart" role="img" aria-label="{_e(caption)}"></svg></figure>')


def _legend() -> str:
    return ('<p class="legend"><span class="dot n"></span> release N write <span class="dot n1"></span> '
            'release N+1 write <span class="dot refused"></span> refused write '
            '<span class="bar ddl"></span> crossfade DDL step <span class="bar backfill"></span> backfill batch '
            '<span class="bar bound"></span> latency bound (--max-stall); shaded bands are the phases</p>')


def _latency_table(result: DialectReport) -> str:
    rows = []
    for phase, by_release in result.latency.items():
        for release, f in by_release.items():
            rows.append(f"<tr><td>{_e(phase)}</td><td>{_e(release)}</td><td>{f['writes']}</td>"
                        f"<td>{f['p50_ms']:.1f}</td><td>{f['p99_ms']:.1f}</td><td>{f['max_ms']:.1f}</td></tr>")
    return (f'<table class="latency"><caption>{_e(result.dialect)}: write latency per phase (ms)</caption>'
            "<thead><tr><th>phase</th><th>release</th><th>writes</th><th>p50</th><th>p99</th><th>max</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _failures(report: Report) -> str:
    blocks = []
    for result in report.results:
        for check in result.checks.values():
            if not check.ok and check.details:
                items = "".join(f"<li><pre>{_e(d)}</pre></li>" for d in check.details)
                blocks.append(f'<details class="failure" open><summary>{_e(result.dialect)}: {_e(check.name)}: '
                              f"{_e(check.summary)}</summary><ul>{items}</ul></details>")
    return "\n".join(blocks)


# --- the data the script draws ------------------------------------------------------------

def _chart_data(reports: list[Report]) -> dict:
    charts = {}
    for i, report in enumerate(reports):
        for j, result in enumerate(report.results):
            if result.timeline is not None and result.timeline.phases:
                charts[f"{i}-{j}"] = {"dialect": result.dialect, **result.timeline.to_json()}
    return charts


def _script_json(data: dict) -> str:
    # "</" would end the script element early; "<\/" is the same JSON string.
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head>
<body>
<h1>{title}</h1>
<p class="verdict {verdict_class}">{verdict}</p>
{body}
<script id="crossfade-data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2330; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.verdict { font-weight: 600; padding: 6px 10px; display: inline-block; border-radius: 4px; }
.verdict.ok { background: #e3f4e6; color: #1c6b2c; } .verdict.fail { background: #fbe4e4; color: #a11d1d; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #d6dae2; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #f2f4f8; }
.matrix td.ok b { color: #1c6b2c; } .matrix td.fail { background: #fdf0f0; } .matrix td.fail b { color: #a11d1d; }
.url { word-break: break-all; } .url, .meaning, .summary { font-size: 11px; color: #5b6477; font-weight: normal; max-width: 340px; }
.latency td:nth-child(n+3) { text-align: right; font-variant-numeric: tabular-nums; }
.latency caption { text-align: left; font-weight: 600; }
figure.timeline { margin: 12px 0 4px; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; max-width: 1200px; height: 330px; display: block; }
svg .axis { stroke: #8a93a6; stroke-width: 1; } svg text { font-size: 11px; fill: #4a5368; }
svg .grid { stroke: #e4e7ee; stroke-width: 1; }
svg .phase.even { fill: #eef2fa; } svg .phase.odd { fill: #f8f9fc; }
svg .phase-label { font-weight: 600; fill: #3b4560; }
svg .step.ddl { stroke: #7a3fc4; stroke-width: 1.5; } svg .span.ddl { fill: #7a3fc4; opacity: .18; }
svg .step.backfill { stroke: #1a9a8a; stroke-width: 1; opacity: .7; }
svg .write.n { fill: #2f6fd6; } svg .write.n1 { fill: #e07b1a; } svg .write.refused { fill: #d21f1f; }
svg .write { opacity: .55; } svg .write.stall { opacity: 1; stroke: #000; stroke-width: .6; }
svg .bound { stroke: #d21f1f; stroke-dasharray: 5 3; stroke-width: 1.2; }
.legend { font-size: 12px; color: #4a5368; }
.legend .dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin: 0 2px 0 10px; }
.legend .dot.n { background: #2f6fd6; } .legend .dot.n1 { background: #e07b1a; } .legend .dot.refused { background: #d21f1f; }
.legend .bar { display: inline-block; width: 3px; height: 12px; margin: 0 3px 0 10px; vertical-align: middle; }
.legend .bar.ddl { background: #7a3fc4; } .legend .bar.backfill { background: #1a9a8a; }
.legend .bar.bound { background: #d21f1f; width: 14px; height: 2px; }
details.failure pre { white-space: pre-wrap; margin: 2px 0; font-size: 12px; }
"""

# Draws each chart from the JSON above: x = seconds since release N began, y = latency on a log
# scale. When done, every <svg> says what it drew (data-points, data-phases, data-steps) and
# <body> gets data-rendered: what the Chromium test reads back from the live DOM.
_SCRIPT = r"""
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("crossfade-data").textContent);
  const W = 1200, H = 330, M = {left: 58, right: 14, top: 26, bottom: 34};
  function el(parent, name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }
  function draw(svg, chart) {
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const end = Math.max(...chart.phases.map(p => p[2]), 0.001);
    let slowest = 0;
    for (const r in chart.writes) for (const w of chart.writes[r]) slowest = Math.max(slowest, w[1]);
    const bound = chart.max_stall;
    const lo = -4, hi = Math.max(0, Math.ceil(Math.log10(Math.max(slowest, bound || 0, 0.1) * 1.2)));
    const x = t => M.left + (t / end) * (W - M.left - M.right);
    const y = s => {
      const v = Math.log10(Math.max(s, 1e-4));
      return H - M.bottom - ((v - lo) / (hi - lo)) * (H - M.top - M.bottom);
    };
    const bands = el(svg, "g", {class: "phases"});
    chart.phases.forEach((p, i) => {
      el(bands, "rect", {class: "phase " + (i % 2 ? "odd" : "even"), x: x(p[1]), y: M.top,
                         width: Math.max(0.5, x(p[2]) - x(p[1])), height: H - M.top - M.bottom,
                         "data-phase": p[0]});
      el(bands, "text", {class: "phase-label", x: x(p[1]) + 4, y: M.top - 8}, p[0]);
    });
    const grid = el(svg, "g", {class: "y-axis"});
    for (let v = lo; v <= hi; v++) {
      const s = Math.pow(10, v), label = s >= 1 ? s + " s" : (s * 1000) + " ms";
      el(grid, "line", {class: "grid", x1: M.left, x2: W - M.right, y1: y(s), y2: y(s)});
      el(grid, "text", {x: M.left - 6, y: y(s) + 4, "text-anchor": "end"}, label);
    }
    const xaxis = el(svg, "g", {class: "x-axis"});
    el(xaxis, "line", {class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom});
    const step = end > 60 ? 10 : end > 20 ? 5 : end > 8 ? 2 : end > 3 ? 1 : 0.5;
    for (let t = 0; t <= end + 1e-9; t += step) {
      el(xaxis, "text", {x: x(t), y: H - M.bottom + 14, "text-anchor": "middle"}, (+t.toFixed(1)) + " s");
    }
    el(xaxis, "text", {x: W - M.right, y: H - 4, "text-anchor": "end"}, "seconds since release N began");
    el(svg, "text", {x: 12, y: M.top + (H - M.top - M.bottom) / 2, transform:
       "rotate(-90 12 " + (M.top + (H - M.top - M.bottom) / 2) + ")", "text-anchor": "middle"},
       "write latency (log)");
    const steps = el(svg, "g", {class: "steps"});
    let ddl = 0, batches = 0;
    for (const s of chart.steps) {
      const kind = s[3];
      if (kind === "ddl") {
        ddl++;
        el(steps, "rect", {class: "span ddl", x: x(s[1]), y: M.top, width: Math.max(1, x(s[2]) - x(s[1])),
                           height: H - M.top - M.bottom});
      } else {
        batches++;
      }
      const line = el(steps, "line", {class: "step " + kind, x1: x(s[2]), x2: x(s[2]),
                                      y1: kind === "ddl" ? M.top : H - M.bottom - 14, y2: H - M.bottom});
      el(line, "title", {}, s[0] + " (done at " + s[2].toFixed(2) + " s, took " +
                            ((s[2] - s[1]) * 1000).toFixed(0) + " ms)");
    }
    const dots = el(svg, "g", {class: "writes"});
    let points = 0;
    for (const release in chart.writes) {
      const cls = release === "N" ? "n" : "n1";
      for (const w of chart.writes[release]) {
        const stalled = bound !== null && w[1] > bound;
        const dot = el(dots, "circle", {class: "write " + (w[2] ? "refused" : cls) + (stalled ? " stall" : ""),
                                        cx: x(w[0]).toFixed(1), cy: y(w[1]).toFixed(1), r: stalled ? 3.5 : 1.6});
        if (stalled || w[2]) {
          el(dot, "title", {}, "release " + release + (w[2] ? " write refused" : " write") + " at " +
                               w[0].toFixed(2) + " s took " + (w[1] * 1000).toFixed(0) + " ms");
        }
        points++;
      }
    }
    if (bound !== null) {
      el(svg, "line", {class: "bound", x1: M.left, x2: W - M.right, y1: y(bound), y2: y(bound)});
      el(svg, "text", {x: W - M.right - 4, y: y(bound) - 4, "text-anchor": "end", fill: "#d21f1f"},
         "bound " + (bound * 1000).toFixed(0) + " ms");
    }
    svg.dataset.points = points;
    svg.dataset.phases = chart.phases.length;
    svg.dataset.steps = ddl;
    svg.dataset.batches = batches;
  }
  for (const figure of document.querySelectorAll("figure.timeline")) {
    const chart = data[figure.dataset.chart];
    if (chart) draw(figure.querySelector("svg"), chart);
  }
  document.body.dataset.rendered = Object.keys(data).length;
})();
"""
