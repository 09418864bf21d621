import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { json, table } from '../output.js';

export function sealStatusRows(s: Record<string, unknown>): Array<[string, unknown]> {
  const rows: Array<[string, unknown]> = [
    ['Seal Type', s.type],
    ['Initialized', s.initialized],
    ['Sealed', s.sealed],
    ['Total Shares', s.n],
    ['Threshold', s.t],
  ];
  if (s.sealed) {
    rows.push(['Unseal Progress', `${String(s.progress)}/${String(s.t)}`], ['Unseal Nonce', s.nonce || 'n/a']);
  }
  rows.push(['Version', s.version], ['Storage Type', s.storage_type]);
  if (s.cluster_name) rows.push(['Cluster Name', s.cluster_name], ['Cluster ID', s.cluster_id]);
  rows.push(['HA Enabled', false]);
  return rows;
}

/** `keyward status`: exit 0 unsealed, 2 sealed, 1 error (Vault's convention, which scripts rely on). */
export const statusCommand: Command = {
  name: 'status',
  synopsis: 'Print the seal status of the server',
  flags: CLIENT_FLAGS,
  async run({ flags }, io) {
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    const { body } = await client.request('GET', 'sys/seal-status');
    const s = body ?? {};
    io.out(format === 'json' ? json(s) : table(sealStatusRows(s)));
    return s.sealed ? 2 : 0;
  },
};
