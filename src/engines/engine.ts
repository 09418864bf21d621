/** What a request asks of a secrets engine, in Vault's vocabulary (ACL capabilities map onto these). */
export type Operation = 'read' | 'list' | 'update' | 'delete' | 'patch';

export interface LogicalRequest {
  operation: Operation;
  /** The path below the mount point, without leading slash. */
  path: string;
  data: Record<string, unknown>;
  query: Record<string, string | undefined>;
}

export interface LogicalResponse {
  /** Defaults to 200 with data, 204 without. */
  status?: number;
  data?: Record<string, unknown> | null;
  leaseDuration?: number;
}

export interface SecretsEngine {
  handle(req: LogicalRequest): Promise<LogicalResponse | undefined>;
  /** Whether a write to `path` would update something that exists (ACL "update") or create it ("create"). */
  exists(path: string): Promise<boolean>;
}

export function jsonBuffer(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}
