// The pieces of kubectl's output: Go's text/tabwriter as kubectl configures it for tables
// (minimum cell width 6, padding 3) and for describe (padding 2); ages and access modes come from
// the control plane's printers, which the API server's Table responses share.

export interface TabwriterOptions {
  /** Minimal cell width, padding included. */
  minWidth: number;
  /** Spaces added to the widest cell of a column. */
  padding: number;
}

/** kubectl's table settings (k8s.io/cli-runtime printers.GetNewTabWriter). */
export const TABLE_TABWRITER: TabwriterOptions = { minWidth: 6, padding: 3 };
/** kubectl describe's settings (tabbedString: minwidth 0, padding 2). */
export const DESCRIBE_TABWRITER: TabwriterOptions = { minWidth: 0, padding: 2 };

/** Width as tabwriter counts it: runes, not UTF-16 code units. */
function width(text: string): number {
  return [...text].length;
}

/**
 * Go's text/tabwriter (left-aligned, space padding): in each line, cells are tab-terminated and
 * the text after the last tab is not part of any column. A column is aligned over a block of
 * consecutive lines that all have a cell in it, so a line with fewer cells ends the block — the
 * same quirks kubectl's output has, reproduced exactly.
 */
export function tabwrite(text: string, options: TabwriterOptions): string {
  const raw = text.split('\n');
  const trailing = raw.pop() ?? '';
  const lines = raw.map((l) => l.split('\t'));
  const widths: number[] = [];
  const out: string[] = [];

  const writeLines = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const cells = lines[i] ?? [];
      out.push(cells.map((cell, j) => (j < widths.length && j < cells.length - 1 ? cell + ' '.repeat(Math.max(0, (widths[j] ?? 0) - width(cell))) : cell)).join(''));
    }
  };

  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    let start = line0;
    for (let i = line0; i < line1; i++) {
      if (column >= (lines[i]?.length ?? 0) - 1) continue;
      writeLines(start, i);
      start = i;
      let w = options.minWidth;
      for (; i < line1; i++) {
        const cells = lines[i] ?? [];
        if (column >= cells.length - 1) break;
        w = Math.max(w, width(cells[column] ?? '') + options.padding);
      }
      widths.push(w);
      format(start, i);
      widths.pop();
      start = i;
      i--; // the loop's i++ must not skip the line that ended the block
    }
    writeLines(start, line1);
  };

  format(0, lines.length);
  return out.map((l) => `${l}\n`).join('') + trailing;
}

/**
 * Lays out rows of cells the way kubectl's printers do: every column but the last is padded to
 * its widest cell plus 3 spaces (at least 6); the last cell of a row is written as it is.
 */
export function formatTable(rows: readonly (readonly string[])[]): string {
  return tabwrite(rows.map((r) => `${r.join('\t')}\n`).join(''), TABLE_TABWRITER);
}

export { accessModes, age, humanDuration } from '../../control/api/printers/values.js';
