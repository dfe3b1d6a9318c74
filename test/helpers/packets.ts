// Crafted frames for BPF_PROG_TEST_RUN, with checksums computed here.

export function mac(text: string): Buffer {
  return Buffer.from(text.split(':').map((b) => parseInt(b, 16)));
}

export function ipv4(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

/** RFC 1071 one's-complement sum, folded and inverted. */
export function inetChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export interface UdpFrame {
  srcMac?: string;
  dstMac?: string;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  payload?: Buffer;
}

/** Ethernet + IPv4 + UDP with valid IP and UDP checksums. */
export function udp4(f: UdpFrame = {}): Buffer {
  const payload = f.payload ?? Buffer.from('xdplb test payload');
  const eth = Buffer.concat([mac(f.dstMac ?? '02:00:00:00:00:02'), mac(f.srcMac ?? '02:00:00:00:00:01'), Buffer.from([0x08, 0x00])]);
  const udpLen = 8 + payload.length;
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + udpLen, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip[8] = 64;
  ip[9] = 17;
  ipv4(f.src ?? '192.0.2.1').copy(ip, 12);
  ipv4(f.dst ?? '198.51.100.1').copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(f.sport ?? 40000, 0);
  udp.writeUInt16BE(f.dport ?? 9, 2);
  udp.writeUInt16BE(udpLen, 4);
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17]), Buffer.from([udpLen >> 8, udpLen & 0xff]), udp, payload]);
  udp.writeUInt16BE(inetChecksum(pseudo) || 0xffff, 6);
  return Buffer.concat([eth, ip, udp, payload]);
}
