import { Counter, Gauge, Registry } from 'prom-client';

/** The service's Prometheus metrics, one registry per Core (tests run several in one process). */
export class Metrics {
  readonly registry = new Registry();
  readonly autoRotations = new Counter({
    name: 'keyward_barrier_auto_rotations_total',
    help: 'Automatic encryption-key rotations, by reason (max_operations or interval)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly activeTerm = new Gauge({ name: 'keyward_barrier_active_term', help: 'The active encryption-key term', registers: [this.registry] });
  readonly activeEncryptions = new Gauge({
    name: 'keyward_barrier_active_term_encryptions',
    help: 'Encryptions under the active term since it was installed',
    registers: [this.registry],
  });
}
