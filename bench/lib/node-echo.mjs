// Node's side of bench/udp-floor.bench.ts: echo every datagram back to its sender through
// node:dgram, as the signalling node's transport receives and answers (destination given as an
// IP literal, answered without dns.lookup). Prints "ready" once bound.
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';

const lookup = (host, options, callback) => (net.isIPv4(host) ? callback(null, host, 4) : dns.lookup(host, options, callback));
const socket = dgram.createSocket({ type: 'udp4', lookup, recvBufferSize: 4 << 20 });
socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
socket.bind(Number(process.argv[2]), '127.0.0.1', () => console.log('ready'));
