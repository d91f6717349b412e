/**
 * CSV as RFC 4180 writes it: a header row, CRLF line ends, and a field quoted (its quotes doubled)
 * when it holds a comma, a quote, CR or LF. Numbers as JavaScript prints them, booleans as
 * true/false, null and undefined as an empty field, objects and arrays as their JSON.
 */
export function csvField (value: unknown): string {
  if (value === null || value === undefined) return ''
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function csvRow (values: readonly unknown[]): string {
  return values.map(csvField).join(',') + '\r\n'
}

/** A whole table: the header row, then one row a record, the columns in the header's order. */
export function csvTable (columns: readonly string[], rows: Iterable<Record<string, unknown>>): string {
  let out = csvRow(columns)
  for (const row of rows) out += csvRow(columns.map(c => row[c]))
  return out
}

export const CSV_TYPE = 'text/csv; charset=utf-8'
