import { pino, type Logger } from 'pino';

/** Paths pino replaces with "[redacted]": tokens, shares, PINs and root keys never reach a log line. */
export const REDACT_PATHS = [
  'req.headers["x-vault-token"]',
  'req.headers.authorization',
  'pin',
  '*.pin',
  'key',
  '*.key',
  'keys',
  '*.keys',
  'keys_base64',
  '*.keys_base64',
  'root_token',
  '*.root_token',
  'token',
  '*.token',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination ?? process.stderr);
}
