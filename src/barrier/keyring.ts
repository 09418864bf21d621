/** One encryption-key term: its key exists outside the token only as `wrapped` (C_WrapKey by the seal key). */
export interface TermEntry {
  readonly term: number;
  readonly wrapped: Buffer;
  readonly installTime: string;
  readonly encryptions: number;
}

export interface RotationConfig {
  readonly maxOperations: number;
  /** Seconds; 0 turns interval-based rotation off. */
  readonly interval: number;
  readonly enabled: boolean;
}

/** NIST SP 800-38D: about 2^32 encryptions per GCM key with random nonces; Vault's default leaves headroom. */
export const DEFAULT_ROTATION: RotationConfig = { maxOperations: 3_865_470_566, interval: 0, enabled: true };

interface SerializedKeyring {
  version: 1;
  active: number;
  terms: Array<{ term: number; wrapped: string; install_time: string; encryptions: number }>;
  rotation: { max_operations: number; interval: number; enabled: boolean };
}

/** The keyring as a plain value: every term (newest active), and the rotation policy. */
export class Keyring {
  private constructor(
    private readonly entries: ReadonlyMap<number, TermEntry>,
    readonly activeTerm: number,
    readonly rotation: RotationConfig,
  ) {}

  static first(wrapped: Buffer, installTime: string): Keyring {
    return new Keyring(new Map([[1, { term: 1, wrapped, installTime, encryptions: 0 }]]), 1, DEFAULT_ROTATION);
  }

  term(n: number): TermEntry | undefined {
    return this.entries.get(n);
  }

  get active(): TermEntry {
    return this.entries.get(this.activeTerm)!;
  }

  get terms(): TermEntry[] {
    return [...this.entries.values()].sort((a, b) => a.term - b.term);
  }

  /** A keyring with a new active term after the current one. */
  addKey(wrapped: Buffer, installTime: string): Keyring {
    const term = this.activeTerm + 1;
    const entries = new Map(this.entries);
    entries.set(term, { term, wrapped, installTime, encryptions: 0 });
    return new Keyring(entries, term, this.rotation);
  }

  /** A keyring that also holds `entry` (learnt from an upgrade entry), active when it is the newest. */
  withTerm(entry: TermEntry): Keyring {
    const entries = new Map(this.entries);
    entries.set(entry.term, entry);
    return new Keyring(entries, Math.max(this.activeTerm, entry.term), this.rotation);
  }

  /** A keyring without the given terms (never the active one). */
  withoutTerms(terms: readonly number[]): Keyring {
    if (terms.includes(this.activeTerm)) throw new Error(`cannot remove the active term ${this.activeTerm}`);
    const entries = new Map(this.entries);
    for (const t of terms) entries.delete(t);
    return new Keyring(entries, this.activeTerm, this.rotation);
  }

  withCounts(counts: ReadonlyMap<number, number>): Keyring {
    const entries = new Map<number, TermEntry>();
    for (const [n, e] of this.entries) entries.set(n, { ...e, encryptions: counts.get(n) ?? e.encryptions });
    return new Keyring(entries, this.activeTerm, this.rotation);
  }

  withRotation(rotation: RotationConfig): Keyring {
    return new Keyring(this.entries, this.activeTerm, rotation);
  }

  serialize(): Buffer {
    const body: SerializedKeyring = {
      version: 1,
      active: this.activeTerm,
      terms: this.terms.map((e) => ({
        term: e.term,
        wrapped: e.wrapped.toString('base64'),
        install_time: e.installTime,
        encryptions: e.encryptions,
      })),
      rotation: { max_operations: this.rotation.maxOperations, interval: this.rotation.interval, enabled: this.rotation.enabled },
    };
    return Buffer.from(JSON.stringify(body));
  }

  static deserialize(raw: Buffer): Keyring {
    const body = JSON.parse(raw.toString('utf8')) as SerializedKeyring;
    if (body.version !== 1) throw new Error(`unsupported keyring version ${String(body.version)}`);
    const entries = new Map<number, TermEntry>();
    for (const t of body.terms) {
      entries.set(t.term, {
        term: t.term,
        wrapped: Buffer.from(t.wrapped, 'base64'),
        installTime: t.install_time,
        encryptions: t.encryptions,
      });
    }
    if (!entries.has(body.active)) throw new Error(`keyring's active term ${body.active} has no key`);
    const r = body.rotation;
    return new Keyring(entries, body.active, { maxOperations: r.max_operations, interval: r.interval, enabled: r.enabled });
  }
}
