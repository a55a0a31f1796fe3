/** The report's stylesheet: system fonts only (nothing to fetch), readable when printed. */
export const REPORT_CSS = `
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --bg: #fff; --card: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 48px; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.meta, .hint, .nodata { color: var(--muted); }
.nodata { font-style: italic; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--card); padding: 1px 4px; border-radius: 3px; }
ul.notes { margin: 4px 0; padding-left: 20px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
.chart { position: relative; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
table { border-collapse: collapse; margin-top: 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; }
td.num { text-align: right; }
.verdict { font-weight: 600; padding: 1px 6px; border-radius: 3px; color: #fff; background: #999; }
.verdict-FASTER { background: #1a9850; } .verdict-SLOWER { background: #d73027; }
.verdict-SAME { background: #6b6b6b; } .verdict-UNSURE { background: #e0a100; color: #222; }
.verdict-BASELINE { background: #fff; color: var(--fg); border: 1px solid var(--line); }
.outcome { font-weight: 600; color: #d73027; }
td.reason { max-width: 640px; font-size: 12px; color: var(--muted); }
`;
