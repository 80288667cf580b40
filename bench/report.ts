/** Table output and JSON results shared by every benchmark suite. */
import * as fs from 'node:fs';

export type Row = Record<string, string | number>;

export class Report {
  readonly rows: Row[] = [];
  constructor(readonly suite: string) {}

  add(row: Row): void {
    this.rows.push(row);
  }

  /** Prints the rows as an aligned table. */
  print(title = this.suite): void {
    if (!this.rows.length) return;
    const cols = [...new Set(this.rows.flatMap((r) => Object.keys(r)))];
    const cell = (v: string | number | undefined) => (v === undefined ? '' : typeof v === 'number' ? fmt(v) : v);
    const widths = cols.map((c) => Math.max(c.length, ...this.rows.map((r) => cell(r[c]).length)));
    const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
    console.log(`\n${title}`);
    console.log(line(cols));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of this.rows) console.log(line(cols.map((c) => cell(r[c]))));
  }

  /** Appends this suite's rows to a JSON file ({suite: rows[]}). */
  writeJson(file: string, extra: Record<string, unknown> = {}): void {
    let doc: Record<string, unknown> = {};
    if (fs.existsSync(file)) {
      try {
        doc = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch {
        doc = {};
      }
    }
    doc[this.suite] = { ...extra, rows: this.rows };
    fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  }
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : a >= 0.01 ? v.toFixed(4) : v.toPrecision(3);
}
