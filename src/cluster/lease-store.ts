/**
 * Leases on named resources (a virtual IP), held by one node at a time for a TTL and renewed
 * while it lives. Every acquisition gets an epoch that only grows, so that an owner whose lease
 * was taken over (after a Redis failover, replication being asynchronous, a lease can be granted
 * twice) is told apart from the newer one: fence owner actions with it.
 */
export interface LeaseGrant {
  owner: string;
  epoch: number;
}

export interface LeaseStore {
  /** Takes the lease when free (or already ours); undefined when another node holds it. */
  acquire(name: string, owner: string, ttlMs: number): Promise<LeaseGrant | undefined>;
  /**
   * Extends our lease: true while it is ours. A lease that vanished (Redis failed over before the
   * key replicated) is taken back with the same epoch when nobody took it meanwhile.
   */
  renew(name: string, grant: LeaseGrant, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if it is still ours. */
  release(name: string, grant: LeaseGrant): Promise<void>;
  /** Who holds the lease now. */
  holder(name: string): Promise<LeaseGrant | undefined>;
}
