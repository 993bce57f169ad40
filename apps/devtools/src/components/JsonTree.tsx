/**
 * A value as an expandable tree: objects and arrays fold (keyboard: the toggles are buttons),
 * binary bodies (Uint8Array and other typed arrays) show as hex, strings quoted.
 */
import { useState, type ReactNode } from 'react';

const HEX_LIMIT = 256;

export function hex(bytes: Uint8Array, limit = HEX_LIMIT): string {
  const shown = bytes.subarray(0, limit);
  let out = '';
  for (let i = 0; i < shown.length; i++) out += (i > 0 ? (i % 16 === 0 ? '\n' : ' ') : '') + shown[i]!.toString(16).padStart(2, '0');
  return bytes.length > limit ? `${out} … (${bytes.length} bytes)` : out;
}

function isBinary(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** A one-line preview of a value, for collapsed nodes and list rows. */
export function preview(v: unknown, depth = 0): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (isBinary(v)) return `Uint8Array(${v.length}) ${hex(v, 8)}${v.length > 8 ? ' …' : ''}`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength} bytes)`;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Map) return `Map(${v.size})`;
  if (Array.isArray(v)) {
    if (depth > 0) return `Array(${v.length})`;
    const items = v.slice(0, 5).map((x) => preview(x, depth + 1));
    return `[${items.join(', ')}${v.length > 5 ? ', …' : ''}]`;
  }
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    if (depth > 0) return keys.length ? '{…}' : '{}';
    const items = keys.slice(0, 4).map((k) => `${k}: ${preview((v as Record<string, unknown>)[k], depth + 1)}`);
    return `{${items.join(', ')}${keys.length > 4 ? ', …' : ''}}`;
  }
  return String(v);
}

function entries(v: object): [string, unknown][] {
  if (v instanceof Map) return [...v.entries()].map(([k, x]) => [String(k), x]);
  if (Array.isArray(v)) return v.map((x, i) => [String(i), x]);
  return Object.entries(v);
}

function Leaf({ value }: { value: unknown }): ReactNode {
  if (isBinary(value)) {
    return (
      <span className="json-bin">
        <span className="json-type">Uint8Array({value.length})</span>
        <code className="json-hex">{hex(value)}</code>
      </span>
    );
  }
  const cls = value === null || value === undefined ? 'json-null' : `json-${typeof value}`;
  return <span className={cls}>{preview(value, 1)}</span>;
}

function isBranch(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !isBinary(v) && !ArrayBuffer.isView(v) && !(v instanceof Date);
}

interface NodeProps {
  name?: string;
  value: unknown;
  open?: boolean;
}

function Node({ name, value, open = false }: NodeProps): ReactNode {
  const [expanded, setExpanded] = useState(open);
  const label = name === undefined ? null : <span className="json-key">{name}: </span>;
  if (!isBranch(value)) {
    return (
      <li>
        {label}
        <Leaf value={value} />
      </li>
    );
  }
  const kids = entries(value);
  return (
    <li>
      <button type="button" className="json-toggle" aria-expanded={expanded} onClick={() => setExpanded((e) => !e)}>
        <span aria-hidden="true" className="json-caret">
          {expanded ? '▾' : '▸'}
        </span>
        {label}
        {!expanded || kids.length === 0 ? <span className="json-preview">{preview(value)}</span> : <span className="json-type">{Array.isArray(value) ? `Array(${kids.length})` : 'Object'}</span>}
      </button>
      {expanded && kids.length > 0 && (
        <ul className="json-children">
          {kids.map(([k, x]) => (
            <Node key={k} name={k} value={x} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function JsonTree({ value, label, open = true }: { value: unknown; label?: string; open?: boolean }) {
  return (
    <ul className="json-tree" aria-label={label}>
      <Node value={value} open={open} />
    </ul>
  );
}
