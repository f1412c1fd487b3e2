import type { SipRequest } from '../../sip/message/sip-message.js';
import { reasonPhrase } from '../../sip/message/builders.js';
import { parseUri } from '../../sip/uri/sip-uri.js';
import { describeSdp, parseSdp } from '../../sdp/sdp.js';

/**
 * Outgoing-message templates of the load generator. Incoming messages are parsed by the shared
 * message layer (`parseMessage` and its typed getters); outgoing ones are written here straight
 * into bytes from a start line and ordered header lines, because the generator sends every
 * request and response once per call at high rates and needs no message object for them.
 */

/** Serializes a start line, ordered headers and a body; Content-Length is always set (RFC 3261 §20.14). */
export function templateMessage(startLine: string, headers: [string, string][], body = ''): Buffer {
  let out = startLine + '\r\n';
  for (const [n, v] of headers) out += `${n}: ${v}\r\n`;
  out += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  return Buffer.from(out, 'latin1');
}

/** `host[:port]` with an IPv6 host bracketed (RFC 3261 §25.1); port 0 or absent is left out. */
export function hostPort(address: string, port?: number): string {
  const h = address.includes(':') ? `[${address}]` : address;
  return port ? `${h}:${port}` : h;
}

/**
 * A request with only the headers RFC 3261 asks for (Via, Max-Forwards, Route set, From, To,
 * Call-ID, CSeq): CANCEL and non-2xx ACK inside the INVITE transaction (§9.1, §17.1.1.3), ACK
 * for a 2xx and BYE inside the dialog (§13.2.2.4, §15).
 */
export function bareRequest(method: string, uri: string, via: string, routes: readonly string[], from: string, to: string, callId: string, cseq: number): Buffer {
  const lines: [string, string][] = [['Via', via], ['Max-Forwards', '70']];
  for (const r of routes) lines.push(['Route', r]);
  lines.push(['From', from], ['To', to], ['Call-ID', callId], ['CSeq', `${cseq} ${method}`]);
  return templateMessage(`${method} ${uri} SIP/2.0`, lines);
}

/**
 * RFC 3261 §8.2.6.2: a response copies Via (every value, in order), From, Call-ID, CSeq and To
 * from the request, adding a To tag (not on 100) if the request had none. `extra` adds headers
 * (Contact, Record-Route copies, auth challenges). Values are copied as received.
 */
export function templateResponse(req: SipRequest, status: number, toTag: string | undefined, extra: [string, string][] = [], body = '', reason?: string): Buffer {
  const headers: [string, string][] = [];
  for (const e of req.headers.all('via')) headers.push(['Via', e.value]);
  headers.push(['From', req.headers.first('from')?.value ?? '']);
  let to = req.headers.first('to')?.value ?? '';
  if (toTag && status > 100 && req.toTag === undefined) to += `;tag=${toTag}`;
  headers.push(['To', to]);
  headers.push(['Call-ID', req.callId]);
  headers.push(['CSeq', req.headers.first('cseq')?.value ?? '']);
  for (const h of extra) headers.push(h);
  headers.push(['Server', 'tandem-load']);
  return templateMessage(`SIP/2.0 ${status} ${reason ?? reasonPhrase(status)}`, headers, body);
}

/** One G.711 audio offer/answer (RFC 4566/8866 session with one m=audio line, ptime 20). */
export function templateSdp(address: string, port: number, payloadType: number, sessionId: number): string {
  const ip = address.includes(':') ? 'IP6' : 'IP4';
  const codec = payloadType === 8 ? 'PCMA/8000' : 'PCMU/8000';
  return (
    `v=0\r\no=tandem ${sessionId} ${sessionId} IN ${ip} ${address}\r\ns=tandem-load\r\nc=IN ${ip} ${address}\r\nt=0 0\r\n` +
    `m=audio ${port} RTP/AVP ${payloadType}\r\na=rtpmap:${payloadType} ${codec}\r\na=ptime:20\r\na=sendrecv\r\n`
  );
}

/** Remote RTP address of an SDP body (shared SDP parser): the first audio m= line and its connection. */
export function sdpAudioTarget(body: Buffer): { address: string; port: number } | undefined {
  if (body.length === 0) return undefined;
  const doc = parseSdp(body.toString('latin1'));
  if (!doc.ok) return undefined;
  const audio = describeSdp(doc.value).media.find((m) => m.type === 'audio');
  if (!audio?.connection) return undefined;
  return { address: audio.connection.address, port: audio.port };
}

export interface UriTarget {
  host: string;
  port: number | undefined;
  transport: string | undefined;
  lr: boolean;
}

/** Host, port and transport/lr parameters of a sip/sips URI (shared URI parser). */
export function uriTarget(uri: string): UriTarget | undefined {
  const r = parseUri(uri.trim());
  if (!r.ok || r.value.scheme === 'tel') return undefined;
  const u = r.value;
  return { host: u.host.replace(/^\[|\]$/g, ''), port: u.port, transport: u.params.get('transport')?.toLowerCase() ?? undefined, lr: u.params.has('lr') };
}

/**
 * The top Via branch of bytes that did not parse, to attribute a garbled response to its
 * transaction (the shared parser gives no partial message for responses).
 */
export function sniffBranch(buf: Buffer): string | undefined {
  const text = buf.subarray(0, 4096).toString('latin1');
  const via = /^(?:via|v)[ \t]*:[ \t]*([^\r\n]*)/im.exec(text)?.[1];
  if (!via) return undefined;
  return /;\s*branch\s*=\s*([^;,\s]+)/i.exec(via)?.[1];
}

/** Short failure text of a parse error code, as the generator's reports name them. */
export function garbledReason(code: string, reason: string): string {
  if (code === 'SIP_ERR_BAD_START_LINE') return 'bad status line';
  return reason.charAt(0).toLowerCase() + reason.slice(1);
}
