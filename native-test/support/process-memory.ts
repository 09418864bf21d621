import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/** One mapping of a process, as /proc/PID/maps lists it. */
export interface Mapping {
  start: number;
  end: number;
  perms: string;
  /** The mapped file or a pseudo name such as [heap]; empty for anonymous memory. */
  name: string;
}

/** A needle found in memory: which one, in which mapping, at which address. */
export interface Hit {
  needle: string;
  address: number;
  mapping: string;
}

export interface ScanResult {
  hits: Hit[];
  bytesScanned: number;
  regionsScanned: number;
  /** Readable mappings the kernel refused to read (e.g. [vvar]); reported, never silently dropped. */
  unreadable: Mapping[];
}

const CHUNK_BYTES = 8 << 20;

/** The process's mappings; addresses stay below 2^47 on x86-64 and aarch64, so numbers hold them exactly. */
export function mappingsOf(pid: number): Mapping[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [range, perms, , , , ...rest] = line.split(/\s+/);
      const [start, end] = range!.split('-').map((h) => parseInt(h, 16));
      return { start: start!, end: end!, perms: perms!, name: rest.join(' ') };
    });
}

/**
 * Reads every readable mapping of the process through /proc/PID/mem and reports every place
 * each needle occurs. Chunks overlap by the longest needle less one byte, so a needle that
 * straddles a chunk boundary is still found once. Needs ptrace access to the process (root,
 * or its parent under Yama scope 1).
 */
export function scanProcessMemory(pid: number, needles: ReadonlyMap<string, Buffer>): ScanResult {
  const overlap = Math.max(0, ...[...needles.values()].map((n) => n.length - 1));
  const result: ScanResult = { hits: [], bytesScanned: 0, regionsScanned: 0, unreadable: [] };
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const mapping of mappingsOf(pid)) {
      if (!mapping.perms.startsWith('r')) continue;
      if (scanMapping(fd, mapping, needles, overlap, result)) result.regionsScanned++;
      // A mapping the running process dropped since /proc/PID/maps was read is gone, not unreadable.
      else if (stillMapped(pid, mapping)) result.unreadable.push(mapping);
    }
  } finally {
    closeSync(fd);
  }
  return result;
}

/** Scans one mapping into `result`; false when the kernel refuses to read it. */
function scanMapping(fd: number, mapping: Mapping, needles: ReadonlyMap<string, Buffer>, overlap: number, result: ScanResult): boolean {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, mapping.end - mapping.start) + overlap);
  let carried = 0;
  for (let at = mapping.start; at < mapping.end; ) {
    const want = Math.min(buf.length - carried, mapping.end - at);
    let got: number;
    try {
      got = readSync(fd, buf, carried, want, at);
    } catch {
      if (at === mapping.start) return false;
      break;
    }
    if (got === 0) break;
    const filled = carried + got;
    const view = buf.subarray(0, filled);
    const viewStart = at - carried;
    for (const [name, needle] of needles) {
      for (let i = view.indexOf(needle); i !== -1; i = view.indexOf(needle, i + 1)) {
        // A hit wholly inside the carried-over bytes was already reported from the previous chunk.
        if (i + needle.length > carried) result.hits.push({ needle: name, address: viewStart + i, mapping: describe(mapping) });
      }
    }
    result.bytesScanned += got;
    at += got;
    carried = Math.min(overlap, filled);
    buf.copy(buf, 0, filled - carried, filled);
  }
  return true;
}

function stillMapped(pid: number, m: Mapping): boolean {
  return mappingsOf(pid).some((n) => n.start === m.start && n.end === m.end);
}

function describe(m: Mapping): string {
  return `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.name || '[anon]'}`;
}

/**
 * The spellings a secret can take in memory: its raw bytes, and the ASCII hex and base64 texts
 * that JSON bodies, logs and V8 one-byte strings hold. Keyed `label/spelling`.
 */
export function spellingsOf(label: string, secret: Buffer): Map<string, Buffer> {
  return new Map([
    [`${label}/raw`, Buffer.from(secret)],
    [`${label}/hex`, Buffer.from(secret.toString('hex'))],
    [`${label}/HEX`, Buffer.from(secret.toString('hex').toUpperCase())],
    [`${label}/base64`, Buffer.from(secret.toString('base64').replace(/=+$/, ''))],
  ]);
}
