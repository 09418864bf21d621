import type { FlagSpec, Parsed } from './flags.js';

export interface Io {
  out(text: string): void;
  /** Writes `text` as it is, without a newline (`-field` output piped to another program). */
  raw(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

/** One CLI verb. `run` returns the exit code: 0 ok, 1 error, 2 usage (and Vault's "sealed"/"not found"). */
export interface Command {
  flags: Record<string, FlagSpec>;
  run(parsed: Parsed, io: Io): Promise<number>;
}
