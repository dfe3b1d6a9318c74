// Running a long-lived command (a capture) in the background while a test
// sends traffic, and sending exact UDP datagrams.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Background {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

/** Start `argv` inside a network namespace, collecting its output. */
export function background(netns: string, argv: string[]): Background {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('latin1').on('data', (d) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = new Promise<number | string>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Wait until `ready()` holds, checking every 20 ms, or fail after `ms`. */
export async function until(ready: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// One datagram per payload, in order (bash's /dev/udp may split a payload
// at a newline byte, so node sends them).
const SENDER = `
const [dst, port, ...hex] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
(async () => {
  for (const h of hex) await new Promise((ok, fail) => s.send(Buffer.from(h, 'hex'), Number(port), dst, (e) => (e ? fail(e) : ok())));
  s.close();
})();`;

/** The command that sends each payload as one UDP datagram to dst:port. */
export function udpSendCommand(dst: string, port: number, payloads: Buffer[]): string[] {
  return [process.execPath, '-e', SENDER, dst, String(port), ...payloads.map((p) => p.toString('hex'))];
}
