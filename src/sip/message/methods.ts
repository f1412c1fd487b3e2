/**
 * The request methods of RFC 3261 and its extensions that Tandem knows by name, each as one
 * constant string: a parsed request's method is that constant (a transaction keeps its method for
 * 32 s after the request is gone, and a copy of "BYE" per call is one more string for the
 * collector to trace), and metrics count these under their own name.
 */
const KNOWN = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'INFO', 'UPDATE', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'REFER', 'MESSAGE', 'PUBLISH'];
const constants = new Map<string, string>(KNOWN.map((m) => [m, m]));

/** `m` as the known method's constant, or `m` itself for any other method. */
export function methodConstant(m: string): string {
  return constants.get(m) ?? m;
}

export function isKnownMethod(m: string): boolean {
  return constants.has(m);
}
