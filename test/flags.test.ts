import { describe, expect, it } from 'vitest';
import { parseFlags, splitPair, UsageError } from '../src/cli/flags.js';

const specs = {
  'key-shares': { kind: 'int' as const, help: '', default: 5 },
  format: { kind: 'string' as const, help: '', default: '' },
  init: { kind: 'bool' as const, help: '', default: false },
};

describe("Vault's flag style", () => {
  it('accepts -f=v, -f v, --f=v, bare booleans, and flags after arguments', () => {
    expect(parseFlags(['-key-shares=3', '--format', 'json', '-init', 'KEY'], specs)).toEqual({
      flags: { 'key-shares': 3, format: 'json', init: true },
      args: ['KEY'],
    });
    expect(parseFlags(['KEY', '-init=false', '--', '-not-a-flag'], specs)).toEqual({
      flags: { 'key-shares': 5, format: '', init: false },
      args: ['KEY', '-not-a-flag'],
    });
  });

  it('treats mistakes as usage errors', () => {
    expect(() => parseFlags(['-nope'], specs)).toThrow(UsageError);
    expect(() => parseFlags(['-key-shares=three'], specs)).toThrow('takes a whole number');
    expect(() => parseFlags(['-format'], specs)).toThrow('needs a value');
    expect(() => parseFlags(['-init=maybe'], specs)).toThrow('true or false');
  });

  it('splits key=value arguments, keeping "=" inside values', () => {
    expect(splitPair('a=b=c')).toEqual(['a', 'b=c']);
    expect(splitPair('empty=')).toEqual(['empty', '']);
    expect(() => splitPair('=v')).toThrow(UsageError);
    expect(() => splitPair('novalue', '-metadata ')).toThrow('-metadata "novalue" is not key=value');
  });
});
