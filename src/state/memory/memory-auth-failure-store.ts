import { AuthFailureTracker, type FailureTrackerOptions } from '../../sip/auth/digest-server.js';
import type { AuthFailureStore } from '../store.js';

/** In-process failed-authentication counts and blocks for one node (the digest layer's tracker). */
export class MemoryAuthFailureStore extends AuthFailureTracker implements AuthFailureStore {
  constructor(opts: FailureTrackerOptions = {}) {
    super(opts);
  }
}
