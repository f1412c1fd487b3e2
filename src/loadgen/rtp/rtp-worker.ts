/** Worker-thread entry of WorkerUasMedia: RTP streams of a UAS, driven by messages. */
import { parentPort, workerData } from 'node:worker_threads';
import { RtpMedia, type RtpMediaOptions, type RtpStream } from './rtp-media.js';
import type { RtpWorkerReply, RtpWorkerRequest } from './uas-media.js';

const port = parentPort;
if (port) {
  const init = workerData as { media: RtpMediaOptions; reportMs: number };
  const media = new RtpMedia(init.media);
  const streams = new Map<number, RtpStream>();
  const send = (m: RtpWorkerReply): void => port.postMessage(m);
  setInterval(() => send({ op: 'totals', totals: media.snapshot(), final: false }), init.reportMs).unref();
  port.on('message', (m: RtpWorkerRequest) => {
    switch (m.op) {
      case 'open':
        media.open().then(
          (s) => {
            // echo from the first packet: the caller may start sending before 'start' arrives here
            if (m.echo) s.start('echo');
            streams.set(m.id, s);
            send({ op: 'opened', id: m.id, port: s.port });
          },
          (err: Error) => send({ op: 'failed', id: m.id, message: err.message }),
        );
        break;
      case 'start':
        streams.get(m.id)?.start(m.mode, m.remote);
        break;
      case 'close':
        streams.get(m.id)?.close();
        streams.delete(m.id);
        break;
      case 'snapshot':
        send({ op: 'totals', totals: media.snapshot(), final: true });
        break;
    }
  });
}
