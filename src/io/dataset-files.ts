/**
 * Reading instruction-tuning data files into Examples, with errors that name the file and the record.
 *
 * Formats (detected from the content, so a misnamed extension still works):
 * - LLM-Adapters / Alpaca JSON: an array of {instruction, input?, output, answer?}.
 * - GSM8K (OpenAI) JSONL: one {question, answer} per line, the answer ending in "#### N";
 *   instruction = question, output = the whole answer text, answer = N (thousands commas removed).
 * A file whose first non-blank character is '[' is a JSON array; anything else is read as JSONL
 * (one JSON object per non-blank line). The record format is taken from the first record.
 */
import { readFileSync } from 'node:fs';
import type { Example } from './prompt.ts';

export type RecordFormat = 'llm-adapters' | 'gsm8k';

interface RawRecord {
  value: unknown;
  line?: number;
}

export function readExamples(file: string): Example[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') {
    throw new Error(
      `${file}: the file is empty (expected a JSON array of {instruction, input, output} records, or JSONL {question, answer} lines)`,
    );
  }
  const records = text.trimStart().startsWith('[') ? parseJsonArray(file, text) : parseJsonl(file, text);
  if (records.length === 0) throw new Error(`${file}: contains no records`);
  const format = detectFormat(file, records[0]);
  return records.map((r, i) => toExample(file, format, r, i));
}

function parseJsonl(file: string, text: string): RawRecord[] {
  const out: RawRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    try {
      out.push({ value: JSON.parse(lines[i]), line: i + 1 });
    } catch (e) {
      const pos = positionOf(e as Error);
      throw new Error(`${file}: line ${i + 1}${pos === null ? '' : `, column ${pos + 1}`}: invalid JSON: ${shortMessage(e)}`);
    }
  }
  return out;
}

function parseJsonArray(file: string, text: string): RawRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON${locateJsonError(text, e as Error)}`);
  }
  if (!Array.isArray(value)) throw new Error(`${file}: expected a JSON array of records`);
  return value.map((v) => ({ value: v }));
}

/**
 * V8 does not always say where JSON.parse failed ("Unexpected token '}', ... is not valid JSON"), so
 * split the top-level array into its elements and parse them one by one to name the bad record and line.
 */
function locateJsonError(text: string, err: Error): string {
  const start = text.indexOf('[');
  let depth = 0,
    inString = false,
    escaped = false,
    elemStart = start + 1,
    index = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    if ((c === ',' && depth === 1) || depth === 0) {
      const slice = text.slice(elemStart, i);
      if (slice.trim() === '' && index > 0) {
        return ` (${lineCol(text, i)}): a comma after record ${index - 1} but no record follows`;
      }
      if (slice.trim() !== '') {
        try {
          JSON.parse(slice);
        } catch (e) {
          const pos = elemStart + (positionOf(e as Error) ?? slice.search(/\S/));
          return ` in record ${index} (${lineCol(text, pos)}): ${shortMessage(e)}`;
        }
      }
      index++;
      elemStart = i + 1;
      if (depth === 0) break;
    }
  }
  const pos = positionOf(err);
  return ` (${pos === null ? 'near the end of the file' : lineCol(text, pos)}): ${shortMessage(err)}`;
}

function positionOf(e: Error): number | null {
  const m = /at position (\d+)/.exec(e.message);
  return m ? Number(m[1]) : null;
}

function lineCol(text: string, pos: number): string {
  let line = 1,
    lineStart = 0;
  for (let i = 0; i < pos && i < text.length; i++)
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  return `line ${line}, column ${pos - lineStart + 1}`;
}

/** V8 quotes the input in some messages and counts positions from the parsed slice; keep errors readable. */
function shortMessage(e: unknown): string {
  const msg = ((e as Error).message ?? String(e)).replace(/ at position \d+( \(line \d+ column \d+\))?/, '').replace(/\s*\n\s*/g, ' ');
  return msg.length > 160 ? `${msg.slice(0, 157)}...` : msg;
}

function where(file: string, index: number, r: RawRecord): string {
  return `${file}: record ${index}${r.line !== undefined ? ` (line ${r.line})` : ''}`;
}

function detectFormat(file: string, first: RawRecord): RecordFormat {
  const v = first.value;
  if (isObject(v) && 'instruction' in v) return 'llm-adapters';
  if (isObject(v) && 'question' in v) return 'gsm8k';
  const got = isObject(v)
    ? `fields ${
        Object.keys(v)
          .map((k) => JSON.stringify(k))
          .join(', ') || '(none)'
      }`
    : describe(v);
  throw new Error(
    `${where(file, 0, first)}: unrecognised record format: expected {instruction, input, output} (LLM-Adapters) or {question, answer} (GSM8K), got ${got}`,
  );
}

function toExample(file: string, format: RecordFormat, r: RawRecord, index: number): Example {
  const at = where(file, index, r);
  if (!isObject(r.value)) throw new Error(`${at}: expected an object, got ${describe(r.value)}`);
  const rec = r.value;
  const str = (name: string, optional = false): string | undefined => {
    const v = rec[name];
    if (v === undefined || v === null) {
      if (optional) return undefined;
      throw new Error(`${at}: field "${name}" is missing (${format} records need it)`);
    }
    if (typeof v !== 'string') throw new Error(`${at}: field "${name}" is not a string (got ${describe(v)})`);
    return v;
  };
  if (format === 'llm-adapters') {
    const instruction = str('instruction')!;
    const output = str('output')!;
    const input = str('input', true) ?? '';
    const raw = rec.answer;
    const answer = typeof raw === 'number' ? String(raw) : str('answer', true);
    return answer === undefined ? { instruction, input, output } : { instruction, input, output, answer };
  }
  const question = str('question')!;
  const solution = str('answer')!;
  const m = /####\s*(.+?)\s*$/.exec(solution);
  if (!m) throw new Error(`${at}: field "answer" does not end in "#### <number>" (got ${describe(solution)})`);
  return { instruction: question, input: '', output: solution, answer: m[1].replace(/,/g, '') };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describe(v: unknown): string {
  const kind = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  let s = v === undefined ? 'undefined' : JSON.stringify(v);
  if (s.length > 60) s = `${s.slice(0, 57)}...`;
  return kind === 'string' ? `string ${s}` : `${kind} ${s}`;
}
