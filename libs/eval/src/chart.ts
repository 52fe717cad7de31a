import type { RulerResult } from './harness.js';

/** A published figure to mark on the chart (e.g. the E2LLM paper's RULER 8k NIAH 60.66). */
export interface ReferencePoint {
  /** Tasks whose panel shows the mark. */
  tasks: readonly string[];
  length: number;
  score: number;
  label: string;
}

export interface ChartSeries {
  name: string;
  results: readonly RulerResult[];
  /** Drawn dashed. */
  dashed?: boolean;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];
const PANEL_W = 230;
const PANEL_H = 170;
const PAD = { left: 34, right: 10, top: 24, bottom: 30 };
const COLS = 4;

/**
 * An SVG of score by length, one panel per task, one line per series; lengths are spaced evenly (they double).
 * Over-window results are drawn as hollow grey squares on the x axis, so they are not read as a score of 0.
 */
export function rulerChartSvg(series: readonly ChartSeries[], opts: { title: string; references?: readonly ReferencePoint[] }): string {
  const tasks = [...new Set(series.flatMap((s) => s.results.map((r) => r.task)))];
  const lengths = [...new Set(series.flatMap((s) => s.results.map((r) => r.length)))].sort((a, b) => a - b);
  const rows = Math.max(1, Math.ceil(tasks.length / COLS));
  const legendH = 46;
  const width = COLS * PANEL_W + 20;
  const height = rows * PANEL_H + legendH + 20;
  const plotW = PANEL_W - PAD.left - PAD.right;
  const plotH = PANEL_H - PAD.top - PAD.bottom;
  const xOf = (len: number) => (lengths.length === 1 ? plotW / 2 : (lengths.indexOf(len) * plotW) / (lengths.length - 1));
  const yOf = (score: number) => plotH - (score / 100) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="10">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="16" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);

  // Legend.
  let lx = 10;
  const ly = 32;
  series.forEach((s, i) => {
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
    out.push(`<circle cx="${lx + 11}" cy="${ly}" r="2.5" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 27}" y="${ly + 3.5}">${esc(s.name)}</text>`);
    lx += 40 + s.name.length * 6;
  });
  out.push(`<rect x="${lx}" y="${ly - 3.5}" width="7" height="7" fill="none" stroke="#888"/>`);
  out.push(`<text x="${lx + 11}" y="${ly + 3.5}">over the decoder window (not run)</text>`);
  lx += 190;
  if (opts.references?.length) {
    out.push(`<path d="${star(lx + 4, ly, 5)}" fill="#9467bd"/>`);
    out.push(`<text x="${lx + 12}" y="${ly + 3.5}">E2LLM paper (7B model)</text>`);
  }

  tasks.forEach((task, ti) => {
    const ox = 10 + (ti % COLS) * PANEL_W + PAD.left;
    const oy = legendH + 10 + Math.floor(ti / COLS) * PANEL_H + PAD.top;
    out.push(`<g transform="translate(${ox},${oy})">`);
    out.push(`<text x="${plotW / 2}" y="-8" text-anchor="middle" font-weight="bold">${esc(task)}</text>`);
    for (const s of [0, 25, 50, 75, 100]) {
      out.push(`<line x1="0" y1="${yOf(s)}" x2="${plotW}" y2="${yOf(s)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="-4" y="${yOf(s) + 3}" text-anchor="end" fill="#555">${s}</text>`);
    }
    out.push(`<line x1="0" y1="${plotH}" x2="${plotW}" y2="${plotH}" stroke="#333"/>`);
    out.push(`<line x1="0" y1="0" x2="0" y2="${plotH}" stroke="#333"/>`);
    for (const len of lengths) {
      out.push(`<text x="${xOf(len)}" y="${plotH + 12}" text-anchor="middle" fill="#555">${lengthLabel(len)}</text>`);
    }
    series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length];
      const pts = s.results.filter((r) => r.task === task).sort((a, b) => a.length - b.length);
      const scored = pts.filter((r) => r.score !== null);
      if (scored.length > 1) {
        const d = scored.map((r, i) => `${i === 0 ? 'M' : 'L'}${xOf(r.length).toFixed(1)},${yOf(r.score!).toFixed(1)}`).join(' ');
        out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
      }
      for (const r of pts) {
        if (r.score === null) {
          out.push(`<rect x="${xOf(r.length) - 3.5 + si * 3}" y="${plotH - 3.5 - si * 9}" width="7" height="7" fill="white" stroke="#888"/>`);
        } else {
          out.push(`<circle cx="${xOf(r.length)}" cy="${yOf(r.score)}" r="2.5" fill="${color}"><title>${esc(`${s.name} ${task} ${r.length}: ${r.score}`)}</title></circle>`);
        }
      }
    });
    for (const ref of opts.references ?? []) {
      if (!ref.tasks.includes(task) || !lengths.includes(ref.length)) continue;
      out.push(`<path d="${star(xOf(ref.length), yOf(ref.score), 5)}" fill="#9467bd"><title>${esc(ref.label)}</title></path>`);
    }
    out.push(`</g>`);
  });
  out.push(`<text x="10" y="${height - 6}" fill="#555">x: target length in decoder tokens; y: RULER score (0-100)</text>`);
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}

function lengthLabel(len: number): string {
  return len >= 1024 && len % 1024 === 0 ? `${len / 1024}k` : String(len);
}

function star(cx: number, cy: number, r: number): string {
  const pts: string[] = [];
  for (let i = 0; i < 10; i++) {
    const rr = i % 2 === 0 ? r : r * 0.45;
    const a = (Math.PI / 5) * i - Math.PI / 2;
    pts.push(`${(cx + rr * Math.cos(a)).toFixed(1)},${(cy + rr * Math.sin(a)).toFixed(1)}`);
  }
  return `M${pts.join(' L')} Z`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
