/**
 * How the proxy asks a media node to relay a call's RTP. Implemented over the ng protocol
 * (`ng-media-control.ts`); signalling never imports media code, even in one process.
 */
import type { Result } from '../../util/result.js';

export interface MediaOfferInput {
  callId: string;
  fromTag: string;
  sdp: Buffer;
  /** Source address of the signalling peer that sent the SDP. */
  sourceAddress?: string;
  viaBranch?: string;
  /** Media node to use first (the one a peer already sent this call's offer to). */
  node?: string;
}

export interface MediaAnswerInput extends MediaOfferInput {
  toTag: string;
}

export interface MediaControl {
  /** Offer SDP (INVITE/re-INVITE) -> SDP pointing at the relay. */
  offer(input: MediaOfferInput): Promise<Result<Buffer>>;
  /** Answer SDP (183/2xx) -> SDP pointing at the relay. */
  answer(input: MediaAnswerInput): Promise<Result<Buffer>>;
  /**
   * Releases the call's media session (BYE, CANCEL, failure). `node`: where a peer recorded the
   * call's media (a call this process never saw). Never throws.
   */
  delete(callId: string, fromTag?: string, node?: string): Promise<void>;
  /** The media node (`host:port` of its ng socket) that holds a call this process set up. */
  nodeOf?(callId: string): string | undefined;
  /**
   * Whether the media node still holds the call (it ends calls without media by itself): true,
   * false, or undefined when it cannot tell (node unreachable, call unknown here). Never throws.
   */
  isActive?(callId: string): Promise<boolean | undefined>;
  close(): Promise<void>;
}
