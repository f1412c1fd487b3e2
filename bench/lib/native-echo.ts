// Tandem's native UDP path as an echo server for bench/udp-floor.bench.ts: the socket bound by
// node:dgram, read and answered through src/sip/transport/native-udp.ts as the transport does.
import dgram from 'node:dgram';
import { loadNativeUdp, NativeUdpSocket } from '../../src/sip/transport/native-udp.js';

const mod = await loadNativeUdp();
if (!mod.ok) throw new Error(mod.reason);
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
await new Promise<void>((r) => socket.bind(Number(process.argv[2]), '127.0.0.1', () => r()));
const native = NativeUdpSocket.attach(mod.value, socket, (buf, address, port) => {
  if (native!.trySend(buf, port, address) !== 0) socket.send(buf, port, address);
});
if (!native?.startReceiving()) throw new Error('native path did not start');
console.log('ready');
