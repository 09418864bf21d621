import { createInterface } from 'node:readline';
import { type FlagValues, UsageError } from './flags.js';

/**
 * Reads one line. On a terminal the typed characters are not echoed (for shares);
 * from a pipe it reads the first line of standard input. With -non-interactive it asks nothing
 * and fails, naming what was missing.
 */
export async function promptHidden(question: string, flags: FlagValues): Promise<string> {
  if (flags['non-interactive'] === true) {
    const what = question.replace(/\s*\(will be hidden\):\s*$/, '');
    throw new UsageError(`${what} is needed, and -non-interactive forbids asking for it: give it on the command line`);
  }
  const input = process.stdin;
  if (!input.isTTY) {
    const rl = createInterface({ input });
    for await (const line of rl) {
      rl.close();
      return line.trim();
    }
    return '';
  }
  process.stderr.write(question);
  input.setRawMode(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    input.on('data', onData);
  });
}
