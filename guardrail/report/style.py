"""The report's stylesheet, inlined into the page (a report is one file).

Readable on a laptop (a 1280-pixel-wide column, plots in a grid that wraps), and on
paper: print drops the navigation, keeps a check with its plots on one page where it
can, and prints colours (verdicts are colour plus a word, never colour alone).
"""

CSS = """
:root { --fail: #c62828; --pass: #2e7d32; --warn: #b26a00; --info: #1565c0; --muted: #5f6368; --line: #dadce0;
  --bg-soft: #f6f8fa; --series: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 0 24px 40px; color: #202124; background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
code { background: var(--bg-soft); padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
h1 { font-size: 26px; margin: 4px 0; } h2 { font-size: 20px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; } h2 small { color: var(--muted); font-weight: normal; font-size: 14px; }
h3 { font-size: 16px; margin: 12px 0 6px; } h4 { margin: 4px 0; font-size: 14px; }
header.top { margin: 0 -24px; padding: 18px 24px 14px; border-top: 8px solid var(--muted); background: var(--bg-soft); }
header.outcome-pass { border-top-color: var(--pass); } header.outcome-fail { border-top-color: var(--fail); }
header.outcome-warn { border-top-color: var(--warn); }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .08em; font-size: 12px; }
.version { font-weight: normal; color: var(--muted); }
.headline { font-size: 16px; font-weight: 600; margin: 4px 0 10px; }
.summary { display: flex; flex-wrap: wrap; gap: 12px 40px; align-items: flex-start; }
table { border-collapse: collapse; } th, td { text-align: left; vertical-align: top; padding: 3px 10px 3px 0; }
table.facts th { color: var(--muted); font-weight: normal; white-space: nowrap; }
table.facts { max-width: 640px; }
table.regions th, table.verdicts th, table.events th, #incident th { font-size: 12px; color: var(--muted);
  border-bottom: 1px solid var(--line); }
table.regions td, table.verdicts td, table.events td { border-bottom: 1px solid #eee; }
table.verdicts td { padding-top: 1px; padding-bottom: 1px; } table.verdicts small { color: var(--muted); }
.reason { color: var(--fail); font-weight: 600; overflow-wrap: anywhere; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line); padding: 6px 0; z-index: 2; }
nav a { margin-right: 18px; color: var(--info); text-decoration: none; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700;
  text-transform: uppercase; letter-spacing: .03em; vertical-align: middle; color: #fff; background: var(--muted); }
.badge-pass { background: var(--pass); } .badge-fail { background: var(--fail); } .badge-warn { background: var(--warn); }
.scroll { overflow-x: auto; }
svg { display: block; width: 100%; height: auto; font-family: system-ui, "DejaVu Sans", sans-serif; }
svg .axis { font-size: 10px; fill: var(--muted); } svg .grid { stroke: #eceff1; stroke-width: 1; }
svg .frame { fill: #fff; stroke: var(--line); }
svg .row { fill: #fff; } svg .row.odd { fill: #fafbfc; } svg .row-label { font-size: 12px; fill: #202124; }
svg .span-version { fill: #bbdefb; } svg .span-bake { fill: #a5d6a7; } svg .span-recovery { fill: #ce93d8; }
svg .span-deploy { fill: var(--info); } svg .span-rollback { fill: #ef6c00; }
svg .span-failed { fill: var(--fail); } svg .span-label { font-size: 11px; fill: #1b5e20; }
svg line.mark { stroke-width: 1.5; stroke-dasharray: 4 3; } svg .mark-fail { stroke: var(--fail); fill: var(--fail); }
svg .mark-pass { stroke: var(--pass); fill: var(--pass); } svg .mark-warn { stroke: var(--warn); fill: var(--warn); }
svg .mark-info { stroke: var(--info); fill: var(--info); } svg text.mark-label { font-size: 11px; stroke: none; font-weight: 600; }
svg .phase-bake { fill: #e8f5e9; } svg .phase-recovery { fill: #f3e5f5; } svg .phase-rollback { fill: #ffe0b2; }
svg .series { fill: none; stroke: var(--series); stroke-width: 1.6; stroke-linejoin: round; }
svg .threshold { fill: none; stroke: var(--fail); stroke-width: 1.2; stroke-dasharray: 6 3; }
svg .reference { fill: none; stroke: #455a64; stroke-width: 1.2; stroke-dasharray: 2 3; }
svg .band { fill: #43a047; fill-opacity: .12; stroke: none; }
svg line.breach { stroke: var(--fail); stroke-width: 1.2; stroke-dasharray: 3 2; }
svg circle.fail-point { fill: var(--fail); stroke: #fff; stroke-width: 1.5; }
svg .nodata { font-size: 12px; fill: var(--warn); } svg .idle { font-size: 11px; fill: var(--muted); font-style: italic; }
.legend { color: var(--muted); font-size: 12px; margin: 6px 0 12px; line-height: 2; }
.sw, .ln, .dot { display: inline-block; width: 18px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
.sw-version { background: #bbdefb; } .sw-bake { background: #a5d6a7; } .sw-deploy { background: var(--info); }
.sw-rollback { background: #ef6c00; } .sw-recovery { background: #ce93d8; } .sw-band { background: rgba(67,160,71,.25); }
.sw-action { background: var(--info); width: 9px; height: 9px; transform: rotate(45deg); }
.ln { height: 0; border-top: 2px dashed; } .ln-fail, .ln-threshold, .ln-breach { border-color: var(--fail); }
.ln-pass { border-color: var(--pass); } .ln-info { border-color: var(--info); } .ln-series { border-top-style: solid;
  border-color: var(--series); } .ln-reference { border-color: #455a64; border-top-style: dotted; }
.dot { width: 10px; height: 10px; border-radius: 50%; background: var(--fail); }
.st-0 { background: #2e7d32; } .st-1 { background: #e0a100; } .st-2 { background: #8d8d8d; } .st-3 { background: #c62828; }
article.check { border: 1px solid var(--line); border-left: 6px solid var(--pass); border-radius: 6px; padding: 4px 16px 12px;
  margin: 14px 0; } article.check-fail { border-left-color: var(--fail); } article.check-inconclusive { border-left-color: var(--warn); }
article.check-not_evaluated { border-left-color: var(--line); }
.meta { color: var(--muted); margin: 2px 0; } .meta b { color: #202124; } .where { font-family: ui-monospace, monospace; font-size: 12px; }
.desc { margin: 2px 0 8px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 10px 16px; margin: 8px 0; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 2px; }
figure.wide { grid-column: 1 / -1; display: grid; grid-template-columns: minmax(0, 560px) minmax(0, 1fr); gap: 0 20px;
  align-items: start; } figure.wide figcaption { grid-column: 1 / -1; } figure.wide .evidence { margin-top: 0; }
figure.fig-fail figcaption { color: var(--fail); }
.note { color: var(--muted); font-size: 12px; margin: 2px 0 6px; overflow-wrap: anywhere; }
.evidence { background: #fdecea; border: 1px solid #f5c2c0; border-radius: 6px; padding: 6px 12px; margin: 8px 0; }
.evidence dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 4px 0; }
.evidence dt { color: var(--muted); } .evidence dd { margin: 0; overflow-wrap: anywhere; }
tr.v-fail td { background: #fff5f5; }
.empty { color: var(--muted); font-style: italic; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; } ol.steps { padding-left: 20px; }
ol.steps time { font-family: ui-monospace, monospace; color: var(--muted); margin-right: 6px; }
table.events { width: 100%; } table.events td:nth-child(-n+2) { white-space: nowrap; font-family: ui-monospace, monospace;
  font-size: 12px; color: var(--muted); }
tr.ev-state-failed td, tr.ev-state-rollback_failed td, tr.ev-state-aborted td { color: var(--fail); font-weight: 600; }
tr.ev-state-promoted td, tr.ev-state-done td { color: var(--pass); font-weight: 600; }
pre { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media (max-width: 1000px) { .two, figure.wide { grid-template-columns: 1fr; } .plots { grid-template-columns: 1fr; } }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  nav { display: none; } header.top { margin: 0; }
  article.check, figure, .evidence, table.regions, #timeline { break-inside: avoid; }
  h2 { break-after: avoid; } pre { white-space: pre-wrap; font-size: 9px; }
  .plots { grid-template-columns: repeat(3, 1fr); }
}
"""
