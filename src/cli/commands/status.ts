import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { formatted, table } from '../output.js';

/** Vault's status table; `leader` (sys/leader) adds the HA rows. */
export function sealStatusRows(s: Record<string, unknown>, leader?: Record<string, unknown>): Array<[string, unknown]> {
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
  if (s.init_pending) rows.push(['Init Pending', 'its shares may not have reached anyone: unseal with them to confirm it, or initialize again']);
  const rekey = s.rekey_pending as { nonce: string; t: number; n: number } | undefined;
  if (rekey) {
    rows.push(['Rekey Pending', `rekey ${rekey.nonce} awaits completion: unseal with ${rekey.t} of its ${rekey.n} new shares to finish it, or cancel it (operator rekey -cancel) to keep the current shares`]);
  }
  rows.push(['Version', s.version], ['Storage Type', s.storage_type]);
  if (s.cluster_name) rows.push(['Cluster Name', s.cluster_name], ['Cluster ID', s.cluster_id]);
  rows.push(['HA Enabled', leader?.ha_enabled === true]);
  if (leader?.ha_enabled && !s.sealed) {
    rows.push(['HA Mode', leader.is_self ? 'active' : 'standby'], ['Active Node Address', leader.leader_address || '<none>']);
    if (leader.is_self) rows.push(['Active Since', leader.active_time]);
  }
  return rows;
}

/** `keyward status`: exit 0 unsealed, 2 sealed, 1 error (Vault's convention, which scripts rely on). */
export const statusCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags }, io) {
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    const s = (await client.request('GET', 'sys/seal-status')).body ?? {};
    const leader = (await client.request('GET', 'sys/leader')).body ?? {};
    io.out(format !== 'table' ? formatted(format, { ...s, ...leader }) : table(sealStatusRows(s, leader)));
    return s.sealed ? 2 : 0;
  },
};
