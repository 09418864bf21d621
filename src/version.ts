import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** keyward's version, as reported in seal-status and health. */
export const VERSION: string = pkg.version;
